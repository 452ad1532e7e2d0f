"""Conversations for people to read: `%claude history` and `%claude conversations`."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from claude_magic.core.history import Conversation, Turn, message_text
from claude_magic.core.persist import SavedConversation
from claude_magic.core.pricing import format_cost
from claude_magic.render.markdown import render_markdown

_FACTS_STYLE = "color:#777;font-size:0.85em"


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


class HistoryView:
    """A conversation rendered for display (`%claude history`): numbered turns, where each came from
    (cell, panel, code, import), its tokens and estimated cost, and the conversation's totals."""

    def __init__(self, conversation: Conversation) -> None:
        self.name = conversation.name
        self.turns = conversation.turns

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if not self.turns:
            empty = f"Conversation {self.name!r} is empty."
            return {"text/plain": empty, "text/html": f"<p><em>{html.escape(empty)}</em></p>"}
        text_parts = [f"Conversation {self.name!r}: {totals(self.turns)}"]
        html_parts = [f"<p><strong>Conversation {html.escape(self.name)}</strong> · "
                      f"{html.escape(totals(self.turns))}</p>"]
        for number, turn in enumerate(self.turns, start=1):
            facts = turn_facts(number, turn)
            text_parts.append(f"── {facts}")
            html_parts.append(f'<hr><div style="{_FACTS_STYLE}">{html.escape(facts)}</div>')
            for message in turn.messages:
                body = message_text(message["content"])
                text_parts.append(f"{message['role']}:\n{body}")
                html_parts.append(f"<div><strong>{html.escape(message['role'])}</strong></div>{render_markdown(body)}")
        return {"text/plain": "\n\n".join(text_parts), "text/html": "".join(html_parts)}


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
