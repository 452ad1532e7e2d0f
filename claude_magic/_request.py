"""Build the Messages API request for one turn."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

_EPHEMERAL = {"type": "ephemeral"}


@dataclass(frozen=True)
class TurnOptions:
    """Per-turn settings, resolved from flags over config over defaults."""

    model: str
    max_tokens: int
    system: str = ""
    temperature: float | None = None
    prompt_caching: bool = True


def build_request(options: TurnOptions, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Keyword arguments for `client.messages.stream(...)`.

    With prompt caching on, one cache breakpoint goes on the newest user message, so the next turn
    reads the whole conversation so far from the cache. It is added here, to a copy, never to the
    stored history: the API allows only four breakpoints per request.
    """
    request: dict[str, Any] = {"model": options.model, "max_tokens": options.max_tokens}
    if options.prompt_caching and messages:
        messages = [*messages[:-1], _with_cache_breakpoint(messages[-1])]
    request["messages"] = messages
    if options.system:
        request["system"] = options.system
    if options.temperature is not None:
        request["temperature"] = options.temperature
    return request


def _with_cache_breakpoint(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else copy.deepcopy(content)
    if not blocks:
        return message
    blocks[-1] = {**blocks[-1], "cache_control": _EPHEMERAL}
    return {**message, "content": blocks}
