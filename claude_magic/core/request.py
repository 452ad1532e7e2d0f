"""Build the Messages API request for one turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claude_magic._model_facts import takes_sampling, thinking_modes

_EPHEMERAL = {"type": "ephemeral"}
MIN_THINKING_BUDGET = 1024  # the API's lower bound for budget_tokens
THINKING_OFF = ("", "off", "none", "0")


@dataclass(frozen=True)
class TurnOptions:
    """Per-turn settings, resolved from flags over config over defaults."""

    model: str
    max_tokens: int
    system: str = ""
    temperature: float | None = None
    prompt_caching: bool = True
    thinking: dict[str, Any] | None = None  # the API's `thinking` parameter (see thinking_param)


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
    if options.temperature is not None:
        # SDK 2.x dropped sampling parameters from the typed signature (newer models reject them);
        # the API still takes temperature from older models, so it goes in the body as sent.
        request["extra_body"] = {"temperature": options.temperature}
    return request


def check_sampling(model: str, temperature: float | None) -> None:
    """A temperature for a model that sets its own sampling is one line before sending (ValueError)."""
    if temperature is not None and not takes_sampling(model):
        raise ValueError(f"{model} does not take a temperature (Claude 4.7 and later choose their own sampling): "
                         "drop --temperature (or %config ClaudeMagic.temperature = None), or pick an older model "
                         "with --model")


def thinking_param(value: str | int | None, *, max_tokens: int, temperature: float | None,
                   model: str | None = None) -> dict[str, Any] | None:
    """`--thinking N` / `adaptive` / `off` as the API's `thinking` parameter, checked the way the API checks
    it, so a bad combination is one line before anything is sent (ValueError). Without `model` (a setting
    checked on its own) the model's thinking modes are not checked."""
    text = "" if value is None else str(value).strip().lower()
    if text in THINKING_OFF:
        return None
    if text == "adaptive":
        param: dict[str, Any] = {"type": "adaptive"}
    else:
        try:
            budget = int(text)
        except ValueError:
            raise ValueError(f"thinking must be a token budget (e.g. 2048), adaptive or off, got {value!r}") from None
        if budget < MIN_THINKING_BUDGET:
            raise ValueError(f"a thinking budget must be at least {MIN_THINKING_BUDGET} tokens, got {budget}")
        if budget >= max_tokens:
            raise ValueError(f"the thinking budget ({budget}) must be less than max_tokens ({max_tokens}): "
                             f"raise --max-tokens above {budget}")
        param = {"type": "enabled", "budget_tokens": budget}
    modes = thinking_modes(model) if model else None
    if modes is not None and param["type"] not in modes:
        if param["type"] == "enabled":
            raise ValueError(f"{model} thinks adaptively and does not take a thinking budget: use --thinking "
                             "adaptive (a budget works on Claude 4.6 and earlier models)")
        raise ValueError(f"{model} does not support adaptive thinking: give it a budget, e.g. --thinking 2048")
    if temperature is not None and temperature != 1:
        raise ValueError("temperature cannot be set with thinking (the API allows only 1): drop --temperature "
                         "or turn thinking off")
    return param
