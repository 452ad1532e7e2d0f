"""Build the Messages API request for one turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claude_magic._model_facts import contract

_EPHEMERAL = {"type": "ephemeral"}
MIN_THINKING_BUDGET = 1024  # the API's lower bound for budget_tokens
THINKING_OFF = ("off", "none", "0")
THINKING_DEFAULT = ("", "default")  # the model's own default (thinking on from Claude 5; shown as set by `display`)
THINKING_WORDS = ("adaptive", "between_tools")
DISPLAYS = ("summarized", "omitted")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
DEFAULT_MAX_TOKENS = 32_000
"""max_tokens when none is set: thinking counts toward max_tokens, and at effort high the default model often
thinks for thousands of tokens before it answers, so 4,096 cut answers off. Streaming makes a large limit
safe (the SDK refuses non-streaming requests that could run past ten minutes, never streamed ones); a model
whose maximum output is lower gets its maximum. See README, "Thinking, effort and max_tokens"."""


@dataclass(frozen=True)
class TurnOptions:
    """Per-turn settings, resolved from flags over config over defaults."""

    model: str
    max_tokens: int
    system: str = ""
    temperature: float | None = None
    prompt_caching: bool = True
    thinking: dict[str, Any] | None = None  # the API's `thinking` parameter (see thinking_param)
    effort: str | None = None  # output_config.effort (see effort_param)


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
    if options.thinking is not None:
        request["thinking"] = dict(options.thinking)
    if options.effort is not None:
        request["output_config"] = {"effort": options.effort}
    if options.temperature is not None:
        # SDK 2.x dropped sampling parameters from the typed signature (newer models reject them);
        # the API still takes temperature from older models, so it goes in the body as sent.
        request["extra_body"] = {"temperature": options.temperature}
    return request


def default_max_tokens(model: str) -> int:
    """DEFAULT_MAX_TOKENS, or the model's maximum output when that is lower (from the contract table)."""
    facts = contract(model)
    return min(DEFAULT_MAX_TOKENS, facts.max_output) if facts is not None else DEFAULT_MAX_TOKENS


def check_max_output(model: str, max_tokens: int) -> None:
    """max_tokens above the model's maximum output is one line before sending (ValueError)."""
    facts = contract(model)
    if facts is not None and max_tokens > facts.max_output:
        raise ValueError(f"{model} writes at most {facts.max_output:,} output tokens: lower --max-tokens "
                         f"(got {max_tokens:,})")


def check_sampling(model: str, temperature: float | None) -> None:
    """A temperature for a model that sets its own sampling is one line before sending (ValueError)."""
    facts = contract(model)
    if temperature is not None and facts is not None and not facts.sampling:
        raise ValueError(f"{model} does not take a temperature (it chooses its own sampling): drop --temperature "
                         "(or %config ClaudeMagic.temperature = None), or pick an older model with --model")


def check_prefill(model: str) -> bool:
    """Whether `model` takes an assistant prefill (a final assistant message); True for an unknown id."""
    facts = contract(model)
    return facts is None or facts.prefill


def _accepted(values: Any) -> str:
    return ", ".join(sorted(values)) or "none"


