"""Where a turn is drawn: a notebook cell (live or final-only) or a terminal.

Each sink receives the same TurnState at throttled frames and once more at the end.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
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

    The output is a run of segments, each its own display. Finished Markdown blocks are collected as
    pending; at a seal the current segment gets them as its final content (sent once) and a new
    segment takes over the still-growing tail. A frame re-sends only the pending blocks and the
    unfinished one, not the answer.

    JupyterLab shows only the first 50 outputs of a cell (`maxNumberOutputs`) and hides the rest, the
    live tail included. So after MAX_SEGMENTS segments they are compacted: clear_output(wait=True),
    then everything frozen so far as one display, then the tail. Sealing often makes frames cheap but
    compactions frequent (each re-sends the prefix); for an answer streamed for t seconds at f frames
    per second the bytes sent are about (f·s/2 + t/(2·M·s)) answers for a seal interval s and M
    segments, least at s = sqrt(t / (M·f)). So the interval grows with the square root of the time
    streamed: zero at first (short answers seal every frame), 0.3 s after 40 s, 0.9 s after 5 minutes.

    At the end the segments are replaced by one clean rendering of the whole answer with its footer,
    which is also exactly what final-only mode shows; the last tokens are drawn first, so they are on
    screen before that rendering.
    """

    MAX_SEGMENTS = 40
    FRAMES_PER_SECOND = 10.0  # the default throttle's rate, for the seal interval's formula

    def __init__(
        self, publisher: DisplayPublisher, id_prefix: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._publisher = publisher
        self._id_prefix = id_prefix
        self._clock = clock
        self._view = IncrementalView()
        self._displays = 0  # display ids handed out (ids are never reused)
        self._segments = 0  # outputs currently in the cell
        self._current = ""
        self._frozen: list[Piece] = []  # everything frozen so far (needed again for compaction)
        self._pending: list[Piece] = []  # frozen, not yet sealed into a segment of its own
        self._started = clock()
        self._last_seal = self._started

    def _new_segment(self, bundle: dict[str, str]) -> None:
        self._displays += 1
        self._segments += 1
        self._current = f"{self._id_prefix}-{self._displays}"
        self._publisher.display(bundle, display_id=self._current)

    def start(self, state: TurnState) -> None:
        self._new_segment(_bundle(self._view.advance(state)[1]))

    def frame(self, state: TurnState) -> None:
        frozen, tail = self._view.advance(state)
        if frozen is not None:
            self._frozen.append(frozen)
            self._pending.append(frozen)
        now = self._clock()
        interval = math.sqrt((now - self._started) / (self.MAX_SEGMENTS * self.FRAMES_PER_SECOND))
        if not self._pending or now - self._last_seal < interval:
            self._publisher.update(_bundle(_join([*self._pending, tail])), self._current)
            return
        self._last_seal = now
        if self._segments >= self.MAX_SEGMENTS:
            self._compact(tail)
            return
        self._publisher.update(_bundle(_join(self._pending)), self._current)
        self._pending = []
        self._new_segment(_bundle(tail))

    def _compact(self, tail: Piece) -> None:
        self._publisher.clear()
        self._segments = 0
        self._new_segment(_bundle(_join(self._frozen)))
        self._pending = []
        self._new_segment(_bundle(tail))

    def finish(self, state: TurnState) -> None:
        final = answer_bundle(state)
        if self._segments == 1:
            self._publisher.update(final, self._current)
            return
        # The last tokens first, cheaply, where the tail is; then the one clean rendering.
        frozen, tail = self._view.advance(state)
        self._publisher.update(_bundle(_join([*self._pending, *([frozen] if frozen else []), tail])),
                               self._current)
        self._publisher.clear()
        self._publisher.display(final)


def _join(pieces: list[Piece]) -> Piece:
    return Piece("".join(piece.html for piece in pieces), "".join(piece.text for piece in pieces))


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
        self._written: list[int] = []  # text blocks: parts written; other blocks: 1 once printed
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
            if block.kind == "text":
                # Only the parts not yet written are joined: a frame never copies the whole answer.
                self._out.write("".join(block.parts[self._written[index] :]))
                self._written[index] = len(block.parts)
            elif not self._written[index] and (block.complete or final):
                # Thinking and tool input are printed whole, once finished.
                self._out.write(block_text(block))
                self._written[index] = 1
        self._out.flush()

    def finish(self, state: TurnState) -> None:
        self._write(state, final=True)
        self._out.write(f"\n\n{footer_text(state)}\n")
        self._out.flush()


def make_cell_sink(mode: str, publisher: Any, id_prefix: str) -> LiveCellSink | FinalCellSink:
    return FinalCellSink(publisher) if mode == "final" else LiveCellSink(publisher, id_prefix)
