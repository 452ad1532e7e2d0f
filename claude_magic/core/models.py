"""Model names: the default lives here and nowhere else."""

from __future__ import annotations

import typing

from anthropic.types import ModelParam

DEFAULT_MODEL = "claude-sonnet-5-5"


def known_models() -> list[str]:
    """Model ids the installed SDK knows about (its `ModelParam` literals), newest first."""
    literals = [arg for arg in typing.get_args(ModelParam) if typing.get_origin(arg) is typing.Literal]
    return [name for literal in literals for name in typing.get_args(literal)]
