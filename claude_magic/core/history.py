"""Conversation history, one store per kernel, shared by every surface.

A conversation is a list of turns. A turn is one whole exchange the API accepts back as history: the
user's message first, the final assistant message last, and in between the assistant's tool calls and
the user messages that answer them. Turns are committed only whole, so a failed or interrupted answer
never leaves a dangling user message that would break the API's user/assistant alternation.

A turn can belong to a notebook cell (`owner`): running that cell again replaces the turn in place,
and its request carries only the turns before it, so history mirrors the cells in the order they first
ran. Turns without an owner (the panel, `ask()`, terminal IPython) are appended.

Every change is reported to the store's `listener` (see `core.persist`), which saves it.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Message = dict[str, Any]

DEFAULT_CONVERSATION = "default"


@dataclass
class Turn:
    """One committed exchange and where it came from."""

    messages: list[Message]  # user first, assistant last; tool calls and results in between
    source: str = "code"  # cell | panel | code | import
    owner: str | None = None  # the cell (and which %claude of it) the turn belongs to: re-running replaces it
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)  # summed over the turn's messages
    stop_reason: str | None = None
    cost: float | None = None  # estimated US dollars (core.pricing), None when the model's prices are unknown
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # definitions of the tools its request sent
    # For each assistant message, the digest of the prefix (system, tools, earlier messages as sent) its
    # thinking blocks are bound to (core.preserved); empty for a turn from before they were recorded.
    prefixes: list[str] = field(default_factory=list)
    offline: bool = False  # answered by the bundled emulator, not Claude (said wherever the turn is shown)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)

    @property
    def prompt_text(self) -> str:
        return message_text(self.messages[0]["content"])

    @property
    def answer_text(self) -> str:
        return message_text(self.messages[-1]["content"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # copies every list and dict on the way

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        known = {name: copy.deepcopy(data[name]) for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


@dataclass(frozen=True)
class Placement:
    """Where a committed turn went: its 1-based position, the conversation's length, and whether it
    replaced an earlier turn of the same cell."""

    position: int
    total: int
    replaced: bool

    def describe(self) -> str:
        where = f"turn {self.position} of {self.total}"
        return f"replaced {where}" if self.replaced else where


Change = Literal["turn", "order", "reset"]
Listener = Callable[["Conversation", Change, "Turn | None"], None]


class Conversation:
    """An ordered list of turns; every method is thread-safe and hands out copies."""

    def __init__(self, name: str, listener: Listener | None = None) -> None:
        self.name = name
        self._turns: list[Turn] = []
        self._lock = threading.RLock()
        self._listener = listener
        self.rewrites = 0  # bumped on every change but an append: a surface showing the turns must redraw them

    # -- reading ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._turns)

    @property
    def turns(self) -> list[Turn]:
        with self._lock:
            return copy.deepcopy(self._turns)

    @property
    def turn_ids(self) -> list[str]:
        with self._lock:
            return [turn.id for turn in self._turns]

    @property
    def messages(self) -> list[Message]:
        """The whole history as the API takes it (a copy: callers cannot break the invariant by editing it)."""
        with self._lock:
            return [copy.deepcopy(message) for turn in self._turns for message in turn.messages]

    def last_turn(self) -> Turn | None:
        with self._lock:
            return copy.deepcopy(self._turns[-1]) if self._turns else None

    def owned_by(self, owner: str | None) -> Turn | None:
        """The turn a cell committed earlier, if any."""
        if owner is None:
            return None
        with self._lock:
            return next((copy.deepcopy(turn) for turn in self._turns if turn.owner == owner), None)

    def messages_before(self, turn_id: str | None) -> list[Message]:
        """The history up to (not including) `turn_id`; all of it when that turn is not here."""
        with self._lock:
            kept: list[Message] = []
            for turn in self._turns:
                if turn.id == turn_id:
                    break
                kept.extend(copy.deepcopy(turn.messages))
            return kept

    def turns_before(self, turn_id: str | None) -> list[Turn]:
        """The turns up to (not including) `turn_id`; all of them when that turn is not here."""
        with self._lock:
            kept = []
            for turn in self._turns:
                if turn.id == turn_id:
                    break
                kept.append(copy.deepcopy(turn))
            return kept

    def request_messages(self, prompt: str | list[dict[str, Any]], *, before: str | None = None) -> list[Message]:
        """The history (up to the turn `before` replaces, if any) plus a new user message."""
        return [*self.messages_before(before), {"role": "user", "content": prompt}]

    @property
    def tool_definitions(self) -> dict[str, dict[str, Any]]:
        """Definitions of the tools whose blocks are in the history, by name. The API rejects tool blocks
        in `messages` unless `tools` defines them, so they go along with later requests."""
        with self._lock:
            definitions: dict[str, dict[str, Any]] = {}
            for turn in self._turns:
                definitions.update(copy.deepcopy(turn.tools))
            return definitions

    # -- changing --------------------------------------------------------------------------------------

    def commit_turn(self, turn: Turn, *, replace: str | None = None) -> Placement | None:
        """Add `turn` (a whole, API-valid exchange), in place of the turn `replace` names when it is still
        here, else at the end. None (nothing stored) when it is not an exchange the API accepts back."""
        messages = turn.messages
        if len(messages) < 2 or messages[0]["role"] != "user" or messages[-1]["role"] != "assistant":
            return None
        if not messages[-1]["content"]:
            return None  # an empty answer: the API rejects empty content
        turn = copy.deepcopy(turn)
        with self._lock:
            index = None if replace is None else next(
                (i for i, old in enumerate(self._turns) if old.id == replace), None)
            if index is None:
                self._turns.append(turn)
                placement = Placement(len(self._turns), len(self._turns), replaced=False)
            else:
                turn.id = self._turns[index].id  # the same turn, answered anew: saved over its old file
                self._turns[index] = turn
                placement = Placement(index + 1, len(self._turns), replaced=True)
            self._changed("turn", turn, appended=not placement.replaced)
        return placement

    def commit(self, prompt: str | list[dict[str, Any]], assistant_content: list[dict[str, Any]]) -> bool:
        """Append one plain exchange (a prompt and its answer); False for an empty answer."""
        turn = Turn([{"role": "user", "content": prompt}, {"role": "assistant", "content": assistant_content}])
        return self.commit_turn(turn) is not None

    def drop_owned_by(self, owners: Iterable[str]) -> int:
        """Remove the turns of deleted cells (an owner is the cell id, or `cell id#n` for its n-th %claude)."""
        cells = set(owners)
        if not cells:
            return 0
        with self._lock:
            kept = [turn for turn in self._turns if turn.owner is None or turn.owner.split("#", 1)[0] not in cells]
            dropped = len(self._turns) - len(kept)
            if dropped:
                self._turns = kept
                self._changed("order", None)
        return dropped

    def load(self, turns: list[Turn]) -> None:
        """Replace the whole history (resume, import); the caller has validated it."""
        with self._lock:
            self._turns = copy.deepcopy(turns)
            self._changed("order", None)

    def reset(self) -> None:
        with self._lock:
            self._turns.clear()
            self._changed("reset", None)

    def _changed(self, change: Change, turn: Turn | None, *, appended: bool = False) -> None:
        if not appended:
            self.rewrites += 1
        if self._listener is not None:
            self._listener(self, change, turn)


class ConversationStore:
    """Named conversations of this kernel."""

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._lock = threading.Lock()
        self._listener: Listener | None = None

    def get(self, name: str = DEFAULT_CONVERSATION) -> Conversation:
        with self._lock:
            if name not in self._conversations:
                self._conversations[name] = Conversation(name, self._notify)
            return self._conversations[name]

    def names(self) -> list[str]:
        with self._lock:
            return list(self._conversations)

    def conversations(self) -> list[Conversation]:
        with self._lock:
            return list(self._conversations.values())

    def set_listener(self, listener: Listener | None) -> None:
        """Who hears of every change (the saver of `core.persist`); one at a time."""
        self._listener = listener

    def _notify(self, conversation: Conversation, change: Change, turn: Turn | None) -> None:
        listener = self._listener
        if listener is not None:
            listener(conversation, change, turn)


STORE = ConversationStore()
"""The kernel's conversations: module state, because history belongs to the kernel process."""


def message_text(content: str | list[dict[str, Any]]) -> str:
    """A message's text for people: its text blocks, other blocks named in brackets (thinking left out:
    on today's models every answer starts with a block that is often only a signature)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        kind = block.get("type")
        if kind in ("thinking", "redacted_thinking"):
            continue
        if kind == "text":
            parts.append(block["text"])
        elif kind == "tool_use":
            parts.append(f"[tool call {block.get('name')}({block.get('input')})]")
        elif kind == "tool_result":
            parts.append("[tool result]")
        else:
            parts.append(f"[{kind} block]")
    return "\n\n".join(parts)


__all__ = ["DEFAULT_CONVERSATION", "STORE", "Conversation", "ConversationStore", "Placement", "Turn",
           "message_text"]
