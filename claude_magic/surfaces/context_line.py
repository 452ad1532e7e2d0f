"""The one line a cell shows before the answer: what was attached (name, kind, size, estimated tokens)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from claude_magic.core.context import Attachment, summary_line
from claude_magic.render.markdown import themed
from claude_magic.surfaces.display import resolve_display

_STYLE = f"{themed('color', '--jp-content-font-color2', '#555555')};font-size:0.9em;margin-bottom:0.3em"


def attachment_bundle(attachments: Sequence[Attachment]) -> dict[str, str]:
    """Names and kinds come from the notebook and the files: escaped, never rendered as markup."""
    line = summary_line(attachments)
    return {"text/plain": line, "text/html": f'<div class="claude-magic-attached" style="{_STYLE}">'
                                             f"{html.escape(line)}</div>"}


def show_attachments(attachments: Sequence[Attachment], display: str) -> None:
    """Draw the line in the cell (or print it in a terminal); nothing when there are none or display is none."""
    if not attachments:
        return
    mode = resolve_display(display)
    if mode == "none":
        return
    if mode == "terminal":
        print(summary_line(attachments))
        return
    from IPython.display import display as show

    show(attachment_bundle(attachments), raw=True)


__all__ = ["attachment_bundle", "show_attachments"]
