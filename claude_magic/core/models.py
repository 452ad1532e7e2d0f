"""Model names: the default lives here and nowhere else."""

from __future__ import annotations

import typing

from claude_magic._model_facts import contract

DEFAULT_MODEL = "claude-sonnet-5-5"


def known_models() -> list[str]:
    """Model ids the installed SDK knows about (its `ModelParam` literals), newest first."""
    # Imported here, not at the top: the settings read DEFAULT_MODEL at `%load_ext`, which must not wait
    # for the SDK's import (most of the extension's load time otherwise).
    from anthropic.types import ModelParam

    literals = [arg for arg in typing.get_args(ModelParam) if typing.get_origin(arg) is typing.Literal]
    return [name for literal in literals for name in typing.get_args(literal)]


def context_window(model: str) -> int | None:
    """The model's context window in tokens (from the contract table), or None for a model it does not know:
    `max_input_tokens` then defaults to off, and `%claude tokens` says so."""
    row = contract(model)
    return None if row is None else row.context_window
