"""Throttled frames for a running turn, including the trailing frame when the stream goes quiet.

A frame is drawn when the throttle says one is due and the sink's byte budget affords it (see
`render.budget`). Drawing only when an event arrives would leave the last tokens before a pause (a stall,
a slow server tool) invisible until the next event, so a helper thread draws that trailing frame:
once the throttle interval has passed, or, when the budget holds frames back, once the stream has
been quiet for QUIET_SECONDS (a stall is worth a frame whatever it costs). Every state change and
every sink call happens under one lock, so the sink never sees a half-applied event.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from claude_magic.core.throttle import Throttle
from claude_magic.core.turn import TurnState

QUIET_SECONDS = 0.5


def _draw_if_due(frames: FrameScheduler | LoopFrameScheduler) -> bool | None:
    """The decision both schedulers make after an event: None if this revision is already drawn, True if
    a frame was drawn now, False if one is due later (throttled, or held back by the sink's budget)."""
    state = frames._state
    if frames._throttle.drawn(state.revision):
        return None
    frames._last_event = frames._clock()
    if frames._sink.affords(state) and frames._throttle.due(state.revision):
        frames._sink.frame(state)
        return True
    return False


class FrameScheduler:
    def __init__(
        self, state: TurnState, sink: Any, throttle: Throttle, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lock = threading.Condition()
        self._state = state
        self._sink = sink
        self._throttle = throttle
        self._clock = clock
        self._pending = False
        self._closed = False
        self._last_event = clock()
        self._thread: threading.Thread | None = None
        # The cell's outputs are routed by the parent header ipykernel keeps in a context variable;
        # the helper thread runs in a copy of this context so its frames land in the same cell.
        self._context = contextvars.copy_context()

    def after_event(self) -> None:
        """Draw now if a frame is due and affordable, else leave it to the trailing flush. Caller holds `lock`."""
        if _draw_if_due(self):
            self._pending = False
        elif not self._pending:
            # Wake the helper only when a frame becomes pending, not for every token it would cover.
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._context.run, args=(self._flush_loop,),
                                                name="claude-magic-frames", daemon=True)
                self._thread.start()
            self.lock.notify()

    def force(self) -> None:
        """Draw a frame regardless of throttle and budget (status changes like a retry notice). Caller holds `lock`."""
        self._sink.frame(self._state)

    def close(self) -> None:
        """Stop the helper thread; the caller draws the final frame itself."""
        with self.lock:
            self._closed = True
            self.lock.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _flush_loop(self) -> None:
        with self.lock:
            while not self._closed:
                if not self._pending:
                    self.lock.wait()
                    continue
                wait = self._throttle.wait_time()
                if wait > 0:
                    self.lock.wait(wait)
                    continue
                quiet = self._clock() - self._last_event
                if quiet < QUIET_SECONDS and not self._sink.affords(self._state):
                    self.lock.wait(QUIET_SECONDS - quiet)
                    continue
                if self._throttle.due(self._state.revision):
                    self._sink.frame(self._state)
                self._pending = False


class LoopFrameScheduler:
    """FrameScheduler for a turn streamed on an asyncio event loop (`run_turn_async`).

    Same decisions as FrameScheduler, but the trailing frame is a `loop.call_later` callback instead of
    a helper thread: every draw happens on the loop's thread, between events, so concurrent turns on one
    loop (two `ask_async` in a `gather`) never draw at the same time and need no lock.
    """

    lock = contextlib.nullcontext()  # every draw and state change happens on the loop's thread

    def __init__(self, state: TurnState, sink: Any, throttle: Throttle,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._state = state
        self._sink = sink
        self._throttle = throttle
        self._clock = clock
        self._timer: Any = None
        self._closed = False
        self._last_event = clock()

    def after_event(self) -> None:
        if _draw_if_due(self) is False and self._timer is None:
            self._timer = self._loop.call_later(self._throttle.wait_time(), self._flush)

    def force(self) -> None:
        self._sink.frame(self._state)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        self._timer = None
        if self._closed or self._throttle.drawn(self._state.revision):
            return
        wait = self._throttle.wait_time()
        quiet = self._clock() - self._last_event
        if wait <= 0 and quiet < QUIET_SECONDS and not self._sink.affords(self._state):
            wait = QUIET_SECONDS - quiet
        if wait > 0:
            self._timer = self._loop.call_later(wait, self._flush)
            return
        if self._throttle.due(self._state.revision):
            self._sink.frame(self._state)


class NoFrames:
    """No sink (`display="none"`, `map`): the stream loop skips drawing entirely."""

    lock = contextlib.nullcontext()  # nothing is drawn from another thread, so there is nothing to guard

    def after_event(self) -> None:
        pass

    def force(self) -> None:
        pass

    def close(self) -> None:
        pass
