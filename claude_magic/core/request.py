"""Build the Messages API request for one turn."""

from __future__ import annotations

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

    Prompt caching uses the request-level `cache_control`, which lets the API put the breakpoint on
    the last cacheable block itself: the next turn then reads the conversation so far from the
    cache, and the stored history never carries cache markers (the API allows only four per request).
    """
    request: dict[str, Any] = {"model": options.model, "max_tokens": options.max_tokens, "messages": messages}
    if options.prompt_caching:
        request["cache_control"] = _EPHEMERAL
    if options.system:
        request["system"] = options.system
    if options.temperature is not None:
        # SDK 2.x dropped sampling parameters from the typed signature (newer models reject them);
        # the API still takes temperature from older models, so it goes in the body as sent.
        request["extra_body"] = {"temperature": options.temperature}
    return request
