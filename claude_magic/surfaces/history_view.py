"""Conversations for people to read: `%claude history` and `%claude conversations`."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

from claude_magic.core.history import Conversation, Turn, message_text
from claude_magic.core.persist import SavedConversation
from claude_magic.core.pricing import format_cost
from claude_magic.core.server_tools import (
    RESULT_KINDS,
    CitationIndex,
    call_line,
    markdown_escape,
    markers_text,
    sources_markdown,
    sources_text,
)
from claude_magic.render.markdown import render_markdown, themed

# Long prompts and answers are clipped where the conversation is shown (all of it stays in history and
# in `%claude export`): a 200k-character prompt must not make a 40,000-pixel output.
PROMPT_CHARS = 1_500
ANSWER_CHARS = 4_000
# The turn's own label is bigger than any heading inside it: an answer's `#` becomes <h4> (JupyterLab: 1.2em),
# `##` <h5>, the rest <h6>, under a label of 1.35em.
_HEADING_SHIFT = 3
_HEADING_TAG = re.compile(r"<(/?)h([1-6])>")
_FACTS_STYLE = f"{themed('color', '--jp-content-font-color2', '#6e6e6e')};font-size:0.85em"
_TURN_LABEL_STYLE = "font-size:1.35em;font-weight:bold"
_BODY_STYLE = "margin:0 0 0.6em 1em"


def _tokens(usage: dict[str, int]) -> str:
    return f"{usage.get('input_tokens', 0):,} in / {usage.get('output_tokens', 0):,} out"


def _cost(costs: list[float | None]) -> str | None:
    """The summed estimate, or None when any turn's prices were unknown (or it ran offline)."""
    known = [cost for cost in costs if cost is not None]
    return f"{format_cost(sum(known))} (estimate)" if known and len(known) == len(costs) else None


def turn_facts(number: int, turn: Turn) -> str:
    facts = [f"Turn {number}", turn.source, *([turn.model] if turn.model else [])]
    if turn.usage:
        facts.append(_tokens(turn.usage))
    if turn.stop_reason and turn.stop_reason != "end_turn":
        facts.append(f"stop_reason: {turn.stop_reason}")
    if turn.cost is not None:
        facts.append(format_cost(turn.cost))
    return " · ".join(facts)


def totals(turns: list[Turn]) -> str:
    usage = {name: sum(turn.usage.get(name, 0) for turn in turns) for name in ("input_tokens", "output_tokens")}
    parts = [f"{len(turns)} turn{'s' * (len(turns) != 1)}", _tokens(usage)]
    cost = _cost([turn.cost for turn in turns])
    if cost:
        parts.append(cost)
    return " · ".join(parts)


def clipped(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and a line saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n\n… ({len(text) - limit:,} more characters; %claude export FILE.md writes it all)"


def _demoted(markup: str) -> str:
    """Headings of sanitized HTML moved down three levels, to <h6> at most (every `<` of text is escaped
    there: what the pattern finds are tags)."""
    return _HEADING_TAG.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + _HEADING_SHIFT, 6)}>", markup)


def readable(content: str | list[dict[str, Any]], *, markdown: bool) -> str:
    """A message for people to read: its text, each server tool call with its result as one line (`web search
    “query” → 3 results`), cited passages followed by their [n] markers and the sources listed below; other
    blocks as `message_text` names them. `markdown`: for a Markdown renderer (the HTML view, the terminal),
    where what came from the network (queries, titles, URLs) is escaped so it shows as written and never as
    Markdown; else plain text. The text blocks of one stretch of answer read on as one text: the API splits a
    sentence into blocks of its own at each citation."""
    if isinstance(content, str) or not any(
            block.get("type") in ("server_tool_use", *RESULT_KINDS) or block.get("citations") for block in content):
        return message_text(content)
    results = {block.get("tool_use_id"): block for block in content if block.get("type") in RESULT_KINDS}
    citations = CitationIndex()  # numbered per message, like the answer's own view and the export
    paragraphs: list[str] = []
    follows_text = False  # the previous block was text: this one's text reads on in the same paragraph
    for block in content:
        kind = block.get("type")
        if kind in RESULT_KINDS:
            continue  # drawn on its call's line
        if kind == "text":
            text = str(block.get("text", ""))
            if block.get("citations"):
                marks = markers_text(citations.numbers(list(block["citations"])))
                text += markdown_escape(marks) if markdown else marks
            if follows_text:
                paragraphs[-1] += text
            else:
                paragraphs.append(text)
            follows_text = True
            continue
        follows_text = False
        if kind == "server_tool_use":
            line = call_line(block, results.get(block.get("id")))
            paragraphs.append(f"*{markdown_escape(line)}*" if markdown else line)
        elif shown := message_text([block]):
            paragraphs.append(shown)
    if citations.sources:
        paragraphs.append(sources_markdown(citations) if markdown else sources_text(citations).rstrip("\n"))
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph.strip())


def _messages(turn: Turn, *, markdown: bool) -> list[tuple[str, str]]:
    """(role, text) of a turn's messages, each clipped: prompts shorter than answers."""
    shown = []
    for message in turn.messages:
        limit = PROMPT_CHARS if message["role"] == "user" else ANSWER_CHARS
        shown.append((message["role"], clipped(readable(message["content"], markdown=markdown), limit)))
    return shown


