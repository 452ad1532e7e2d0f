"""Model names: the default lives here and nowhere else."""

from __future__ import annotations

import typing

DEFAULT_MODEL = "claude-sonnet-5-5"


def known_models() -> list[str]:
    """Model ids the installed SDK knows about (its `ModelParam` literals), newest first."""
    # Imported here, not at the top: the settings read DEFAULT_MODEL at `%load_ext`, which must not wait
    # for the SDK's import (most of the extension's load time otherwise).
    from anthropic.types import ModelParam

    literals = [arg for arg in typing.get_args(ModelParam) if typing.get_origin(arg) is typing.Literal]
    return [name for literal in literals for name in typing.get_args(literal)]


# Context windows (input tokens), by model id prefix, longest prefix first. From the model pages of the
# API's docs and the SDK's model list as of SDK 2.15: the 5-generation models and Fable run a 1M window
# natively; Opus/Sonnet/Haiku 4.x have 200K (their 1M window is a beta the request must ask for). A model
# not listed has no known window: `max_input_tokens` then defaults to off, and `%claude tokens` says so.
CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("claude-fable-5", 1_000_000),
    ("claude-opus-5", 1_000_000),
    ("claude-sonnet-5", 1_000_000),
    ("claude-haiku-5", 1_000_000),
    ("claude-opus-4", 200_000),
    ("claude-sonnet-4", 200_000),
    ("claude-haiku-4", 200_000),
    ("claude-3", 200_000),
)


def context_window(model: str) -> int | None:
    """The model's context window in tokens, or None when it is not in CONTEXT_WINDOWS."""
    return next((size for prefix, size in CONTEXT_WINDOWS if model.startswith(prefix)), None)
