"""Which sink a cell-bound surface (the magic, `ask`, `ask_async`) draws on, and which cell it is in."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from claude_magic.core.stream import Sink
from claude_magic.surfaces.sinks import IPythonDisplay, TerminalSink, make_cell_sink
from claude_magic.surfaces.terminal import TerminalEventsSink

DISPLAYS = ("auto", "live", "final", "terminal", "none")


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def in_kernel() -> bool:
    """True in a Jupyter kernel (where output areas exist), False in a terminal or plain Python."""
    return type(_shell()).__name__ == "ZMQInteractiveShell"


def resolve_display(mode: str) -> str:
    """`auto` made concrete: live in a kernel, terminal elsewhere."""
    mode = mode.lower()
    if mode not in DISPLAYS:
        raise ValueError(f"display must be one of {', '.join(DISPLAYS)}, got {mode!r}")
    if mode == "auto":
        return "live" if in_kernel() else "terminal"
    return mode


def make_sink(mode: str, *, events: bool = False, above: Sequence[dict[str, str]] = ()) -> Sink | None:
    """A fresh sink for one turn (None for "none"); every live sink gets display ids of its own, so
    concurrent turns in one cell update their own outputs. `events`: the raw view (the stream's events,
    then the footer) instead of the answer, drawn the same way: live, final-only or in a terminal.
    `above`: the outputs the turn shows above its answer in a cell (the attachment line), kept there."""
    mode = resolve_display(mode)
    if mode == "none":
        return None
    if mode == "terminal":
        return TerminalEventsSink() if events else TerminalSink()
    return make_cell_sink(mode, IPythonDisplay(), f"claude-{uuid.uuid4().hex[:12]}", events=events, above=above)


def _execute_request(shell: Any) -> dict[str, Any]:
    """The kernel's current execute request (empty outside a kernel)."""
    kernel = getattr(shell, "kernel", None)
    try:
        parent = kernel.get_parent() if kernel is not None else None
    except Exception:  # noqa: BLE001 - older kernels keep the parent elsewhere
        parent = None
    return parent or {}


def notebook_cell_id(shell: Any = None) -> str | None:
    """The notebook cell running now: JupyterLab and Notebook 7 send its id with every execute request
    (`metadata.cellId`); None in a terminal, or from a frontend that does not send it."""
    shell = shell or _shell()
    if shell is None:
        return None
    cell_id = (_execute_request(shell).get("metadata") or {}).get("cellId")
    return str(cell_id) if cell_id else None


def deleted_cell_ids(shell: Any = None) -> list[str]:
    """Cells deleted in the notebook since the last execution (JupyterLab sends them with the next one)."""
    shell = shell or _shell()
    if shell is None:
        return []
    deleted = (_execute_request(shell).get("metadata") or {}).get("deletedCells") or []
    return [str(cell) for cell in deleted if cell]


def current_cell() -> str | None:
    """What identifies the cell running now: the kernel's execute request id, else the shell's
    execution count (a terminal); None outside IPython."""
    shell = _shell()
    if shell is None:
        return None
    msg_id = (_execute_request(shell).get("header") or {}).get("msg_id")
    return str(msg_id) if msg_id else f"execution-{shell.execution_count}"


__all__ = ["DISPLAYS", "current_cell", "deleted_cell_ids", "in_kernel", "make_sink", "notebook_cell_id",
           "resolve_display"]