def header(name: str, turns: list[Turn]) -> str:
    """The first line of `%claude history`, the same in a notebook and a terminal."""
    return f"Conversation {name!r} · {totals(turns)}"


class HistoryView:
    """A conversation rendered for display (`%claude history`): numbered turns, where each came from
    (cell, panel, terminal, code, import), its tokens and estimated cost, and the conversation's totals.
    Turns are folded (the newest open), long prompts and answers clipped, and an answer's headings kept
    smaller than its turn's label. In a terminal it prints rendered Markdown (`print_to_terminal`)."""

    def __init__(self, conversation: Conversation) -> None:
        self.name = conversation.name
        self.turns = conversation.turns

    def _empty(self) -> str:
        return f"Conversation {self.name!r} is empty."

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if not self.turns:
            return {"text/plain": self._empty(), "text/html": f"<p><em>{html.escape(self._empty())}</em></p>"}
        text_parts = [header(self.name, self.turns)]
        html_parts = [f"<p><strong>{html.escape(header(self.name, self.turns))}</strong></p>"]
        for number, turn in enumerate(self.turns, start=1):
            facts = turn_facts(number, turn)
            label, _, rest = facts.partition(" · ")
            text_parts.append(f"── {facts}")
            body = []
            for (role, text), (_, marked) in zip(_messages(turn, markdown=False), _messages(turn, markdown=True),
                                                 strict=True):
                text_parts.append(f"{role}:\n{text}")
                body.append(f"<div><strong>{html.escape(role)}</strong></div>{_demoted(render_markdown(marked))}")
            opened = " open" if number == len(self.turns) else ""
            html_parts.append(
                f'<details{opened}><summary><span style="{_TURN_LABEL_STYLE}">'
                f'{html.escape(label)}</span> <span style="{_FACTS_STYLE}">· {html.escape(rest)}</span></summary>'
                f'<div style="{_BODY_STYLE}">{"".join(body)}</div></details>')
        return {"text/plain": "\n\n".join(text_parts), "text/html": "".join(html_parts)}

    def print_to_terminal(self, console: Any = None) -> None:
        """The conversation on a terminal: Markdown rendered and wrapped between words by rich."""
        from rich.console import Console, Group
        from rich.markdown import Markdown
        from rich.rule import Rule
        from rich.text import Text

        from claude_magic.surfaces.terminal import CODE_THEME, printable

        console = console or Console(highlight=False, markup=False, emoji=False)
        if not self.turns:
            console.print(Text(self._empty()))
            return
        pieces: list[Any] = [Text(header(self.name, self.turns), style="bold")]
        for number, turn in enumerate(self.turns, start=1):
            pieces.append(Rule(turn_facts(number, turn), align="left", style="dim"))
            for role, text in _messages(turn, markdown=True):
                pieces.append(Text(f"{role}:", style="bold"))
                pieces.append(Markdown(printable(text), code_theme=CODE_THEME))
        console.print(Group(*pieces))


def conversations_report(in_memory: list[Conversation], saved: list[SavedConversation], folder: Path | None) -> str:
    """`%claude conversations`: this kernel's conversations (and the save each goes to), then the saves of
    this notebook's conversations, each with the kernel that writes it."""
    lines = ["In this kernel:"]
    live = [conversation for conversation in in_memory if len(conversation)]
    if not live:
        lines.append("  (no turns yet)")
    ours = {entry.conversation: entry.name for entry in saved if entry.ours}
    for conversation in live:
        save = f" · saved as {ours[conversation.name]}" if conversation.name in ours else ""
        lines.append(f"  {conversation.name:<24} {totals(conversation.turns)}{save}")
    if folder is None:
        lines.append("Saving is off (%config ClaudeMagic.history_dir is empty).")
        return "\n".join(lines)
    lines.append(f"Saved for this notebook ({folder}):")
    if not saved:
        lines.append("  (none yet)")
    for entry in saved:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.modified))
        usage = {"input_tokens": entry.input_tokens, "output_tokens": entry.output_tokens}
        parts = [f"{entry.turns} turn{'s' * (entry.turns != 1)}", _tokens(usage)]
        if entry.cost is not None:
            parts.append(f"{format_cost(entry.cost)} (estimate)")
        lines.append(f"  {entry.name:<32} {' · '.join(parts)} · saved {when} · {_writer(entry)}")
    lines.append("Load one back with %claude resume NAME (a conversation's name loads its newest save).")
    return "\n".join(lines)


def _writer(entry: SavedConversation) -> str:
    """Which kernel a save belongs to: two kernels of one notebook (or terminal sessions) save apart."""
    if entry.ours:
        return "this kernel"
    if not entry.kernel:
        return "an earlier kernel"
    pid = entry.kernel.get("pid")
    if entry.running is None:
        return f"a kernel on {entry.kernel.get('host')} (pid {pid})"
    started = entry.kernel.get("started")
    return f"{'another running' if entry.running else 'an earlier'} kernel (pid {pid}, started {started})"


__all__ = ["HistoryView", "conversations_report", "totals", "turn_facts"]
