"""An Interrupt (SIGINT on the main thread) while an answer streams ends the turn through its control.

Raised at an arbitrary point, KeyboardInterrupt could land inside HTTP, SDK or kernel publishing code;
while a stream is open the handler shuts the socket down instead, and the turn ends "interrupted" with
its partial answer. These tests send a real SIGINT to this process while `run_turn` streams from the
emulator on the main thread, as a kernel does when the user presses Interrupt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from support import FAKE_API_KEY

from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.core.stream import TurnControl, run_turn
from claude_magic.core.throttle import Throttle
from claude_magic.core.turn import TurnState
from claude_magic.emulator import Emulator

LONG_ANSWER = " ".join(f"word{n}" for n in range(400))


@pytest.fixture(autouse=True)
def python_sigint_handler() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as in a kernel running a cell (ipykernel installs Python's handler for
    each execution), even when this run was started where SIGINT is ignored (a background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class RecordingSink:
    """Remembers the text of each frame; `first_frame` is set once `words` words are showing. With
    `slow_first`, that frame takes half a second (the Interrupt arrives meanwhile) and then records that
    it completed."""

    def __init__(self, slow_first: bool = False, words: int = 1) -> None:
        self.first_frame = threading.Event()
        self.words = words
        self.slow_first = slow_first
        self.texts: list[str] = []
        self.slow_frame_completed = False
        self.finished: TurnState | None = None

    def start(self, state: TurnState) -> None:
        pass

    def frame(self, state: TurnState) -> None:
        self.texts.append(state.text)
        if len(state.text.split()) >= self.words and not self.first_frame.is_set():
            self.first_frame.set()
            if self.slow_first:
                time.sleep(0.5)
                self.slow_frame_completed = True

    def affords(self, state: TurnState) -> bool:
        return True

    def finish(self, state: TurnState) -> None:
        self.finished = state


def new_state() -> TurnState:
    return TurnState(model=DEFAULT_MODEL, prompt="hi", started_at=time.monotonic(), error_raised=True)


def interrupt_when(event: threading.Event, sent_at: list[float], to_thread: bool) -> threading.Thread:
    """Once `event` is set, SIGINT this process from another process (as Jupyter interrupts a kernel), or,
    with `to_thread`, deliver it to a thread that is not the main one (the OS may choose any thread)."""
    def send() -> None:
        if event.wait(30):
            sent_at.append(time.monotonic())
            if to_thread:
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            else:
                subprocess.run([sys.executable, "-c", f"import os, signal; os.kill({os.getpid()}, signal.SIGINT)"],
                               check=True)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def stream_until_interrupted(emulator: Emulator, turn: dict[str, Any], sink: RecordingSink | None = None, *,
                             to_thread: bool = False) -> tuple[TurnState, RecordingSink, float]:
    """Run a turn on this (the main) thread, SIGINT once text shows; the state, the sink and the seconds
    from the signal to run_turn's return."""
    emulator.set_script({"turns": [turn]})
    client = anthropic.Anthropic(base_url=emulator.base_url, api_key=FAKE_API_KEY, max_retries=0)
    request = {"model": DEFAULT_MODEL, "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]}
    sink, sent_at = sink or RecordingSink(), []
    sender = interrupt_when(sink.first_frame, sent_at, to_thread)
    try:
        state = run_turn(client, request, new_state(), sink, throttle=Throttle(0.0), control=TurnControl())
    except KeyboardInterrupt:
        pytest.fail("the Interrupt escaped run_turn as KeyboardInterrupt")
    returned_at = time.monotonic()
    sender.join(5)
    assert sent_at, "the answer never showed text"
    return state, sink, returned_at - sent_at[0]


def test_interrupt_mid_stream_ends_the_turn_with_its_partial_answer(emulator: Emulator) -> None:
    assert threading.current_thread() is threading.main_thread()
    emulator.set_pace(tokens_per_second=40)
    sink = RecordingSink(slow_first=True)
    state, _, seconds = stream_until_interrupted(emulator, {"content": LONG_ANSWER}, sink)

    assert state.status == "interrupted"
    # The Interrupt came while a frame was being drawn; that frame was not cut short.
    assert sink.slow_frame_completed
    assert state.error is not None and state.error.kind == "interrupted"
    assert state.error.message.startswith("Interrupted after")
    assert state.text and LONG_ANSWER.startswith(state.text) and state.text != LONG_ANSWER
    assert sink.finished is state
    assert seconds < 5  # at 40 tokens/s the whole answer would take 10 s
    # The kernel's handler is back: the next Interrupt outside a turn is a KeyboardInterrupt again.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_during_a_stall_ends_the_turn_at_once(emulator: Emulator) -> None:
    stall = {"kind": "stall", "after_tokens": 3, "seconds": 60}
    # Delivered to another thread, the signal does not interrupt the main thread's blocked read: the
    # handler alone would run only when the stall ends. The turn must end at once all the same.
    state, _, seconds = stream_until_interrupted(emulator, {"content": LONG_ANSWER, "fault": stall},
                                                 RecordingSink(words=3), to_thread=True)

    seen = f"{state.status}, {state.error}, {state.text!r}, {seconds:.2f} s"
    assert state.status == "interrupted", seen
    assert state.text.split() == LONG_ANSWER.split()[:3], seen
    assert seconds < 5, seen  # not the 60 s stall, nor the SDK's read timeout


def test_a_turn_on_another_thread_leaves_the_signal_handler_alone(emulator: Emulator) -> None:
    emulator.set_script({"turns": [{"content": "short answer"}]})
    client = anthropic.Anthropic(base_url=emulator.base_url, api_key=FAKE_API_KEY, max_retries=0)
    # (the default model's thinking counts toward max_tokens: room for it and the answer)
    request = {"model": DEFAULT_MODEL, "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    handler_seen: list[Any] = []

    class Sink(RecordingSink):
        def frame(self, state: TurnState) -> None:
            handler_seen.append(signal.getsignal(signal.SIGINT))

    states: list[TurnState] = []
    worker = threading.Thread(target=lambda: states.append(
        run_turn(client, request, new_state(), Sink(), throttle=Throttle(0.0))))
    worker.start()
    worker.join(30)
    assert states and states[0].status == "complete" and states[0].text == "short answer"
    assert handler_seen and all(handler is signal.default_int_handler for handler in handler_seen)


def test_an_interrupt_as_a_tool_call_is_drawn_ends_the_call_shown_as_interrupted(
    emulator: Emulator, api_env: dict[str, str]
) -> None:
    """The Interrupt lands while the call is being drawn, before the tool starts (the window a user hits by
    pressing Interrupt as the call appears): the tool never runs, and the call is not left shown running."""
    from claude_magic.core.engine import prepare_turn, run_exchange
    from claude_magic.settings import ClaudeMagic

    ran: list[float] = []

    def slow(seconds: float) -> str:
        """Sleeps."""
        ran.append(seconds)
        time.sleep(seconds)
        return "slept"

    call = {"type": "tool_use", "id": "toolu_s", "name": "slow", "input": {"seconds": 30}}
    emulator.set_script({"turns": [{"match": "Sleep please", "content": [call]}]})

    class InterruptAtTheCall(RecordingSink):
        def frame(self, state: TurnState) -> None:
            calls = [block.call for block in state.blocks if block.kind == "tool_result"]
            if calls and calls[0].status == "running" and not self.first_frame.is_set():
                self.first_frame.set()
                signal.raise_signal(signal.SIGINT)  # handled before this frame returns

    sink = InterruptAtTheCall()
    turn = prepare_turn("Sleep please", ClaudeMagic(), tools=[slow], conversation="interrupt-at-call")
    try:
        state = run_exchange(turn, sink)
    except KeyboardInterrupt:
        pytest.fail("the Interrupt escaped the turn as KeyboardInterrupt")

    assert sink.first_frame.is_set() and ran == []
    assert state.status == "interrupted"
    views = [block.call for block in state.blocks if block.kind == "tool_result"]
    assert [view.status for view in views] == ["interrupted"]
    assert not any(thread.name == "claude-tool-ticker" for thread in threading.enumerate())
