"""What the benchmark measures inside the page, and how page time maps to Python's clock.

- A `PerformanceObserver` for `longtask` entries (main-thread tasks over 50 ms) runs for the page's
  whole life; each run reads the entries that started inside its window.
- Per run, a `MutationObserver` on one cell's node records when the answer's sentinel word first
  enters the DOM (`seen`), the next animation frame after that (`frame`, ~ when it is painted) and
  when a "done" selector appears (the footer: the final rendering is in place). It looks only at
  what each mutation added, so its own cost is proportional to what the page renders anyway.
- Page times are `performance.timeOrigin + performance.now()` (epoch ms); `clock_offset` measures
  page-minus-Python by round trip, so a page time converts to Python's `time.time()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

PROBE_JS = r"""
() => {
  if (window.__bench) { return window.__bench.longtaskSupported; }
  const bench = window.__bench = {longtasks: [], watch: null, longtaskSupported: false};
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) { bench.longtasks.push([entry.startTime, entry.duration]); }
    }).observe({type: 'longtask', buffered: true});
    bench.longtaskSupported = true;
  } catch (err) { /* reported to Python as unsupported */ }

  bench.start = (cellIndex, sentinel, doneSelector) => {
    if (bench.watch && bench.watch.observer) { bench.watch.observer.disconnect(); }
    const node = window.jupyterapp.shell.currentWidget.content.widgets[cellIndex].node;
    const w = {startedAt: performance.now(), firstMutation: null, seen: null, frame: null, done: null};
    const contains = (text) => !!text && text.includes(sentinel);
    const finish = () => {
      if (w.seen !== null && w.done === null && (!doneSelector || node.querySelector(doneSelector))) {
        w.done = performance.now();
        w.observer.disconnect();
      }
    };
    w.observer = new MutationObserver((records) => {
      const now = performance.now();
      if (w.firstMutation === null) { w.firstMutation = now; }
      if (w.seen === null) {
        for (const record of records) {
          const hit = record.type === 'characterData'
            ? contains(record.target.data)
            : Array.prototype.some.call(record.addedNodes, (added) => contains(added.textContent));
          if (hit) {
            w.seen = now;
            requestAnimationFrame(() => { w.frame = performance.now(); });
            break;
          }
        }
      }
      finish();
    });
    w.observer.observe(node, {childList: true, subtree: true, characterData: true});
    bench.watch = w;
  };

  bench.result = () => {
    const w = bench.watch;
    return {
      origin: performance.timeOrigin, startedAt: w.startedAt, firstMutation: w.firstMutation,
      seen: w.seen, frame: w.frame, done: w.done,
      longtasks: bench.longtasks.filter(([start]) => start >= w.startedAt),
    };
  };
  return bench.longtaskSupported;
}
"""


def install(page: Any) -> bool:
    """Install the probe (idempotent); True when the browser reports long tasks."""
    return bool(page.evaluate(PROBE_JS))


def clock_offset(page: Any, samples: int = 7) -> float:
    """Page epoch seconds minus Python `time.time()`, from the round trip with the smallest delay."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        before = time.time()
        page_ms = page.evaluate("() => performance.timeOrigin + performance.now()")
        after = time.time()
        sample = (after - before, page_ms / 1000 - (before + after) / 2)
        if best is None or sample[0] < best[0]:
            best = sample
    assert best is not None
    return best[1]


def start_watch(page: Any, cell_index: int, sentinel: str, done_selector: str | None) -> None:
    page.evaluate("([i, s, d]) => window.__bench.start(i, s, d)", [cell_index, sentinel, done_selector])


@dataclass
class WatchResult:
    """One run as the page saw it; times are Python epoch seconds (None: did not happen)."""

    started: float
    first_mutation: float | None
    seen: float | None
    frame: float | None
    done: float | None
    longtasks: list[tuple[float, float]]  # (start in Python epoch seconds, duration ms)

    def longtasks_between(self, start: float | None, end: float | None) -> list[float]:
        """Durations (ms) of long tasks that started in (start, end]; None is an open end."""
        low = start if start is not None else float("-inf")
        high = end if end is not None else float("inf")
        return [duration for at, duration in self.longtasks if low < at <= high]


def read_watch(page: Any, offset: float) -> WatchResult:
    # Wait for a frame and a quiet moment first: long-task entries are delivered after their task.
    raw = page.evaluate(
        "async () => { await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 300)));"
        " return window.__bench.result(); }"
    )
    origin = raw["origin"]

    def epoch(page_ms: float | None) -> float | None:
        return None if page_ms is None else (origin + page_ms) / 1000 - offset

    started = epoch(raw["startedAt"])
    assert started is not None
    return WatchResult(
        started=started,
        first_mutation=epoch(raw["firstMutation"]),
        seen=epoch(raw["seen"]),
        frame=epoch(raw["frame"]),
        done=epoch(raw["done"]),
        longtasks=[(epoch(start) or 0.0, duration) for start, duration in raw["longtasks"]],
    )


def watch_state(page: Any) -> dict[str, Any]:
    """The current watch's raw fields (for polling: seen / done)."""
    state: dict[str, Any] = page.evaluate(
        "() => { const w = window.__bench.watch; return {seen: w.seen, done: w.done}; }"
    )
    return state
