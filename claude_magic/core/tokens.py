"""Input tokens before sending: what `%claude tokens` prints, and the guard that refuses an oversized turn.

    limit = input_limit(settings.max_input_tokens, model)          # None: no guard
    refusal = check_budget(request, limit, count=lambda params: client.messages.count_tokens(**params).input_tokens)

A normal turn pays no extra round trip. The tokens of a conversation state (model, system, tools and
the messages so far) are cached under a fingerprint of that state: filled by every completed turn from
the usage the API reported for it (input + output tokens: exactly the next request's prefix), and by
every `messages.count_tokens` call. The guard adds a local estimate of the new user message to the
known prefix; only when that lands within SAFETY_MARGIN of the limit (or no count is known and the
estimate is that close) does it ask `count_tokens` for the exact number, once per state.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from claude_magic import _media
from claude_magic.core.context import CHARS_PER_TOKEN
from claude_magic.core.models import context_window

# Keys of a streaming request that `messages.count_tokens` takes too (the rest do not change the count).
COUNT_KEYS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
SAFETY_MARGIN = 0.8  # estimates below 80 % of the limit are sent without counting
MESSAGE_OVERHEAD = 4  # role markers and separators per message, as the API counts them


class TokenCache:
    """Known input-token counts by conversation-state fingerprint (small LRU, thread-safe)."""

    def __init__(self, size: int = 512) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.count_calls = 0  # how many times count_tokens was asked (tests and the benchmark read it)

    def get(self, key: str) -> int | None:
        with self._lock:
            if key in self._counts:
                self._counts.move_to_end(key)
            return self._counts.get(key)

    def put(self, key: str, tokens: int) -> None:
        with self._lock:
            self._counts[key] = tokens
            self._counts.move_to_end(key)
            while len(self._counts) > self._size:
                self._counts.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


CACHE = TokenCache()


def input_limit(setting: int | None, model: str) -> int | None:
    """max_input_tokens made concrete: None → the model's context window (None if unknown); 0 → off."""
    if setting is None:
        return context_window(model)
    return setting or None


def count_params(request: dict[str, Any], messages: list[Any] | None = None) -> dict[str, Any]:
    params = {key: request[key] for key in COUNT_KEYS if key in request}
    if messages is not None:
        params["messages"] = messages
    return params


def fingerprint(request: dict[str, Any], messages: list[Any] | None = None) -> str:
    """Identifies a conversation state: model, system, tools and the messages (default: the request's)."""
    state = _light(count_params(request, messages))
    encoded = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


_LONG = 4096


