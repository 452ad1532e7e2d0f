"""A typed answer (`output=Model`), drawn readably: a two-column table of its fields, not raw JSON.

    typed_html(Review(sentiment="positive", stars=4))   # <table> field | value, values escaped
    typed_text(...)                                       # the same as aligned plain text

Nested values (lists, objects) go in their cell as compact JSON. Every value came from the model, so all
of it is escaped: nothing it says becomes markup.
"""

from __future__ import annotations

import html
import json
from typing import Any

from claude_magic.core.structured import as_record

_TABLE_STYLE = "border-collapse:collapse;margin:0.3em 0"
_CELL_STYLE = "border:1px solid #ddd;padding:0.2em 0.6em;text-align:left;vertical-align:top"
_CAPTION_STYLE = "caption-side:top;text-align:left;color:#777;font-size:0.85em"
MAX_VALUE_CHARS = 2_000  # one cell's text; a longer value is cut and says so


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif hasattr(value, "model_dump"):
        text = json.dumps(value.model_dump(mode="json"), ensure_ascii=False)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}… ({len(text):,} characters)"
    return text


def typed_html(parsed: Any, name: str = "") -> str:
    record = as_record(parsed)
    if record is None:
        return f"<pre>{html.escape(_value_text(parsed))}</pre>"
    caption = f'<caption style="{_CAPTION_STYLE}">{html.escape(name)}</caption>' if name else ""
    rows = "".join(
        f'<tr><th style="{_CELL_STYLE}">{html.escape(str(field))}</th>'
        f'<td style="{_CELL_STYLE}">{html.escape(_value_text(value))}</td></tr>'
        for field, value in record.items())
    return f'<table style="{_TABLE_STYLE}">{caption}<tbody>{rows}</tbody></table>'


def typed_text(parsed: Any, name: str = "") -> str:
    record = as_record(parsed)
    if record is None:
        return _value_text(parsed)
    width = max((len(str(field)) for field in record), default=0)
    lines = [f"{str(field).ljust(width)}  {_value_text(value)}" for field, value in record.items()]
    return "\n".join([name, *lines] if name else lines)


__all__ = ["typed_html", "typed_text"]
