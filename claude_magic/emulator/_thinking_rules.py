"""The Messages API's per-model request rules, checked the way the API checks them (400), from the contract
table (``claude_magic._model_facts``): thinking types, effort, display, sampling with thinking, forced tool
choice, assistant prefill and ``max_tokens``. A model the table does not know (a script's own id) gets
only the rules every model shares.

Pages, beside each rule below:
- thinking: https://platform.claude.com/docs/en/build-with-claude/thinking-troubleshooting (which
  ``thinking.type`` each model accepts), the "What's new" pages of Sonnet 5.5 / Opus 5.5 and the Fable
  migration guides (thinking cannot be turned off; ``between_tools`` is Sonnet 5.5's lowest setting and
  works at effort low, medium and high only).
- With thinking on, ``temperature`` may only be 1, ``top_k`` is not allowed, ``tool_choice`` may not force
  tool use, and the assistant turn a request continues (a tool loop's) must start with a thinking block
  (https://platform.claude.com/docs/en/build-with-claude/extended-thinking). Thinking is on when the
  request asks for it, and on the models that think by default when ``thinking`` is absent.
"""

from __future__ import annotations

from typing import Any

from .._model_facts import EFFORT_LEVELS, THINKING_TYPES, ModelContract, contract
from ._binding import content_digest
from ._errors import ApiError

MIN_BUDGET_TOKENS = 1024
THINKING_ON = ("enabled", "adaptive")

SONNET_5_5_NEW = "https://platform.claude.com/docs/en/models/sonnet-5-5/whats-new-sonnet-5-5"
OPUS_5_5_NEW = "https://platform.claude.com/docs/en/models/opus-5-5/whats-new-opus-5-5"
MIGRATION = "https://platform.claude.com/docs/en/about-claude/models/migration-guide"


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def model_row(body: dict[str, Any]) -> ModelContract | None:
    model = body.get("model")
    return contract(model) if isinstance(model, str) else None


def thinking_type(body: dict[str, Any]) -> str | None:
    """The thinking the request gets: its `thinking.type`, or what its model does when the field is absent
    ("adaptive" on the models that think by default), or None (no thinking)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in THINKING_TYPES:
        kind = str(thinking["type"])
        return None if kind == "disabled" else kind
    row = model_row(body)
    return "adaptive" if row is not None and row.thinking_when_omitted == "adaptive" else None


def thinking_mode(body: dict[str, Any]) -> str | None:
    """"enabled" or "adaptive" when the request gets up-front thinking, else None."""
    kind = thinking_type(body)
    return kind if kind in THINKING_ON else None


def thinking_display(body: dict[str, Any]) -> str:
    """How thinking text comes back: the request's `thinking.display`, else the model's default (4.7 and
    later: "omitted", an empty block with only its signature; earlier: "summarized")."""
    thinking = body.get("thinking")
    display = thinking.get("display") if isinstance(thinking, dict) else None
    if isinstance(display, str):
        return display
    row = model_row(body)
    return row.display_default if row is not None and row.display_default else "summarized"


def thinking_budget(body: dict[str, Any]) -> int | None:
    """The budget of a manual thinking request (adaptive thinking has none: it shares max_tokens)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return int(thinking["budget_tokens"])
    return None


def requested_effort(body: dict[str, Any]) -> str | None:
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    return effort if isinstance(effort, str) else None


def check_thinking(body: dict[str, Any], *, count_only: bool = False, paused: frozenset[str] = frozenset()) -> None:
    """Raise ApiError where the API would reject the request's thinking, effort, sampling, tool choice,
    prefill or max_tokens for its model. `paused`: content digests of answers that stopped with pause_turn
    (sent back as they were, they continue that turn: not a prefill)."""
    row = model_row(body)
    _check_effort(body, row)
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
            raise _bad("thinking: Input tag does not match any of the expected tags: 'enabled', 'adaptive', "
                       "'disabled', 'between_tools'")
        kind = str(thinking["type"])
        budget = _checked_budget(thinking) if kind == "enabled" else None
        _check_type_for_model(kind, row, requested_effort(body) or (row.effort_default if row else None))
        _check_display(thinking, row)
        max_tokens = body.get("max_tokens")
        if budget is not None and not count_only and isinstance(max_tokens, int) and max_tokens <= budget:
            raise _bad("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                       "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                       "#max-tokens-and-context-window-size")
    if not count_only:
        _check_max_tokens(body, row)
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    _check_prefill(messages, row, paused)
    _check_forced_tools(body, row)
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
    _check_turn_starts_with_thinking(messages)


def _checked_budget(thinking: dict[str, Any]) -> int:
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _bad("thinking.enabled.budget_tokens: Field required")
    if budget < MIN_BUDGET_TOKENS:
        raise _bad(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET_TOKENS}")
    return budget


def _check_type_for_model(kind: str, row: ModelContract | None, effort: str | None) -> None:
    if row is None:
        return
    if kind not in row.thinking_types:
        raise _bad(_unsupported_type_message(kind, row))
    if kind in ("disabled", "between_tools") and row.thinking_off_efforts is not None \
            and effort is not None and effort not in row.thinking_off_efforts:
        # SONNET_5_5_NEW: "between_tools is available at low, medium, and high effort. At xhigh or max effort, a
        # request with between_tools returns a 400 error"; OPUS_5_5_NEW: Opus 5 accepted disabled "at effort high
        # or below".
        allowed = ", ".join(f'"{e}"' for e in row.thinking_off_efforts)
        raise _bad(f'"thinking.type.{kind}" is not supported with "output_config.effort" "{effort}" for this '
                   f'model; it works at {allowed}. To run at "{effort}", use "thinking.type.adaptive" (or omit '
                   '"thinking").')


