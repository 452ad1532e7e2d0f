"""Stream Claude's answers live into Jupyter.

    %load_ext claude_magic
    %%claude
    Explain HTTP caching in three bullet points.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """Register %%claude / %claude (called by `%load_ext claude_magic`)."""
    from .magic import ClaudeMagic

    magics = ClaudeMagic(shell=ipython, parent=ipython)
    ipython.register_magics(magics)
    # %config only sees configurables the shell lists.
    ipython.configurables.append(magics)


def __getattr__(name: str) -> Any:
    # The panel imports ipywidgets: only pay for it when it is used.
    if name == "ChatPanel":
        from .panel import ChatPanel

        return ChatPanel
    raise AttributeError(name)


__all__ = ["ChatPanel", "load_ipython_extension"]
