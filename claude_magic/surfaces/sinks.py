"""Where a turn is drawn: a notebook cell (live or final-only) or a terminal.

Each sink receives the same TurnState at throttled frames and once more at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from claude_magic.core.turn import TurnState
from claude_magic.core.wire_events import ask_for_events
from claude_magic.render.budget import ENVELOPE_BYTES, FrameBudget, utf8_size
from claude_magic.render.events_view import EventsView, events_bundle
from claude_magic.render.view import WAITING_TEXT, IncrementalView, answer_bundle
from claude_magic.surfaces.terminal import TerminalSink as TerminalSink  # the terminal sink lives in _terminal


def flush_iopub() -> None:
    """Send what was just published now, before this thread renders on.

    ipykernel sends output messages from its IOPub thread, which needs the GIL; while this thread
    renders (the final answer, the next frames) it gets it only every switch interval (5 ms), a few
    times over. Flushing stdout waits until that thread has sent everything queued so far.
    """
    sys.stdout.flush()


class Drawing:
    """What a sink draws a turn as: the answer (Markdown), or with `events` the raw view (the stream's event
    lines, `render.events_view`). Both hand out frozen pieces and a tail (`view.advance`) and end with one
    whole rendering (`bundle`); every sink that can show either picks it here."""

    def __init__(self, events: bool) -> None:
        self._events = EventsView() if events else None
        self.view: IncrementalView | EventsView = self._events or IncrementalView()
        self.bundle = events_bundle if events else answer_bundle

    def start(self, state: TurnState) -> None:
        if self._events is not None:
            ask_for_events(state)  # the stream records its events for this turn only when asked

    def chars(self, state: TurnState) -> int:
        """What the frame budget measures: the raw view's frames carry event lines, not the answer."""
        return state.chars if self._events is None else self._events.chars


class DisplayPublisher(Protocol):
    """The three IPython display calls a cell sink needs (injectable for tests)."""

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None: ...

    def update(self, bundle: dict[str, str], display_id: str) -> None: ...

    def clear(self) -> None: ...

    def flush(self) -> None: ...


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

    def flush(self) -> None:
        flush_iopub()


class LiveCellSink:
    """Streams into the cell's output area, updating in place.

    The output is a row of slots, each its own display. Finished Markdown blocks (frozen pieces)
    collect in the live slot in front of the block still being written; once they pass SEAL_BYTES the
    live slot keeps them as its final content (sent once more, never again) and the tail moves on to
    the next slot. So a frame re-sends at most SEAL_BYTES of finished text plus the unfinished block,
    whatever the answer's length; the byte budget (`render.budget.FrameBudget`) then decides how often frames
    may be sent at all.

    JupyterLab shows only the first 50 outputs of a cell (`maxNumberOutputs`) and hides the rest, the
    live tail included, so there are at most MAX_SLOTS slots. When they run out, the sealed slots
    after the last merged one are merged into the first of them (one update) and the others are
    emptied for reuse: each byte is re-sent once more, not once per compaction. Only when every slot
    holds a merge (~MAX_SLOTS²/2 seals, several megabytes) is everything merged into the first slot.

    Live frames carry HTML only. At the end the slots are replaced by one clean rendering of the whole
    answer with its footer (HTML and text), exactly what final-only mode shows; the last tokens are
    drawn first, cheaply, so they are on screen while that rendering is built. Replacing several slots
    clears the cell's output, so what the turn drew above its answer (`above`: the attachment line) is
    drawn again first: live and final mode end the same.

    `events=True` draws the raw view instead (`render.events_view`): the stream's event lines, which
    go through the same slots as finished Markdown, and the same footer.
    """

    MAX_SLOTS = 40
    SEAL_BYTES = 1500  # finished HTML sealed at once, however few frames re-sent it
    # Otherwise finished text is sealed once re-sending it has cost as much as sealing does: the seal's
    # message now plus emptying its slot at the next merge (rent until the rent paid equals the price).
    SEAL_PRICE = 2 * ENVELOPE_BYTES

    def __init__(self, publisher: DisplayPublisher, id_prefix: str, budget: FrameBudget | None = None, *,
                 events: bool = False, above: Sequence[dict[str, str]] = ()) -> None:
        self._publisher = publisher
        self._id_prefix = id_prefix
        self._above = list(above)
        self.budget = budget or FrameBudget()
        self._drawing = Drawing(events)
        self._view = self._drawing.view
        self._slots: list[_Slot] = []  # displays created so far, in output order
        self._live = 0  # the slot showing the tail; slots after it are empty
        self._pending: list[str] = []  # frozen HTML shown in the live slot, not yet sealed
        self._pending_bytes = 0
        self._resent = 0  # bytes of pending HTML re-sent by frames since the last seal
        self._merged_upto = 0  # slots before this index hold merges; later sealed ones are single seals
        self._showed_content = False
        self.final_display_id: str | None = None  # the output holding the finished turn

    def start(self, state: TurnState) -> None:
        self._drawing.start(state)
        self._show(self._view.advance(state)[1].html)

    def affords(self, state: TurnState) -> bool:
        return self.budget.affords(self._drawing.chars(state))

    def frame(self, state: TurnState) -> None:
        frozen, tail = self._view.advance(state)
        if frozen is not None:
            self._pending.append(frozen.html)
            self._pending_bytes += utf8_size(frozen.html)
        if self._pending_bytes >= self.SEAL_BYTES or (self._pending and self._resent >= self.SEAL_PRICE):
            self._seal()
        self._resent += self._pending_bytes
        self.budget.frame_sent(self._show("".join(self._pending) + tail.html))
        if not self._showed_content and state.has_content:
            self._showed_content = True
            self._publisher.flush()  # the first token leaves before the stream loop takes the GIL again

    def _show(self, html: str) -> int:
        """Put `html` in the live slot (creating the slot if needed); returns the bytes that cost."""
        if self._live < len(self._slots):
            return self._set(self._live, html)
        self._slots.append(_Slot(f"{self._id_prefix}-{len(self._slots) + 1}"))
        slot = self._slots[-1]
        slot.html = html
        self._publisher.display({"text/html": html}, display_id=slot.display_id)
        return self._charge(html)

    def _set(self, index: int, html: str, *, restructure: bool = False) -> int:
        slot = self._slots[index]
        slot.html = html
        self._publisher.update({"text/html": html}, slot.display_id)
        return self._charge(html, restructure=restructure)

    def _charge(self, html: str, *, restructure: bool = False) -> int:
        size = utf8_size(html)
        self.budget.charge(size, restructure=restructure)
        return size + ENVELOPE_BYTES

    def _seal(self) -> None:
        self._set(self._live, "".join(self._pending))
        self._pending, self._pending_bytes, self._resent = [], 0, 0
        self._live += 1
        if self._live == self.MAX_SLOTS:
            self._merge()

    def _merge(self) -> None:
        first = self._merged_upto if self._merged_upto < self.MAX_SLOTS - 2 else 0
        self._set(first, "".join(slot.html for slot in self._slots[first : self._live]), restructure=True)
        for index in range(first + 1, self._live):
            if self._slots[index].html:
                self._set(index, "", restructure=True)
        self._merged_upto = first + 1
        self._live = first + 1

    def finish(self, state: TurnState) -> None:
        if len(self._slots) == 1:
            self.final_display_id = self._slots[0].display_id
            self._publisher.update(self._drawing.bundle(state), self.final_display_id)
            return
        # The last tokens first, cheaply, where the tail is; then the one clean rendering.
        frozen, tail = self._view.advance(state)
        self._show("".join(self._pending) + (frozen.html if frozen else "") + tail.html)
        self._publisher.flush()  # sent before the whole answer is rendered below
        final = self._drawing.bundle(state)
        self._publisher.clear()
        for bundle in self._above:
            self._publisher.display(bundle)
        if any(final.values()):  # empty: the turn failed before anything arrived and the surface raises
            self.final_display_id = f"{self._id_prefix}-final"
            self._publisher.display(final, display_id=self.final_display_id)

    def redraw(self, state: TurnState) -> None:
        """Draw the finished turn again where it was drawn (e.g. its cut-off warning, once continued)."""
        if self.final_display_id is not None:
            self._publisher.update(self._drawing.bundle(state), self.final_display_id)


