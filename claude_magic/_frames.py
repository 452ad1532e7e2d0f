"""Throttled frames for a running turn, including the trailing frame when the stream goes quiet.

Drawing only when an event arrives would leave the last tokens before a pause (a stall, a slow
server tool) invisible until the next event. A helper thread draws that trailing frame once the
throttle interval has passed. Every state change and every sink call happens under one lock, so
the sink never sees a half-applied event.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from ._throttle import Throttle
from ._turn import TurnState


class FrameScheduler:
    def __init__(self, state: TurnState, sink: Any, throttle: Throttle) -> None:
        self.lock = threading.Condition()
        self._state = state
        self._sink = sink
        self._throttle = throttle
        self._pending = False
        self._closed = False
        self._thread: threading.Thread | None = None
        # The cell's outputs are routed by the parent header ipykernel keeps in a context variable;
        # the helper thread runs in a copy of this context so its frames land in the same cell.
        self._context = contextvars.copy_context()

    def after_event(self) -> None:
        """Draw now if a frame is due, else leave it to the trailing flush. Caller holds `lock`."""
        if self._throttle.due(self._state.revision):
            self._sink.frame(self._state)
            self._pending = False
        elif not self._pending and not self._throttle.drawn(self._state.revision):
            # Wake the helper only when a frame becomes pending, not for every token it would cover.
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._context.run, args=(self._flush_loop,),
                                                name="claude-magic-frames", daemon=True)
                self._thread.start()
            self.lock.notify()

    def force(self) -> None:
        """Draw a frame regardless of the throttle (status changes like a retry notice). Caller holds `lock`."""
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
                if self._throttle.due(self._state.revision):
                    self._sink.frame(self._state)
                self._pending = False