def _light(value: Any) -> Any:
    """`value` with every long string (images' and PDFs' base64) stood in for by its length and a hash of
    every 251st character: hashing megabytes of base64 on every turn would cost ~50 ms a megabyte, this
    costs microseconds, and two different attachments agreeing on both is not a case worth paying for."""
    if isinstance(value, str):
        if len(value) <= _LONG:
            return value
        return f"<{len(value)}:{hashlib.blake2b(value[::251].encode(), digest_size=8).hexdigest()}>"
    if isinstance(value, dict):
        return {key: _light(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_light(item) for item in value]
    return value


def estimate_content(content: Any) -> int:
    """A local estimate of a message content's tokens: text by length, images and PDFs by the API's rules."""
    if isinstance(content, str):
        return math.ceil(len(content) / CHARS_PER_TOKEN)
    if not isinstance(content, list):
        return math.ceil(len(json.dumps(content, default=str)) / CHARS_PER_TOKEN)
    total = 0
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        source = block.get("source") if isinstance(block, dict) else None
        if kind in ("image", "document") and isinstance(source, dict) and source.get("type") == "base64":
            total += _media_tokens(kind, source)
        elif kind == "text":
            total += math.ceil(len(block.get("text", "")) / CHARS_PER_TOKEN)
        else:
            total += math.ceil(len(json.dumps(block, default=str)) / CHARS_PER_TOKEN)
    return total


def _media_tokens(kind: str, source: dict[str, Any]) -> int:
    import base64
    import binascii

    data = str(source.get("data", ""))
    try:
        raw = base64.b64decode(data[: 64 * 1024 // 3 * 4] if kind == "image" else data)
    except (binascii.Error, ValueError):
        return 1_600
    if kind == "image":
        size = _media.image_size(raw)
        return _media.image_tokens(*size) if size else 1_600
    return _media.pdf_tokens(raw)


def estimate_request(request: dict[str, Any], messages: list[Any] | None = None) -> int:
    messages = request.get("messages", []) if messages is None else messages
    total = estimate_content(request.get("system", ""))
    if request.get("tools"):
        total += math.ceil(len(json.dumps(request["tools"], default=str)) / CHARS_PER_TOKEN)
    for message in messages:
        total += MESSAGE_OVERHEAD + estimate_content(message.get("content"))
    return total


def plan(request: dict[str, Any], limit: int, cache: TokenCache = CACHE) -> tuple[str, int]:
    """("ok" | "count" | "refuse", tokens): send now, count exactly first, or refuse with this count."""
    exact = cache.get(fingerprint(request))
    if exact is not None:
        return ("refuse" if exact > limit else "ok"), exact
    messages = request.get("messages", [])
    history = cache.get(fingerprint(request, messages[:-1])) if len(messages) > 1 else None
    if history is not None:
        estimate = history + MESSAGE_OVERHEAD + estimate_content(messages[-1].get("content"))
    else:
        estimate = estimate_request(request)
    return ("ok" if estimate <= limit * SAFETY_MARGIN else "count"), estimate


def count_exactly(request: dict[str, Any], count: Callable[[dict[str, Any]], int],
                  cache: TokenCache = CACHE) -> int:
    cache.count_calls += 1  # counted when asked, so a failed count is a call too
    return _remember(request, count(count_params(request)), cache)


def _remember(request: dict[str, Any], tokens: int, cache: TokenCache) -> int:
    """Keep an exact count the API gave for `request` (sync and async paths alike)."""
    cache.put(fingerprint(request), tokens)
    return tokens


def check_budget(request: dict[str, Any], limit: int | None, count: Callable[[dict[str, Any]], int],
                 cache: TokenCache = CACHE) -> str | None:
    """None to send the turn, else the one line refusing it. `count(params)` asks the API."""
    if not limit:
        return None
    verdict, tokens = plan(request, limit, cache)
    if verdict == "count":
        try:
            tokens = count_exactly(request, count, cache)
        except Exception:  # noqa: BLE001 - a failed count must not block the turn; the request says the rest
            return None
    return refusal_line(tokens, limit, request.get("model", "")) if tokens > limit else None


async def check_budget_async(request: dict[str, Any], limit: int | None,
                             count: Callable[[dict[str, Any]], Awaitable[int]],
                             cache: TokenCache = CACHE) -> str | None:
    """`check_budget` with an awaitable count (AsyncAnthropic)."""
    if not limit:
        return None
    verdict, tokens = plan(request, limit, cache)
    if verdict == "count":
        try:
            cache.count_calls += 1
            tokens = _remember(request, await count(count_params(request)), cache)
        except Exception:  # noqa: BLE001
            return None
    return refusal_line(tokens, limit, request.get("model", "")) if tokens > limit else None


def refusal_line(tokens: int, limit: int, model: str) -> str:
    window = context_window(model)
    what = f"{model}'s context window" if window == limit else "max_input_tokens"
    return (f"This turn would send {tokens:,} input tokens, over the limit of {limit:,} ({what}); nothing was "
            "sent. Fix: %claude reset (or --new) to start over, attach less, or raise "
            "%config ClaudeMagic.max_input_tokens (0 turns the check off).")


def tokens_report(tokens: int, model: str, limit: int | None, *, turns: int, parts: list[str]) -> str:
    """What `%claude tokens` prints: the count, what it holds, the window and what is left."""
    carried = ", ".join([f"{turns} turn{'s' * (turns != 1)} of history", *parts])
    lines = [f"Next request: {tokens:,} input tokens ({carried}; counted with messages.count_tokens), "
             "plus your prompt."]
    window = context_window(model)
    if window is None:
        lines.append(f"{model}: context window not known (the model is not in claude_magic._model_facts).")
    else:
        lines.append(f"{model}: context window {window:,} tokens, {max(window - tokens, 0):,} left.")
    if limit:
        lines.append(f"max_input_tokens: {limit:,}; turns above it are refused before sending.")
    else:
        lines.append("max_input_tokens: off.")
    return "\n".join(lines)


def remember_exchange(history_messages: list[Any], request: dict[str, Any], usage: Any,
                      cache: TokenCache = CACHE) -> None:
    """After a completed turn: the new history's tokens are what the API just reported, in and out."""
    tokens = (usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
              + usage.output_tokens)
    if tokens > 0:
        cache.put(fingerprint(request, history_messages), tokens)


__all__ = ["CACHE", "TokenCache", "check_budget", "check_budget_async", "count_exactly", "count_params",
           "estimate_request", "fingerprint", "input_limit", "plan", "refusal_line", "remember_exchange",
           "tokens_report"]