def thinking_param(value: str | int | None, *, max_tokens: int, temperature: float | None,
                   model: str | None = None, display: str | None = None) -> dict[str, Any] | None:
    """`--thinking` (empty for the model's default, adaptive, between_tools, off, or a budget N) and
    `--thinking-display` as the API's `thinking` parameter, checked against the model's contract
    (`claude_magic._model_facts`) the way the API checks it, so a bad combination is one line before anything
    is sent (ValueError), naming what the model accepts. Without `model` (a setting checked on its own)
    only the form is checked.

    `off` means the least the model allows: `disabled`, else `between_tools` (Claude Sonnet 5.5, whose
    lowest setting it is); where thinking cannot be turned off (Opus 5.5, Fable 5.x) it is one line.
    The default sends `{"type": "adaptive", "display": ...}` to a model that thinks when the field is absent,
    which is what it would do anyway, so that `display` can ask for the thinking to be shown; `display` is
    sent only where it differs from the model's default.
    """
    text = "" if value is None else str(value).strip().lower()
    if display is not None and display not in DISPLAYS:
        raise ValueError(f"thinking display must be one of {', '.join(DISPLAYS)}, got {display!r}")
    facts = contract(model) if model else None
    param: dict[str, Any] | None
    if text in THINKING_DEFAULT:
        if facts is None or facts.thinking_when_omitted != "adaptive":
            return None  # the model does not think unless asked
        param = {"type": "adaptive"}
    elif text in THINKING_OFF:
        if facts is None or facts.thinking_when_omitted == "off":
            return None  # thinking is off when the field is absent: nothing to send
        if "disabled" in facts.thinking_types:
            return {"type": "disabled"}
        if "between_tools" not in facts.thinking_types:
            raise ValueError(f"{model} cannot turn thinking off (it accepts --thinking "
                             f"{_accepted(facts.thinking_types)}); lower --effort to make it think less")
        param = {"type": "between_tools"}
    elif text in THINKING_WORDS:
        param = {"type": text}
    else:
        try:
            budget = int(text)
        except ValueError:
            raise ValueError(f"thinking must be adaptive, between_tools, off or a token budget (e.g. 2048), "
                             f"got {value!r}") from None
        if budget < MIN_THINKING_BUDGET:
            raise ValueError(f"a thinking budget must be at least {MIN_THINKING_BUDGET} tokens, got {budget}")
        if budget >= max_tokens:
            raise ValueError(f"the thinking budget ({budget}) must be less than max_tokens ({max_tokens}): "
                             f"raise --max-tokens above {budget}")
        param = {"type": "enabled", "budget_tokens": budget}
    if facts is not None and param["type"] not in facts.thinking_types:
        kind = "a thinking budget" if param["type"] == "enabled" else f"--thinking {param['type']}"
        words = sorted(_THINKING_WORDS.get(t, t) for t in facts.thinking_types)
        raise ValueError(f"{model} does not take {kind}: it accepts --thinking {', '.join(words) or 'nothing'}")
    if temperature is not None and temperature != 1:
        raise ValueError("temperature cannot be set with thinking (the API allows only 1): drop --temperature "
                         "or turn thinking off")
    if display is not None and facts is not None and facts.displays:
        if display not in facts.displays:
            raise ValueError(f"{model} does not take --thinking-display {display}: it accepts "
                             f"{_accepted(facts.displays)}")
        if display != facts.display_default:  # sent only where it changes something
            param["display"] = display
    return param


_THINKING_WORDS = {"enabled": "N (a budget)", "disabled": "off"}


def effort_param(value: str | None, model: str | None) -> str | None:
    """`--effort` as `output_config.effort`, checked against the model's accepted values (ValueError)."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if text not in EFFORTS:
        raise ValueError(f"effort must be one of {', '.join(EFFORTS)}, got {value!r}")
    facts = contract(model) if model else None
    if facts is not None and text not in facts.efforts:
        accepted = ", ".join(facts.efforts)
        raise ValueError(f"{model} does not take --effort {text}: "
                         + (f"it accepts {accepted}" if accepted else "it has no effort setting"))
    return text


def check_thinking_effort(thinking: dict[str, Any] | None, effort: str | None, model: str) -> None:
    """Thinking turned off (`disabled`, `between_tools`) at an effort the model does not allow it at (e.g.
    Sonnet 5.5 above high) is one line before sending (ValueError)."""
    facts = contract(model)
    if facts is None or thinking is None or thinking.get("type") not in ("disabled", "between_tools"):
        return
    allowed = facts.thinking_off_efforts
    used = effort or facts.effort_default
    if allowed is not None and used is not None and used not in allowed:
        raise ValueError(f"{model} turns thinking off (--thinking {thinking['type']}) only at --effort "
                         f"{', '.join(allowed)}; got {used}")


def thinks(request: dict[str, Any]) -> bool:
    """Whether the model will think in this request: thinking asked for, or on by the model's default."""
    thinking = request.get("thinking")
    if thinking is None:
        facts = contract(request["model"])
        return facts is not None and facts.thinking_when_omitted == "adaptive"
    return thinking.get("type") in ("enabled", "adaptive")


def check_tool_choice(request: dict[str, Any], choice: dict[str, Any] | None, flag: str) -> None:
    """A forced tool choice (`any`, one tool) where the API rejects it is one line before sending (ValueError):
    models that never take one, and any model while it thinks."""
    if choice is None or choice["type"] not in ("any", "tool"):
        return
    model = request["model"]
    facts = contract(model)
    if facts is not None and not facts.forced_tool_choice:
        raise ValueError(f"{model} does not take a forced tool choice (--tool-choice {flag}): use auto and ask "
                         "for the tool in the prompt, or pick another model with --model")
    if thinks(request):
        raise ValueError(f"--tool-choice {flag} forces a tool call, which the API does not allow while {model} "
                         "thinks: use auto, or --thinking off where the model allows it")