def _unsupported_type_message(kind: str, row: ModelContract) -> str:
    if kind == "enabled" or (kind == "disabled" and "between_tools" not in row.thinking_types
                             and "adaptive" in row.thinking_types):
        # OPUS_5_5_NEW quotes both: '"thinking.type.disabled" is not supported for this model. Use
        # "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
        return (f'"thinking.type.{kind}" is not supported for this model. Use "thinking.type.adaptive" and '
                '"output_config.effort" to control thinking behavior.')
    if kind == "disabled":
        # SONNET_5_5_NEW: "a request that sends thinking: {"type": "disabled"} returns a 400 invalid_request_error
        # whose message points to between_tools."
        return ('"thinking.type.disabled" is not supported for this model. Use "thinking.type.between_tools" to '
                'turn off up-front thinking, or "thinking.type.adaptive" and "output_config.effort" to control '
                "thinking behavior.")
    if kind == "between_tools":
        # THINKING_TROUBLESHOOTING: only Claude Sonnet 5.5 accepts "between_tools".
        return ('"thinking.type.between_tools" is not supported for this model. Use "thinking.type.adaptive" and '
                '"output_config.effort" to control thinking behavior.')
    return "adaptive thinking is not supported on this model"


def _check_display(thinking: dict[str, Any], row: ModelContract | None) -> None:
    display = thinking.get("display")
    if display is None:
        return
    allowed = sorted(row.displays) if row is not None and row.displays else ["omitted", "summarized"]
    if display not in allowed:
        raise _bad(f"thinking.{thinking['type']}.display: Input should be "
                   + " or ".join(f"'{d}'" for d in allowed))


def _check_effort(body: dict[str, Any], row: ModelContract | None) -> None:
    config = body.get("output_config")
    if config is None or not isinstance(config, dict) or config.get("effort") is None:
        return
    effort = config["effort"]
    if effort not in EFFORT_LEVELS:
        raise _bad("output_config.effort: Input should be " + ", ".join(f"'{e}'" for e in EFFORT_LEVELS[:-1])
                   + f" or '{EFFORT_LEVELS[-1]}'")
    if row is None or effort in row.efforts:
        return
    if not row.efforts:
        # EFFORT page: the effort parameter is not supported on this model (Claude Haiku 4.5: "Not supported").
        raise _bad("This model does not support the effort parameter.")
    raise _bad(f"output_config.effort: '{effort}' is not supported for this model. Supported values: "
               + ", ".join(f"'{e}'" for e in row.efforts) + ".")


def _check_max_tokens(body: dict[str, Any], row: ModelContract | None) -> None:
    max_tokens = body.get("max_tokens")
    if row is not None and isinstance(max_tokens, int) and max_tokens > row.max_output:
        # The model pages give each model's max output (128K on the 4.6 and later models); the API's message
        # for a larger max_tokens names the model's limit.
        raise _bad(f"max_tokens: {max_tokens} > {row.max_output}, which is the maximum allowed number of output "
                   f"tokens for {body['model']}")


def _check_prefill(messages: list[Any], row: ModelContract | None, paused: frozenset[str]) -> None:
    if row is None or row.prefill or not messages or not isinstance(messages[-1], dict):
        return
    if messages[-1].get("role") == "assistant" and content_digest(messages[-1].get("content")) not in paused:
        # A paused turn (stop_reason pause_turn) goes on when its answer is sent back as it was: that is the
        # documented way to resume it (https://platform.claude.com/docs/en/build-with-claude/handling-stop-reasons).
        # MIGRATION (4.6 and later): "Prefilling assistant messages is no longer supported"; the 400 reads:
        raise _bad("This model does not support assistant message prefill. The conversation must end with a user "
                   "message.")


def _check_forced_tools(body: dict[str, Any], row: ModelContract | None) -> None:
    choice = body.get("tool_choice")
    if row is None or row.forced_tool_choice or not isinstance(choice, dict):
        return
    if choice.get("type") in ("any", "tool"):
        # SONNET_5_5_NEW / OPUS_5_5_NEW "Forced tool use returns an error": tool_choice auto or none only.
        raise _bad(f"tool_choice.type: '{choice['type']}' is not supported for this model; forced tool use is not "
                   "available. Use 'auto' or 'none'.")


def _check_turn_starts_with_thinking(messages: list[Any]) -> None:
    """With thinking on, the assistant turn a request continues must start with a thinking block: the first
    assistant message after the last user message that is not only tool results (a tool loop spans
    several assistant messages, each answered by tool results)."""
    if not messages or not isinstance(messages[-1], dict):
        return
    last = messages[-1]
    if last.get("role") != "assistant" and not _only_tool_results(last):
        return
    start = len(messages) - 1 if last.get("role") == "assistant" else len(messages) - 2
    while start >= 2 and _only_tool_results(messages[start - 1]) and _is_assistant(messages[start - 2]):
        start -= 2
    if start < 0 or not _is_assistant(messages[start]):
        return
    content = messages[start].get("content")
    first = content[0] if isinstance(content, list) and content else None
    kind = first.get("type") if isinstance(first, dict) else "text"
    if kind not in ("thinking", "redacted_thinking"):
        raise _bad(f"messages.{start}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                   f"`{kind}`. When `thinking` is enabled, a final `assistant` message must start with a "
                   "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                   "recommend you include thinking blocks from previous turns. To avoid this requirement, "
                   "disable `thinking`.")


def _is_assistant(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "assistant"


def _only_tool_results(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    content = message.get("content")
    return isinstance(content, list) and bool(content) and all(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content)
