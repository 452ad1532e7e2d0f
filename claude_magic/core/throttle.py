"""When to redraw: at most once per interval, except that the first visible token draws at once."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Decide whether a frame is due.

    `due()` is called for every stream event, so it does the cheapest check first: nothing new
    to show (same revision) means no clock read at all. The first frame with content is always
    due, so the first token never waits for the interval. `clock` is injectable for tests.
    """

    def __init__(self, interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._drawn_revision = 0  # revision 0 (nothing streamed yet) is what start() draws
        self._last_draw: float | None = None

    def due(self, revision: int) -> bool:
        if revision == self._drawn_revision:
            return False
        now = self._clock()
        if self._last_draw is not None and now - self._last_draw < self.interval:
            return False
        self._drawn_revision = revision
        self._last_draw = now
        return True

    def wait_time(self) -> float:
        """Seconds until a frame may be drawn (0 if now)."""
        if self._last_draw is None:
            return 0.0
        return max(0.0, self._last_draw + self.interval - self._clock())

    def drawn(self, revision: int) -> bool:
        return revision == self._drawn_revision
