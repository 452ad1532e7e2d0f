"""What the Python API (and `%claude`, `--out NAME`) hands back: one finished turn.

    reply = claude_magic.ask("Write a haiku about caching")
    reply.text, reply.stop_reason, reply.usage.output_tokens
    reply.code_blocks            # [(language, code), ...] from the answer's fenced blocks
    reply.error                  # None, or the one line saying what went wrong
"""

from __future__ import annotations

from typing import Any

from claude_magic.core.errors import ClaudeError, ClaudeInterrupted
from claude_magic.core.turn import TurnState, Usage
from claude_magic.render.view import answer_bundle


class Reply:
    """One turn's answer. On a cell's last line it renders as the answer with its footer (sanitized HTML,
    like the live output), unless it was already streamed into that cell: then it is not drawn twice."""

    def __init__(self, state: TurnState, *, streamed_into: str | None = None) -> None:
        self.state = state
        self._streamed_into = streamed_into  # the cell (see _display.current_cell) it was drawn in, if any

    @property
    def text(self) -> str:
        """The answer's Markdown (all text blocks)."""
        return self.state.text

    @property
    def message(self) -> Any:
        """The SDK's final `anthropic.types.Message`; None when the turn did not complete."""
        return self.state.final_message

    @property
    def usage(self) -> Usage:
        """Tokens in and out (and prompt-cache reads/writes), as far as the turn got."""
        return self.state.total_usage  # summed over tool rounds

    @property
    def stop_reason(self) -> str | None:
        return self.state.stop_reason

    @property
    def parsed(self) -> Any:
        """A typed answer (`ask(..., output=Model)`): the validated object (a dict for a JSON-schema dict);
        None when no type was asked for, or when the answer was not one: then `error` says why."""
        return self.state.parsed

    @property
    def error(self) -> str | None:
        """None if the turn completed, else the one line saying what happened and what to do."""
        return None if self.state.error is None else self.state.error.message

    @property
    def ok(self) -> bool:
        return self.state.status == "complete"

    @property
    def code_blocks(self) -> list[tuple[str, str]]:
        """(language, code) of every code block in the answer, in order ("" when no language is given)."""
        from markdown_it import MarkdownIt

        blocks = []
        for token in MarkdownIt("commonmark").parse(self.text):
            if token.type == "fence":
                blocks.append((token.info.split(maxsplit=1)[0] if token.info.strip() else "", token.content))
            elif token.type == "code_block":
                blocks.append(("", token.content))
        return blocks

    @property
    def json(self) -> Any:
        """The answer parsed as JSON (`%%claude -f json`); a lone ```json fenced block counts as JSON.

        Raises ValueError, one line, when the answer is not JSON."""
        import json

        text = self.text.strip()
        blocks = self.code_blocks
        if len(blocks) == 1 and text.startswith("```") and text.endswith("```"):
            text = blocks[0][1]
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"The answer is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        status = self.state.status if self.error is None else f"{self.state.status}: {self.error}"
        preview = self.text if len(self.text) <= 60 else f"{self.text[:57]}..."
        return f"Reply({preview!r}, {status})"

    # -- display -------------------------------------------------------------------------------------
    # No `_repr_markdown_`: the answer is untrusted model output, and frontends render Markdown outputs
    # of executed cells without sanitizing them. The HTML below went through the sanitizing renderer.

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return dict(answer_bundle(self.state))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        from claude_magic.surfaces.display import current_cell, in_kernel

        if self._streamed_into is not None and self._streamed_into == current_cell():
            return  # `%claude ...` / `ask(...)` on the cell's last line: the answer is already there
        if not in_kernel():
            # A terminal: the answer's Markdown rendered and wrapped between words, as it streamed.
            from claude_magic.surfaces.terminal import TerminalSink

            print()  # below IPython's `Out[n]:`
            TerminalSink().finish(self.state)
            return
        display(self._repr_mimebundle_(), raw=True)


_last: list[Reply] = []  # the kernel's newest reply, from any surface (`%claude last`)


def remember_last(reply: Reply) -> Reply:
    _last[:] = [reply]
    return reply


def last_reply() -> Reply | None:
    return _last[0] if _last else None


__all__ = ["ClaudeError", "ClaudeInterrupted", "Reply", "last_reply", "remember_last"]
