"""From one run's raw observations to its figures, and from runs to table rows and target checks."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from _stack import RunObservation

from claude_magic.emulator import tokenize
from claude_magic.render.markdown import render_markdown

# The targets.
LAG_P50_MS = 150.0
LONGTASK_MS = 200.0
LAG_GROWTH = 1.5  # 32k lag / 2k lag
CPU_RATIO = 1.5
WIRE_RATIO = 3.0
FIRST_TOKEN_MS = 10.0


def answer_bytes(text: str) -> int:
    """The final answer rendered once: its HTML plus its text, UTF-8 (the CI test's yardstick too)."""
    return len(render_markdown(text).encode()) + len(text.encode())


@dataclass
class RunMetrics:
    surface: str
    tokens: int
    rate: float
    index: int
    lag_ms: float | None  # last token sent by the emulator → in the DOM
    kernel_lag_ms: float | None  # → the first IOPub message carrying it left the kernel (part of lag_ms)
    paint_lag_ms: float | None  # → the next animation frame after that
    final_ms: float | None  # → the final rendering (footer) is in place
    kernel_done_ms: float | None  # → the measured cell's idle status left the kernel
    # Main-thread long tasks (ms) by when they started: while the emulator streamed; after the last
    # token was sent until it was in the DOM; after that (the final rendering settling).
    longtasks_during: list[float]
    longtasks_until_shown: list[float]
    longtasks_after: list[float]
    cpu_turn: float
    cpu_raw: float
    wire_bytes: int
    content_bytes: int
    messages: int
    answer_bytes: int
    first_token_ms: float | None  # SDK yields the first text delta → first message carrying it left the kernel
    rss_growth_mb: float
    notes: list[str] = field(default_factory=list)

    @property
    def longtasks_streaming(self) -> list[float]:
        """From the cell's start until the last token is on screen: what the target is about."""
        return self.longtasks_during + self.longtasks_until_shown

    @property
    def cpu_ratio(self) -> float | None:
        return self.cpu_turn / self.cpu_raw if self.cpu_raw > 0 else None

    @property
    def wire_ratio(self) -> float:
        return self.wire_bytes / self.answer_bytes

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cpu_ratio": self.cpu_ratio, "wire_ratio": self.wire_ratio}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunMetrics:
        # Results saved before a figure existed load with that figure missing.
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


def _ms(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier) * 1000


def measure(obs: RunObservation) -> RunMetrics:
    spec, watch = obs.spec, obs.watch
    last = obs.last_token_sent
    notes = list(obs.notes)
    first_delta = obs.report.get("first_delta")
    needle = obs.answer.first_token.encode()
    first_out = next((m.t for m in obs.messages if needle in m.content), None)
    sentinel = obs.answer.sentinel.encode()
    sentinel_out = next((m.t for m in obs.messages if sentinel in m.content), None)
    if obs.report.get("status", obs.report.get("naive_status")) != "complete":
        notes.append(f"turn status: {obs.report.get('status', 'unknown')}")
    if last is None:
        notes.append("the emulator never sent the last token")
    seen = watch.seen if watch else None
    return RunMetrics(
        surface=spec.surface, tokens=spec.tokens, rate=spec.rate, index=spec.index,
        lag_ms=_ms(seen, last),
        kernel_lag_ms=_ms(sentinel_out, last),
        paint_lag_ms=_ms(watch.frame if watch else None, last),
        final_ms=_ms(watch.done if watch else None, last),
        kernel_done_ms=_ms(obs.kernel_idle, last),
        longtasks_during=watch.longtasks_between(None, last) if watch else [],
        longtasks_until_shown=watch.longtasks_between(last, seen) if watch and last else [],
        longtasks_after=watch.longtasks_between(seen, None) if watch and seen else [],
        cpu_turn=obs.cpu_turn, cpu_raw=obs.cpu_raw,
        wire_bytes=sum(m.wire_bytes for m in obs.messages),
        content_bytes=sum(len(m.content) for m in obs.messages),
        messages=len(obs.messages),
        answer_bytes=answer_bytes(obs.answer.text),
        first_token_ms=_ms(first_out, first_delta),
        rss_growth_mb=(obs.rss_peak - obs.rss_before) / 2**20,
        notes=notes,
    )


# -- the naive baseline where it is too expensive to run ------------------------------------------------


def naive_wire_estimate(text: str, overhead: float) -> tuple[int, int]:
    """(bytes, messages) a per-token `update(Markdown(all_text))` sends for `text`.

    Message k carries the first k tokens JSON-escaped plus a constant (`overhead`: headers, mime
    keys, display id; fitted on measured naive runs). Escaping is per character, so the escaped
    size of each prefix is a running sum.
    """
    total, prefix = 0, 0
    tokens = tokenize(text)
    for token in tokens:
        prefix += len(json.dumps(token, ensure_ascii=False).encode()) - 2
        total += prefix
    messages = len(tokens) + 1  # the empty first display, then one update per token
    return int(total + overhead * messages), messages


def fitted_naive_overhead(runs: list[RunMetrics], texts: dict[int, str]) -> float | None:
    """Per-message constant of measured naive runs: (wire - escaped prefixes) / messages."""
    samples = []
    for run in runs:
        if run.surface == "naive" and run.messages > 1 and run.tokens in texts:
            prefixes, _ = naive_wire_estimate(texts[run.tokens], 0.0)
            samples.append((run.wire_bytes - prefixes) / run.messages)
    return sum(samples) / len(samples) if samples else None


# -- aggregation -----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    data = sorted(values)
    if not data:
        return None
    position = (len(data) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return data[low] + (data[high] - data[low]) * (position - low)


def _values(runs: list[RunMetrics], name: str) -> list[float]:
    values = [getattr(run, name) for run in runs]
    return [v for v in values if v is not None]


@dataclass
class Row:
    """All runs of one (surface, tokens, rate)."""

    surface: str
    tokens: int
    rate: float
    runs: list[RunMetrics]
    estimated_wire: tuple[int, int] | None = None  # naive rows that were not run

    def p(self, name: str, q: float = 50) -> float | None:
        return percentile(_values(self.runs, name), q)

    @property
    def measured(self) -> bool:
        return bool(self.runs)

    @property
    def lag_failures(self) -> int:
        return sum(run.lag_ms is None for run in self.runs)

    @property
    def longest_streaming(self) -> float:
        return self.longest("longtasks_streaming")

    def longest(self, name: str) -> float:
        return max((max(getattr(run, name), default=0.0) for run in self.runs), default=0.0)

    @property
    def longtask_count(self) -> float | None:
        return percentile([float(len(run.longtasks_streaming)) for run in self.runs], 50)

    @property
    def wire(self) -> float | None:
        if self.runs:
            return self.p("wire_bytes")
        return float(self.estimated_wire[0]) if self.estimated_wire else None

    @property
    def messages(self) -> float | None:
        if self.runs:
            return self.p("messages")
        return float(self.estimated_wire[1]) if self.estimated_wire else None

    @property
    def answer(self) -> int | None:
        return self.runs[0].answer_bytes if self.runs else None

    def ratio(self, name: str) -> float | None:
        values = [getattr(run, name) for run in self.runs]
        return percentile([v for v in values if v is not None], 50)


def group(runs: list[RunMetrics], surfaces: tuple[str, ...], lengths: list[int], rates: list[float]) -> list[Row]:
    rows = []
    for surface in surfaces:
        for rate in rates:
            for tokens in lengths:
                mine = [r for r in runs if (r.surface, r.tokens, r.rate) == (surface, tokens, rate)]
                rows.append(Row(surface, tokens, rate, mine))
    return rows
