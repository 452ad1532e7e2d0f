"""Token pacing on an absolute schedule, interruptible by the emulator's stop event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Long waits are cut into slices this long to notice a client that hung up (e.g. after its timeout).
_CHECK_SECONDS = 0.1


class Pacer:
    """Decides when each chunk of a stream may be sent.

    Chunk times are computed from the stream's start (``start + tokens_so_far / rate``) rather than by
    sleeping a fixed time per chunk, so the time spent writing and flushing does not accumulate and
    long streams stay on rate. All waits go through ``stop.wait`` so stopping the emulator wakes them,
    and ``alive()`` is polled during long waits so a vanished client frees its handler promptly.
    """

    def __init__(
        self, tokens_per_second: float, stop: threading.Event, alive: Callable[[], bool] | None = None
    ) -> None:
        self._rate = tokens_per_second
        self._stop = stop
        self._alive = alive
        self._start = time.perf_counter()
        self._tokens = 0

    def _wait_until(self, deadline: float) -> bool:
        """Wait for ``deadline`` (perf_counter time). False if stopping or the client is gone."""
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return not self._stop.is_set()
            if self._stop.wait(min(remaining, _CHECK_SECONDS)):
                return False
            if self._alive is not None and not self._alive():
                return False

    def advance(self, tokens: int) -> bool:
        """Wait until ``tokens`` more tokens are due. False if stopping or the client is gone."""
        self._tokens += tokens
        if self._rate <= 0:
            return not self._stop.is_set()
        return self._wait_until(self._start + self._tokens / self._rate)

    def pause(self, seconds: float) -> bool:
        """Send nothing for ``seconds`` (a stall), then resume the schedule where it left off."""
        began = time.perf_counter()
        ok = self._wait_until(began + seconds)
        # Shift the schedule so the stall does not turn into a burst of "overdue" chunks afterwards.
        self._start += time.perf_counter() - began
        return ok
