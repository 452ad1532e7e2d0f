"""What a request may carry of earlier thinking: the one place that applies the API's prefix rules.

On models with preserved thinking every `thinking` / `redacted_thinking` block is bound to its *prefix*:
the top-level `system`, `tools` and every message before it, as sent when the block was produced. If any of
that differs in a later request, the block and every later block fail the prefix check, and the API
answers 400 ("Invalid signature in thinking block. The block is bound to a different conversation.") or,
where asked to, drops them. An edit invalidates only the thinking after it: blocks before the change, and
blocks Claude writes after it, stay valid.
  https://platform.claude.com/docs/en/build-with-claude/preserved-thinking
  https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/prefix-checks

So every committed turn records, for each of its assistant messages, a digest of the prefix it was produced
under (`prefixes_of`: system, tools and the messages before it, exactly as sent). Building a later request,
`carry` walks the history as it will be sent, computing the same digest as it goes, and leaves out the
thinking blocks of every message whose recorded digest differs: an earlier cell re-run, a cell with its own
`--system`, tools offered later, a deleted cell, `history_images = False`, an edited import. Since a removed
block changes the prefix of what follows, the walk hashes what it actually sends: later blocks survive
only when they were produced under that same edited prefix. Nothing else is dropped, so as much reasoning
as possible stays in context. (Sending a block the API would reject costs a 400; dropping one the API
would accept costs that reasoning, never an error: a turn without a record is treated as changed.)

A block the current model cannot read (another model's, "Switching models mid-conversation") is left in:
the API drops it without an error, and later blocks were produced with it in their prefix. `carry` counts
such blocks so the footer can say the new model did not see that reasoning.
  https://platform.claude.com/docs/en/build-with-claude/preserved-thinking#switching-models
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
THINKING_KINDS = ("thinking", "redacted_thinking")


def start_digest(system: Any, tools: Any) -> str:
    """The digest of a conversation's fixed part: top-level `system` and `tools` as sent (None when absent)."""
    return _digest("", {"system": system or None, "tools": tools or None})


def chain(digest: str, message: Message) -> str:
    """The prefix digest once `message` (as sent) is added after the prefix `digest` stands for."""
    return _digest(digest, message)


def _digest(previous: str, value: Any) -> str:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{previous}\0{data}".encode()).hexdigest()


def prefixes_of(request: dict[str, Any], exchange: list[Message]) -> list[str]:
    """For each assistant message of `exchange` (a turn's messages: its user message first), the digest of
    the prefix it was produced under. `request` is the turn's first request as sent: its messages end
    with the turn's user message, which `exchange` repeats."""
    digest = start_digest(request.get("system"), request.get("tools"))
    for message in request["messages"][:-1]:
        digest = chain(digest, message)
    recorded = []
    for message in exchange:
        if message["role"] == "assistant":
            recorded.append(digest)
        digest = chain(digest, message)
    return recorded


@dataclass
class Carried:
    """The history a request sends, and what of its thinking it left out or the model will not read."""

    messages: list[Message]
    dropped: int = 0  # thinking blocks left out: an edit changed what came before them
    dropped_turns: int = 0  # turns they belonged to
    unreadable: dict[str, int] = field(default_factory=dict)  # model -> its blocks this model cannot read


def carry(turns: Iterable[Any], *, system: Any, tools: Any, model: str, checks_prefix: bool = True,
          readable: Callable[[str], bool] | None = None,
          prepare: Callable[[list[Message]], list[Message]] | None = None) -> Carried:
    """The messages of `turns` (core.history.Turn) as the next request sends them, thinking blocks whose prefix
    changed left out. `system` / `tools`: what the request sends. `prepare`: how a turn's messages are sent
    (e.g. `without_images`), applied before hashing. `readable(producer)`: whether `model` reads thinking
    written by `producer` (None: every model's). `checks_prefix` False: `model` does not bind thinking to its
    prefix (before Claude 5.5 and Fable 5.1 it ignores earlier turns' thinking), so nothing is left out; the
    records stay, and a later request to a model that checks drops what an edit invalidated then."""
    digest = start_digest(system, tools)
    carried = Carried([])
    for turn in turns:
        messages = prepare(turn.messages) if prepare is not None else turn.messages
        recorded = iter(getattr(turn, "prefixes", None) or ())
        left_out = 0
        for message in messages:
            if message["role"] == "assistant":
                expected = next(recorded, None)
                blocks = _thinking(message)
                if blocks and checks_prefix and expected != digest:
                    message = _without_thinking(message)
                    left_out += blocks
                elif blocks and readable is not None and turn.model and not readable(turn.model):
                    carried.unreadable[turn.model] = carried.unreadable.get(turn.model, 0) + blocks
            carried.messages.append(message)
            digest = chain(digest, message)
        if left_out:
            carried.dropped += left_out
            carried.dropped_turns += 1
    return carried


def _thinking(message: Message) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for block in content if isinstance(block, dict) and block.get("type") in THINKING_KINDS)


def _without_thinking(message: Message) -> Message:
    content = [block for block in message["content"] if block.get("type") not in THINKING_KINDS]
    # An answer that was nothing but thinking: the API rejects empty content, so a short text holds its place.
    return {**message, "content": content or [{"type": "text", "text": "(no answer)"}]}


def describe(carried: Carried, model: str) -> str | None:
    """One phrase for the footer about the thinking this request did not carry (None: it carried all)."""
    notes = []
    if carried.dropped:
        turns = carried.dropped_turns
        notes.append(f"earlier thinking of {turns} turn{'s' * (turns != 1)} left out (an edit changed what "
                     "came before it)")
    for producer, count in carried.unreadable.items():
        notes.append(f"{count} thinking block{'s' * (count != 1)} of {producer} not read by {model}")
    return "; ".join(notes) or None


__all__ = ["Carried", "carry", "chain", "describe", "prefixes_of", "start_digest"]
