"""The raw view: a turn drawn as the list of its stream events (`TurnState.events`), then the footer.

Every line was recorded once (`core.wire_events`) and never changes, so a growing list is drawn like the
answer view draws finished Markdown: each frame hands out only the lines added since the last one as a
frozen piece (the cell sink seals them into its slots), and the tail holds the status line alone. Lines
come from the network: they are HTML-escaped here, and were made printable when recorded.
"""

from __future__ import annotations

import html

from claude_magic.core.turn import TurnState
from claude_magic.render.footer import footer_html, footer_text
from claude_magic.render.view import WAITING_TEXT, Bundle, Piece, status_html

# The finished view shows this many lines at most: the first and the last half of them, and how many were
# left out between. Thousands of text_delta lines in the middle of a long answer teach nothing new, and
# the final output must stay a size a notebook can hold.
MAX_LINES_SHOWN = 2000
EVENTS_STYLE = "margin:0;padding:0;background:none;font-size:0.85em;line-height:1.35;white-space:pre;overflow-x:auto"


def events_html(lines: list[str]) -> str:
    """`lines` as one <pre> block (no margin, so consecutive blocks read as one list)."""
    if not lines:
        return ""
    body = "\n".join(html.escape(line) for line in lines)
    return f'<pre class="claude-magic-events" style="{EVENTS_STYLE}">{body}</pre>'


def shown_lines(lines: list[str]) -> list[str]:
    """The lines the finished view shows: all of them, or both ends with a note of what was left out."""
    if len(lines) <= MAX_LINES_SHOWN:
        return lines
    half = MAX_LINES_SHOWN // 2
    return [*lines[:half], f"… {len(lines) - 2 * half:,} events not shown …", *lines[-half:]]


def events_status_html(state: TurnState) -> str:
    """While the turn runs: a retry notice, or the waiting line until the first event arrives."""
    if state.notice or not state.events:
        return status_html(state)
    return ""


def events_bundle(state: TurnState) -> Bundle:
    """The whole raw view, rendered once: the event lines, then the footer (or the status line)."""
    lines = shown_lines(state.events or [])
    text = "\n".join(lines)
    body = events_html(lines)
    if state.finished:
        body += footer_html(state)
        text = f"{text}\n\n{footer_text(state)}" if text else footer_text(state)
    else:
        body += events_status_html(state)
        text = text or (state.notice or WAITING_TEXT)
    return {"text/plain": text, "text/html": body}


class EventsView:
    """Hands out the event lines recorded since the last frame as a frozen piece (the lines never
    change), and the status line as the tail. `chars` counts the characters handed out, what the frame
    budget measures this view by."""

    def __init__(self) -> None:
        self._shown = 0
        self.chars = 0

    def advance(self, state: TurnState) -> tuple[Piece | None, Piece]:
        lines = state.events or []
        new = lines[self._shown :]
        self._shown = len(lines)
        frozen = None
        if new:
            text = "\n".join(new)
            self.chars += len(text)
            frozen = Piece(events_html(new), text + "\n")
        tail = events_status_html(state)
        return frozen, Piece(tail, state.notice or ("" if lines else WAITING_TEXT))


__all__ = ["MAX_LINES_SHOWN", "EventsView", "events_bundle", "events_html", "shown_lines"]
