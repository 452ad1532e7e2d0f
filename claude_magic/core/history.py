"""Conversation history, one store per kernel, shared by the magic and the panel.

A turn is committed only as a whole (the user message and the complete assistant message
together), so a failed or interrupted turn never leaves a dangling user message that would make
the next request break the API's user/assistant alternation.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]

DEFAULT_CONVERSATION = "default"


@dataclass
class Conversation:
    """An alternating list of user/assistant messages."""

    name: str
    _messages: list[Message] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Definitions of the tools whose tool_use blocks are in `_messages`: the API rejects tool blocks in
    # `messages` unless `tools` defines them, so they stay with the conversation for later turns.
    _tools: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def messages(self) -> list[Message]:
        """A copy: callers can never break the invariant by editing it."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def __len__(self) -> int:
        return len(self._messages) // 2

    def request_messages(self, prompt: str | list[dict[str, Any]]) -> list[Message]:
        """The history plus a new user turn: what to send for `prompt`."""
        return [*self.messages, {"role": "user", "content": prompt}]

    def commit(self, prompt: str | list[dict[str, Any]], assistant_content: list[dict[str, Any]]) -> bool:
        """Append one complete exchange; an empty answer is not committed (the API rejects it)."""
        if not assistant_content:
            return False
        with self._lock:
            self._messages.append({"role": "user", "content": copy.deepcopy(prompt)})
            self._messages.append({"role": "assistant", "content": copy.deepcopy(assistant_content)})
        return True

    def commit_exchange(self, messages: list[Message], tools: dict[str, dict[str, Any]] | None = None) -> bool:
        """Append a whole tool exchange (user prompt, assistant, user results, ..., assistant) as one unit,
        with the definitions of the tools it used. The caller passes an API-valid exchange
        (`core.tool_loop.api_valid_prefix`)."""
        if len(messages) < 2 or messages[0]["role"] != "user" or messages[-1]["role"] != "assistant":
            return False
        with self._lock:
            self._messages.extend(copy.deepcopy(messages))
            self._tools.update(copy.deepcopy(tools or {}))
        return True

    @property
    def tool_definitions(self) -> dict[str, dict[str, Any]]:
        """Definitions of the tools used in this conversation, by name (see `_tools`)."""
        with self._lock:
            return copy.deepcopy(self._tools)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._tools.clear()


class ConversationStore:
    """Named conversations of this kernel."""

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._lock = threading.Lock()

    def get(self, name: str = DEFAULT_CONVERSATION) -> Conversation:
        with self._lock:
            if name not in self._conversations:
                self._conversations[name] = Conversation(name)
            return self._conversations[name]

    def names(self) -> list[str]:
        with self._lock:
            return list(self._conversations)


STORE = ConversationStore()
"""The kernel's conversations: module state, because history belongs to the kernel process."""
