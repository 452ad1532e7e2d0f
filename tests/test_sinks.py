"""The live cell sink, driven with a recording publisher and a made-up clock."""

from __future__ import annotations

from typing import Any

import pytest

from claude_magic._sinks import FinalCellSink, LiveCellSink
from claude_magic._turn import Block, TurnState
from claude_magic._view import answer_bundle


class RecordingPublisher:
    """Applies display calls the way JupyterLab's output area does, and counts bytes sent."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []  # {"id", "data"}
        self.clear_pending = False
        self.bytes = 0
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

    def _sent(self, bundle: dict[str, str]) -> None:
        self.bytes += sum(len(value) for value in bundle.values())
        self.max_outputs = max(self.max_outputs, len(self.outputs))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def stream(text: str, sink: Any, clock: Clock, step: int, seconds_per_frame: float) -> TurnState:
    state = TurnState(model="m", prompt="p", started_at=0.0)
    sink.start(state)
    block = Block("text")
    state.blocks.append(block)
    state.status = "streaming"
    for start in range(0, len(text), step):
        block.parts.append(text[start : start + step])
        clock.now += seconds_per_frame
        sink.frame(state)
    state.status, state.finished_at = "complete", clock.now
    sink.finish(state)
    return state


LONG = "".join(f"Paragraph {i} says a few words about caching.\n\n" for i in range(3000))  # ~140 kB


def test_outputs_stay_under_jupyterlabs_limit_and_the_tail_stays_visible() -> None:
    publisher, clock = RecordingPublisher(), Clock()
    sink = LiveCellSink(publisher, "t", clock=clock)
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming", blocks=[Block("text")])
    sink.start(state)
    for start in range(0, len(LONG), 40):  # ~3,500 frames, 0.1 s apart: a long answer
        state.blocks[0].parts.append(LONG[start : start + 40])
        clock.now += 0.1
        sink.frame(state)
        # JupyterLab hides outputs past its 50th: the growing tail must always be among them.
        assert len(publisher.outputs) <= LiveCellSink.MAX_SEGMENTS + 1
        shown = "".join(output["data"]["text/plain"] for output in publisher.outputs)
        assert shown == state.text
    assert publisher.max_outputs <= LiveCellSink.MAX_SEGMENTS + 1


@pytest.mark.parametrize(("step", "bound"), [(400, 5.0), (40, 15.0)])
def test_long_answer_sends_a_bounded_multiple_of_itself(step: int, bound: float) -> None:
    """~140 kB streamed in 35 s (fast) or 350 s (slow) at 10 frames/s. Whole-answer frames would send
    ~175× / ~1,750× the answer; the seal interval keeps it near the optimum sqrt(t·f/M) + final."""
    publisher, clock = RecordingPublisher(), Clock()
    state = stream(LONG, LiveCellSink(publisher, "t", clock=clock), clock, step=step, seconds_per_frame=0.1)
    final_size = sum(len(value) for value in answer_bundle(state).values())
    assert publisher.bytes < bound * final_size


def test_live_final_state_is_exactly_what_final_mode_shows() -> None:
    live, final_only, clock = RecordingPublisher(), RecordingPublisher(), Clock()
    text = LONG[:20_000]
    stream(text, LiveCellSink(live, "t", clock=clock), clock, step=25, seconds_per_frame=0.1)
    stream(text, FinalCellSink(final_only), Clock(), step=25, seconds_per_frame=0.1)
    assert [o["data"] for o in live.outputs] == [o["data"] for o in final_only.outputs]
    assert len(final_only.outputs) == 1


def test_short_answer_is_updated_in_place() -> None:
    publisher, clock = RecordingPublisher(), Clock()
    stream("One short paragraph.", LiveCellSink(publisher, "t", clock=clock), clock, step=5, seconds_per_frame=0.1)
    assert len(publisher.outputs) == 1 and "One short paragraph." in publisher.outputs[0]["data"]["text/plain"]
