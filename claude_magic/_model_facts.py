"""What the API's documentation says about each model, shared by the client's checks and the emulator.

Sampling, from the Claude 4.7 migration notes: Claude 4.7 and later set their own sampling and reject
`temperature`, `top_p` and `top_k` (400 "`temperature` is deprecated for this model.").

Thinking modes, from the extended-thinking page: manual thinking (`{"type": "enabled", "budget_tokens": N}`)
is deprecated on the Claude 4.6 models and rejected by Claude 4.7 and later, which think adaptively
(`{"type": "adaptive"}`); Claude 4.5 and earlier support only manual thinking; Claude Mythos Preview
supports both.

The emulator rejects what this says a model does not accept, with the API's messages; the client says
so in one line before sending. A model id it does not recognise is sent as asked.
"""

from __future__ import annotations

import re

ADAPTIVE_ONLY = frozenset({"adaptive"})
BOTH = frozenset({"enabled", "adaptive"})
MANUAL_ONLY = frozenset({"enabled"})

# claude-opus-4-7, claude-sonnet-5-5, claude-sonnet-4-20250514 (a date, not a minor version), claude-fable-5
_MODEL_ID = re.compile(r"claude-[a-z]+-(?P<major>\d+)(?:-(?P<minor>\d{1,2}))?(?![0-9])")

SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")


def _version(model: str) -> tuple[int, int] | None:
    match = _MODEL_ID.match(model)
    return None if match is None else (int(match["major"]), int(match["minor"] or 0))


def takes_sampling(model: str) -> bool:
    """Whether `model` accepts the sampling parameters; True for an id this table does not know."""
    version = _version(model)
    return version is None or version < (4, 7)


def thinking_modes(model: str) -> frozenset[str] | None:
    """The `thinking.type`s besides "disabled" that `model` accepts; None for an id this table does not
    know (nothing is checked then)."""
    if model.startswith("claude-mythos-preview"):
        return BOTH
    if model.startswith("claude-3-7-sonnet"):
        return MANUAL_ONLY
    version = _version(model)
    if version is None:
        return None
    if version >= (4, 7):
        return ADAPTIVE_ONLY
    if version == (4, 6):
        return BOTH
    return MANUAL_ONLY if version >= (4, 0) else None
