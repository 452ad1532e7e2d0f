"""The live cell sink, driven with a recording publisher and a made-up clock."""

from __future__ import annotations

from typing import Any

import pytest

from claude_magic.core.turn import Block, TurnState
from claude_magic.render.budget import ENVELOPE_BYTES
from claude_magic.render.markdown import render_markdown
from claude_magic.render.view import CURSOR, answer_bundle
from claude_magic.surfaces.sinks import FinalCellSink, LiveCellSink


class RecordingPublisher:
    """Applies display calls the way JupyterLab's output area does, and counts bytes sent."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []  # {"id", "data"}
        self.clear_pending = False
        self.bytes = 0
        self.messages = 0
        self.max_outputs = 0

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None:
        if self.clear_pending:
            self.outputs, self.clear_pending = [], False
        self.outputs.append({"id": display_id, "data": bundle})
        self._sent(bundle)

    def update(self, bundle: dict[str, str], display_id: str) -> None:
        for output in self.outputs:
            if output["id"] == display_id:
                output["data"] = bundle
        self._sent(bundle)

    def clear(self) -> None:
        self.clear_pending = True
        self.messages += 1

    def flush(self) -> None:
        pass

    def _sent(self, bundle: dict[str, str]) -> None:
        self.bytes += sum(len(value) for value in bundle.values())
        self.messages += 1
        self.max_outputs = max(self.max_outputs, len(self.outputs))


def stream(text: str, sink: Any, step: int, *, budget: bool = True) -> TurnState:
    """Feed `text` in chunks of `step` characters; a frame after each chunk the budget affords."""
    state = TurnState(model="m", prompt="p", started_at=0.0)
    sink.start(state)
    block = Block("text")
    state.blocks.append(block)
    state.status = "streaming"
    for start in range(0, len(text), step):
        block.parts.append(text[start : start + step])
        state.chars += len(block.parts[-1])
        if not budget or sink.affords(state):
            sink.frame(state)
    state.status, state.finished_at = "complete", 1.0
    sink.finish(state)
    return state


LONG = "".join(f"Paragraph {i} says a few words about caching.\n\n" for i in range(3000))  # ~140 kB


def shown_html(publisher: RecordingPublisher) -> str:
    """What the cell shows, in order, without the live cursor."""
    return "".join(output["data"]["text/html"] for output in publisher.outputs).replace(CURSOR, "")


@pytest.mark.parametrize(("seal_bytes", "length", "check_every"), [(LiveCellSink.SEAL_BYTES, len(LONG), 97),
                                                                  (40, 40_000, 1)])
def test_outputs_stay_under_jupyterlabs_limit_and_show_the_answer_in_order(
    seal_bytes: int, length: int, check_every: int
) -> None:
    """Frame after frame of a long answer: at most MAX_SLOTS outputs (JupyterLab hides those past its
    50th, the growing tail included), and together they show exactly the answer so far. A tiny seal
    size seals on every frame (1,000 seals), so slots run out again and again and every merge path is
    taken, the one that merges every slot into the first included."""
    publisher = RecordingPublisher()
    sink = LiveCellSink(publisher, "t")
    sink.SEAL_BYTES = seal_bytes
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming", blocks=[Block("text")])
    sink.start(state)
    for frame, start in enumerate(range(0, length, 40)):
        state.blocks[0].parts.append(LONG[start : start + 40])
        sink.frame(state)
        assert len(publisher.outputs) <= LiveCellSink.MAX_SLOTS
        if frame % check_every == 0:
            assert shown_html(publisher) == render_markdown(state.text)
    assert shown_html(publisher) == render_markdown(state.text)
    assert publisher.max_outputs == LiveCellSink.MAX_SLOTS


def test_frames_resend_at_most_a_seal_and_the_unfinished_block() -> None:
    """Without the byte budget, 3,500 frames: finished text is re-sent only while it waits to be sealed
    (≤ SEAL_BYTES per frame) and once more when slots are merged; whole-answer frames would send
    ~1,750× the answer."""
    publisher = RecordingPublisher()
    state = stream(LONG, LiveCellSink(publisher, "t"), step=40, budget=False)
    frames = len(LONG) // 40
    answer_html = len(render_markdown(state.text))
    unfinished = 200  # one paragraph being written, with the cursor
    final = sum(len(value) for value in answer_bundle(state).values())
    assert publisher.bytes <= frames * (LiveCellSink.SEAL_BYTES + unfinished) + 2 * answer_html + final


@pytest.mark.parametrize("step", [40, 400])
def test_the_budget_keeps_a_long_answer_within_three_times_itself(step: int) -> None:
    """The wire target: frames and the final rendering together, message envelopes included."""
    publisher = RecordingPublisher()
    sink = LiveCellSink(publisher, "t")
    state = stream(LONG, sink, step=step)
    final_size = sum(len(value) for value in answer_bundle(state).values())
    wire = publisher.bytes + ENVELOPE_BYTES * publisher.messages
    assert wire <= 3 * final_size
    assert publisher.messages > 100  # still streaming: the budget thins frames out, it does not stop them


def test_short_answers_are_not_held_back_by_the_budget() -> None:
    publisher = RecordingPublisher()
    text = LONG[:4_000]  # ~800 tokens, 100 frames of 8 tokens
    stream(text, LiveCellSink(publisher, "t"), step=40)
    assert publisher.messages >= len(text) // 40  # a frame for every chunk


def test_live_final_state_is_exactly_what_final_mode_shows() -> None:
    live, final_only = RecordingPublisher(), RecordingPublisher()
    text = LONG[:20_000]
    stream(text, LiveCellSink(live, "t"), step=25)
    stream(text, FinalCellSink(final_only), step=25)
    assert [o["data"] for o in live.outputs] == [o["data"] for o in final_only.outputs]
    assert len(final_only.outputs) == 1


def test_short_answer_is_updated_in_place() -> None:
    publisher = RecordingPublisher()
    stream("One short paragraph.", LiveCellSink(publisher, "t"), step=5)
    assert len(publisher.outputs) == 1 and "One short paragraph." in publisher.outputs[0]["data"]["text/plain"]


@pytest.mark.parametrize("length", [20, 20_000])  # one slot, updated in place; many slots, replaced at the end
def test_what_the_turn_drew_above_its_answer_stays_when_it_finishes(length: int) -> None:
    """The attachment line is shown above the answer while it streams; live and final mode end the same,
    with the line still there (the cell is cleared to replace many slots, and the line drawn again)."""
    attached = {"text/plain": "Attached: df", "text/html": '<div class="claude-magic-attached">Attached: df</div>'}
    live, final_only = RecordingPublisher(), RecordingPublisher()
    for publisher in (live, final_only):
        publisher.display(attached)  # what show_attachments draws before the turn starts
    stream(LONG[:length], LiveCellSink(live, "t", above=[attached]), step=25)
    stream(LONG[:length], FinalCellSink(final_only), step=25)
    assert [o["data"] for o in live.outputs] == [o["data"] for o in final_only.outputs]
    assert live.outputs[0]["data"] == attached and len(live.outputs) == 2
