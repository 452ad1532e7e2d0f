"""Where a turn is drawn: a notebook cell (live or final-only) or a terminal.

Each sink receives the same TurnState at throttled frames and once more at the end.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

from ._footer import footer_text
from ._turn import TurnState
from ._view import IncrementalView, Piece, answer_bundle, block_text


class DisplayPublisher(Protocol):
    """The three IPython display calls a cell sink needs (injectable for tests)."""

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None: ...

    def update(self, bundle: dict[str, str], display_id: str) -> None: ...

    def clear(self) -> None: ...


class IPythonDisplay:
    """DisplayPublisher backed by IPython.display (sends display_data / update_display_data)."""

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None:
        from IPython.display import display

        display(bundle, raw=True, display_id=display_id)

    def update(self, bundle: dict[str, str], display_id: str) -> None:
        from IPython.display import update_display

        update_display(bundle, raw=True, display_id=display_id)

    def clear(self) -> None:
        from IPython.display import clear_output

        clear_output(wait=True)


def _bundle(piece: Piece) -> dict[str, str]:
    return {"text/plain": piece.text, "text/html": piece.html}


class LiveCellSink:
    """Streams into the cell's output area, updating in place.

    The output is a run of segments, each its own display: when Markdown blocks finish, the current
    segment gets its final content (sent once) and a new segment takes over the still-growing tail.
    So each frame re-sends only the unfinished block, whatever the answer's length. At the end the
    segments are replaced by one clean rendering of the whole answer (clear_output(wait=True) then
    one display, so nothing flickers), which is also exactly what final-only mode shows.
    """

    def __init__(self, publisher: DisplayPublisher, id_prefix: str) -> None:
        self._publisher = publisher
        self._id_prefix = id_prefix
        self._view = IncrementalView()
        self._segments = 0
        self._current = ""

    def _new_segment(self, piece: Piece) -> None:
        self._segments += 1
        self._current = f"{self._id_prefix}-{self._segments}"
        self._publisher.display(_bundle(piece), display_id=self._current)

    def start(self, state: TurnState) -> None:
        self._new_segment(self._view.advance(state)[1])

    def frame(self, state: TurnState) -> None:
        frozen, tail = self._view.advance(state)
        if frozen is None:
            self._publisher.update(_bundle(tail), self._current)
            return
        self._publisher.update(_bundle(frozen), self._current)
        self._new_segment(tail)

    def finish(self, state: TurnState) -> None:
        final = answer_bundle(state)
        if self._segments == 1:
            self._publisher.update(final, self._current)
        else:
            self._publisher.clear()
            self._publisher.display(final)


class FinalCellSink:
    """Shows only the finished turn, as one display_data.

    For non-interactive runs (nbval, nbconvert, papermill): they record outputs as first sent and
    ignore update_display_data, so a live display would be saved as its first frame.
    """

    def __init__(self, publisher: DisplayPublisher) -> None:
        self._publisher = publisher

    def start(self, state: TurnState) -> None:
        pass

    def frame(self, state: TurnState) -> None:
        pass

    def finish(self, state: TurnState) -> None:
        self._publisher.display(answer_bundle(state))


class TerminalSink:
    """Plain IPython in a terminal: text is appended to stdout as it arrives, footer after."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._written: list[int] = []  # characters written per block
        self._notice: str | None = None

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def start(self, state: TurnState) -> None:
        pass

    def frame(self, state: TurnState) -> None:
        self._write(state, final=False)

    def _write(self, state: TurnState, *, final: bool) -> None:
        if state.notice and state.notice != self._notice:
            self._notice = state.notice
            self._out.write(f"[{state.notice}]\n")
        for index, block in enumerate(state.blocks):
            if index == len(self._written):
                self._written.append(0)
            text = block_text(block) if block.kind != "text" else block.text
            if block.kind != "text" and not (block.complete or final):
                continue  # thinking and tool input are printed whole, once finished
            new = text[self._written[index] :]
            if new:
                self._out.write(new)
                self._written[index] = len(text)
        self._out.flush()

    def finish(self, state: TurnState) -> None:
        self._write(state, final=True)
        self._out.write(f"\n\n{footer_text(state)}\n")
        self._out.flush()


def make_cell_sink(mode: str, publisher: Any, id_prefix: str) -> LiveCellSink | FinalCellSink:
    return FinalCellSink(publisher) if mode == "final" else LiveCellSink(publisher, id_prefix)
