"""A deterministic stand-in tokenizer.

The emulator needs "tokens" for three things: the size of each streamed delta, the pacing schedule and
the usage numbers. Real tokenizers are not available offline, so a token here is a regex piece of text:
a word (or a run of punctuation) together with the whitespace before it. Words longer than
``MAX_PIECE`` characters are split into pieces of at most that length, which keeps the count per
English word close to real tokenizers (~1.3 tokens per word). Joining the pieces always gives back the
original text exactly, so a client that concatenates deltas reproduces the scripted answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._media_blocks import media_tokens

MAX_PIECE = 8

# Leading whitespace + a word or a punctuation run; a whitespace-only tail becomes its own token so no
# character is ever dropped.
_TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s]+)|\s+")

# Role markers and separators cost real tokens on the API; a small constant per message mirrors that.
MESSAGE_OVERHEAD_TOKENS = 3


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens whose concatenation is exactly ``text``."""
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        core = piece.lstrip()
        lead = piece[: len(piece) - len(core)]
        if len(core) <= MAX_PIECE:
            tokens.append(piece)
            continue
        # The leading whitespace stays with the first piece, as BPE tokenizers do.
        parts = [core[i : i + MAX_PIECE] for i in range(0, len(core), MAX_PIECE)]
        tokens.append(lead + parts[0])
        tokens.extend(parts[1:])
    return tokens


def count_tokens(text: str) -> int:
    """Number of tokens in ``text``."""
    return len(tokenize(text))


def _content_tokens(content: Any) -> int:
    """Tokens of one message's content (a string or a list of content blocks)."""
    if isinstance(content, str):
        return count_tokens(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            total += count_tokens(str(block.get("text", "")))
        elif kind == "thinking":
            total += count_tokens(str(block.get("thinking", "")))
        elif kind == "redacted_thinking":
            total += count_tokens(str(block.get("data", "")))
        elif kind in ("tool_use", "server_tool_use"):
            total += count_tokens(str(block.get("name", ""))) + count_tokens(json.dumps(block.get("input", {})))
        elif kind == "tool_result":
            total += _content_tokens(block.get("content", ""))
        elif kind in ("image", "document"):
            tokens = media_tokens(block)  # the API's own estimate for images; pages for PDFs
            total += tokens if tokens >= 0 else count_tokens(str((block.get("source") or {}).get("data", "")))
    return total


def count_request_tokens(body: dict[str, Any]) -> int:
    """Input tokens of a Messages request: system prompt, every message and the tool definitions.

    The same function serves ``usage.input_tokens`` and ``/v1/messages/count_tokens`` so the two agree,
    as they do on the real API.
    """
    total = _content_tokens(body.get("system", ""))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += MESSAGE_OVERHEAD_TOKENS + _content_tokens(message.get("content"))
    tools = body.get("tools")
    if tools:
        total += count_tokens(json.dumps(tools))
    return max(total, 1)