@dataclass
class _Slot:
    display_id: str
    html: str = ""


class FinalCellSink:
    """Shows only the finished turn, as one display_data.

    For non-interactive runs (nbval, nbconvert, papermill): they record outputs as first sent and
    ignore update_display_data, so a live display would be saved as its first frame.
    """

    def __init__(self, publisher: DisplayPublisher, id_prefix: str = "", *, events: bool = False) -> None:
        self._publisher = publisher
        self._drawing = Drawing(events)
        self.final_display_id = f"{id_prefix}-final" if id_prefix else None

    def start(self, state: TurnState) -> None:
        self._drawing.start(state)

    def frame(self, state: TurnState) -> None:
        pass

    def affords(self, state: TurnState) -> bool:
        return True

    def finish(self, state: TurnState) -> None:
        final = self._drawing.bundle(state)
        if any(final.values()):  # empty: the turn failed before anything arrived and the surface raises
            self._publisher.display(final, display_id=self.final_display_id)


    def redraw(self, state: TurnState) -> None:
        """Draw the finished turn again where it was drawn (a notebook open in a frontend shows the change)."""
        if self.final_display_id is not None:
            self._publisher.update(self._drawing.bundle(state), self.final_display_id)


class PlainTextCellSink:
    """`-f text` in a live cell: "Waiting for Claude…" (or a retry notice) until the turn ends, then the
    answer and its footer as text/plain only, in the same output."""

    def __init__(self, publisher: DisplayPublisher, display_id: str) -> None:
        self._publisher = publisher
        self._display_id = display_id
        self._shown = ""

    def _status(self, state: TurnState) -> dict[str, str]:
        return {"text/plain": state.notice or WAITING_TEXT}

    def start(self, state: TurnState) -> None:
        bundle = self._status(state)
        self._shown = bundle["text/plain"]
        self._publisher.display(bundle, display_id=self._display_id)

    def affords(self, state: TurnState) -> bool:
        return True

    def frame(self, state: TurnState) -> None:
        bundle = self._status(state)
        if bundle["text/plain"] != self._shown:  # a retry notice came or went: nothing else changes
            self._shown = bundle["text/plain"]
            self._publisher.update(bundle, self._display_id)

    def finish(self, state: TurnState) -> None:
        self._publisher.update({"text/plain": answer_bundle(state)["text/plain"]}, self._display_id)


def make_cell_sink(mode: str, publisher: Any, id_prefix: str, *, events: bool = False,
                   above: Sequence[dict[str, str]] = ()) -> LiveCellSink | FinalCellSink:
    """The cell's sink: final-only or live, drawing the answer or (`events`) the raw view; `above`: what the
    turn shows above its answer in the cell."""
    if mode == "final":
        return FinalCellSink(publisher, id_prefix, events=events)
    return LiveCellSink(publisher, id_prefix, events=events, above=above)
