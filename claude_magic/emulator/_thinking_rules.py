"""The Messages API's rules for extended thinking, checked the way the API checks them (400).

From the API's extended-thinking documentation:
- ``thinking`` is ``{"type": "enabled", "budget_tokens": N}``, ``{"type": "adaptive"}`` or
  ``{"type": "disabled"}``; a budget is at least 1,024 tokens and less than ``max_tokens``.
- Claude 4.7 and later reject a budget (they think adaptively); Claude 4.5 and earlier reject adaptive
  thinking (see ``claude_magic._model_facts``).
- With thinking on, ``temperature`` may only be 1, ``top_k`` is not allowed, and ``tool_choice`` may not
  force tool use (``any`` / ``tool``).
- Thinking blocks go back to the API exactly as they were received: their ``signature`` verifies the
  text, and a changed block is rejected.
- With thinking on, while a tool loop is under way (the last user message carries ``tool_result``
  blocks) or when the request ends with an assistant message to continue, that final assistant message
  must start with a thinking block.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .._model_facts import thinking_modes
from ._errors import ApiError

MIN_BUDGET_TOKENS = 1024
THINKING_TYPES = ("enabled", "adaptive", "disabled")


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def thinking_signature(thinking: str) -> str:
    """The emulator's signature of a thinking text (real ones are opaque too): deterministic, tied to the text."""
    return base64.b64encode(hashlib.sha256(b"claude_magic emulator thinking\0" + thinking.encode()).digest()).decode()


def thinking_mode(body: dict[str, Any]) -> str | None:
    """"enabled" or "adaptive" when the request asks for thinking, else None."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        return str(thinking["type"])
    return None


def thinking_budget(body: dict[str, Any]) -> int | None:
    """The budget of a manual thinking request (adaptive thinking has none: it shares max_tokens)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return int(thinking["budget_tokens"])
    return None


def check_thinking(body: dict[str, Any], signatures: frozenset[str] = frozenset(), *, count_only: bool = False) -> None:
    """Raise ApiError where the API would reject the request's thinking settings or thinking blocks.

    `signatures`: signatures a script set by hand, accepted as they are.
    """
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
            raise _bad("thinking: Input tag does not match any of the expected tags: 'enabled', 'adaptive', "
                       "'disabled'")
        budget = _checked_budget(thinking) if thinking["type"] == "enabled" else None
        _check_model_supports(thinking["type"], body.get("model"))
        max_tokens = body.get("max_tokens")
        if budget is not None and not count_only and isinstance(max_tokens, int) and max_tokens <= budget:
            raise _bad("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                       "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                       "#max-tokens-and-context-window-size")
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    _check_signatures(messages, signatures)
    if thinking_mode(body) is None:
        return
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise _bad("`temperature` may only be set to 1 when thinking is enabled. Please consult our "
                   "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                   "#feature-compatibility")
    if body.get("top_k") is not None:
        raise _bad("`top_k` may not be set when thinking is enabled.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise _bad("Thinking may not be enabled when tool_choice forces tool use.")
    _check_final_assistant(messages)


def _checked_budget(thinking: dict[str, Any]) -> int:
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _bad("thinking.enabled.budget_tokens: Field required")
    if budget < MIN_BUDGET_TOKENS:
        raise _bad(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET_TOKENS}")
    return budget


def _check_model_supports(kind: str, model: Any) -> None:
    modes = thinking_modes(model) if isinstance(model, str) else None
    if modes is None or kind == "disabled" or kind in modes:
        return
    if kind == "enabled":
        raise _bad('"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
                   '"output_config.effort" to control thinking behavior.')
    raise _bad("adaptive thinking is not supported on this model")


def _check_signatures(messages: list[Any], signatures: frozenset[str]) -> None:
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for k, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            where = f"messages.{i}.content.{k}"
            text, signature = block.get("thinking"), block.get("signature")
            if not isinstance(text, str):
                raise _bad(f"{where}.thinking.thinking: Field required")
            if not isinstance(signature, str) or not signature:
                raise _bad(f"{where}.thinking.signature: Field required")
            if signature != thinking_signature(text) and signature not in signatures:
                raise _bad(f"{where}: Invalid `signature` in `thinking` block")


def _check_final_assistant(messages: list[Any]) -> None:
    """With thinking on, the assistant message a request continues (a tool loop's, or a prefill) must
    start with a thinking block."""
    if not messages or not isinstance(messages[-1], dict):
        return
    last = messages[-1]
    if last.get("role") == "assistant":
        index = len(messages) - 1
    elif _has_tool_results(last) and len(messages) >= 2:
        index = len(messages) - 2
    else:
        return
    content = messages[index].get("content") if isinstance(messages[index], dict) else None
    first = content[0] if isinstance(content, list) and content else None
    kind = first.get("type") if isinstance(first, dict) else "text"
    if kind not in ("thinking", "redacted_thinking"):
        raise _bad(f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                   f"`{kind}`. When `thinking` is enabled, a final `assistant` message must start with a "
                   "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                   "recommend you include thinking blocks from previous turns. To avoid this requirement, "
                   "disable `thinking`.")


def _has_tool_results(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content)
