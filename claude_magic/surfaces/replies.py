"""What `map` hands back: one Reply per prompt, in input order, and a DataFrame of them.

    replies = claude_magic.map(df["review"], output=Review)
    frame = replies.to_frame()          # one row per prompt: Review's fields, then usage, cost, error
    replies.failed                      # positions of the prompts without an answer (errors, interrupted)

`prompts_from(df, "Review: {review} ({stars} stars)")` fills a template from each row of a DataFrame.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from typing import Any

from claude_magic.core.structured import as_record
from claude_magic.surfaces.reply import Reply

USAGE_COLUMNS = ("input_tokens", "output_tokens", "cost", "error")


class Replies(list[Reply]):
    """A list of Replies in input order, with `.to_frame()`; `input_index` is the input's pandas index, if any."""

    def __init__(self, replies: Iterable[Reply] = (), *, index: Any = None, interrupted: bool = False,
                 batch_ids: list[str] | None = None, discount: float = 1.0) -> None:
        super().__init__(replies)
        self.input_index = index
        self.interrupted = interrupted  # the run was interrupted: some prompts have no answer yet
        self.batch_ids = batch_ids or []  # Message Batches that answered these (map(..., batch=True))
        self.discount = discount  # what the cost column is multiplied by (0.5: the batch price)

    @property
    def failed(self) -> list[int]:
        """Positions of the prompts with no usable answer (an error, a refusal, not asked yet)."""
        return [position for position, reply in enumerate(self) if reply.error is not None or not reply.ok]

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per prompt in input order (the input's index, when it had one):
        the typed answer's fields as columns (`text` when no type was asked for), then `input_tokens`,
        `output_tokens`, `cost` (US dollars, an estimate; None offline) and `error` (None when answered)."""
        import pandas as pd

        typed = any(reply.state.typed for reply in self)
        rows: list[dict[str, Any]] = []
        fields: dict[str, None] = {}
        for reply in self:
            record = as_record(reply.parsed) if typed else {"text": reply.text if reply.ok else None}
            if record is None:
                record = {}
            fields.update(dict.fromkeys(record))
            usage = reply.usage
            cost = reply.state.cost
            rows.append({**record, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                         "cost": None if cost is None else cost * self.discount, "error": reply.error})
        columns = [*fields, *USAGE_COLUMNS] if fields or not typed else list(USAGE_COLUMNS)
        index = self.input_index if self.input_index is not None and len(self.input_index) == len(rows) else None
        return pd.DataFrame(rows, columns=columns, index=index)

    def __repr__(self) -> str:
        done = len(self) - len(self.failed)
        extra = " (interrupted)" if self.interrupted else ""
        return f"<Replies: {len(self)} prompts, {done} answered, {len(self.failed)} without an answer{extra}>"

    def _repr_html_(self) -> str:
        import html

        return f"<code>{html.escape(repr(self))}</code>"


def prompts_from(frame: Any, template: str) -> Any:
    """One prompt per row of `frame` (a pandas DataFrame): `template` with `{column}` filled from that row,
    as a pandas Series with the frame's index (so `map(...).to_frame()` lines up with `frame`).

    >>> replies = claude_magic.map(prompts_from(df, "Review: {review}\\nStars: {stars}"), output=Sentiment)

    `{{` and `}}` are literal braces. A field that is not a column is a ValueError naming the columns.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"prompts_from() takes a pandas DataFrame, got {type(frame).__name__}")
    fields = {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = sorted(fields - {str(column) for column in frame.columns})
    if missing:
        raise ValueError(f"prompts_from: {', '.join(repr(m) for m in missing)} not among the DataFrame's columns "
                         f"({', '.join(map(str, frame.columns))})")
    columns = [column for column in frame.columns if str(column) in fields]
    records: Iterator[dict[str, Any]] = (
        dict(zip(map(str, columns), values, strict=True))
        for values in frame[columns].itertuples(index=False, name=None))
    return pd.Series([template.format_map(record) for record in records], index=frame.index, name="prompt",
                     dtype=object)


__all__ = ["Replies", "prompts_from"]
