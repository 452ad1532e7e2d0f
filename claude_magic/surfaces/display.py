"""Which sink a cell-bound surface (the magic, `ask`, `ask_async`) draws on, and which cell it is in."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claude_magic.core.stream import Sink

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
    # The sinks bring the SDK and the renderers along; `%load_ext` reads this module for the cell ids only.
    from claude_magic.surfaces.sinks import IPythonDisplay, TerminalSink, make_cell_sink
    from claude_magic.surfaces.terminal import TerminalEventsSink

    if mode == "terminal":
        return TerminalEventsSink() if events else TerminalSink()
    return make_cell_sink(mode, IPythonDisplay(), f"claude-{uuid.uuid4().hex[:12]}", events=events, above=above)


# Cut-off answers drawn in cells, by turn id: `%claude continue` resolves their warning where they are drawn.
_CUT_OFF: dict[str, tuple[Any, Any]] = {}
_CUT_OFF_KEPT = 32


def remember_cut_off(turn_id: str | None, sink: Any, state: Any) -> None:
    """Remember where a cut-off answer was drawn (a sink that can `redraw`), for `resolve_cut_off`."""
    if turn_id is None or not hasattr(sink, "redraw"):
        return
    _CUT_OFF[turn_id] = (sink, state)
    while len(_CUT_OFF) > _CUT_OFF_KEPT:
        _CUT_OFF.pop(next(iter(_CUT_OFF)))


def resolve_cut_off(turn_id: str) -> None:
    """The answer of `turn_id` was continued: draw it again where it was, its warning replaced by a note."""
    entry = _CUT_OFF.pop(turn_id, None)
    if entry is None:
        return
    sink, state = entry
    state.continued_later = True
    sink.redraw(state)


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
