"""Token pacing on an absolute schedule, interruptible by the emulator's stop event."""

from __future__ import annotations

import threading
import time


class Pacer:
    """Decides when each chunk of a stream may be sent.

    Chunk times are computed from the stream's start (``start + tokens_so_far / rate``) rather than by
    sleeping a fixed time per chunk, so the time spent writing and flushing does not accumulate and
    long streams stay on rate. All waits go through ``stop.wait`` so stopping the emulator wakes them.
    """

    def __init__(self, tokens_per_second: float, stop: threading.Event) -> None:
        self._rate = tokens_per_second
        self._stop = stop
        self._start = time.perf_counter()
        self._tokens = 0

    def advance(self, tokens: int) -> bool:
        """Wait until ``tokens`` more tokens are due. Returns False if the emulator is stopping."""
        self._tokens += tokens
        if self._rate > 0:
            delay = self._start + self._tokens / self._rate - time.perf_counter()
            if delay > 0:
                return not self._stop.wait(delay)
        return not self._stop.is_set()

    def pause(self, seconds: float) -> bool:
        """Send nothing for ``seconds`` (a stall), then resume the schedule where it left off."""
        began = time.perf_counter()
        stopped = self._stop.wait(seconds)
        # Shift the schedule so the stall does not turn into a burst of "overdue" chunks afterwards.
        self._start += time.perf_counter() - began
        return not stopped
