"""Markdown tables and the target checklist, from grouped rows."""

from __future__ import annotations

from collections.abc import Callable

from _metrics import (
    CPU_RATIO,
    FIRST_TOKEN_MS,
    LAG_GROWTH,
    LAG_P50_MS,
    LONGTASK_MS,
    WIRE_RATIO,
    Row,
)

NA = "n/a"
NOT_RUN = "not run"


def _num(value: float | None, digits: int = 0, missing: str = "–") -> str:
    if value is None:
        return missing
    if digits == 0 and abs(value) < 10:
        digits = 1
    return f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    """A ratio against the naive baseline: 0.0042× or 3.1×."""
    if value is None:
        return "–"
    return f"{value:.2g}×" if value < 1 else f"{value:.3g}×"


def _rate(rate: float) -> str:
    return f"{rate:,.0f}"


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    if mine is None or theirs is None or theirs == 0:
        return None
    return mine / theirs


class Tables:
    """Renders rows of all surfaces; `naive` rows (if any) are the denominators of the × columns."""

    def __init__(self, rows: list[Row], unavailable: dict[str, str]) -> None:
        self.rows = rows
        self.unavailable = unavailable  # surface -> why it has no figures
        self._naive = {(r.tokens, r.rate): r for r in rows if r.surface == "naive"}

    def naive(self, row: Row) -> Row | None:
        return self._naive.get((row.tokens, row.rate))

    def _vs_naive(self, row: Row, value: Callable[[Row], float | None]) -> str:
        naive = self.naive(row)
        if naive is None or not naive.measured:
            return "–"
        return _times(_ratio(value(row), value(naive)))

    def _lead(self, row: Row) -> list[str]:
        return [row.surface, f"{row.tokens:,}", _rate(row.rate), str(len(row.runs))]

    def _missing(self, row: Row, columns: int) -> list[str] | None:
        if row.surface in self.unavailable:
            return self._lead(row) + [NA] * columns
        if not row.measured:
            return self._lead(row) + [NOT_RUN] + ["–"] * (columns - 1)
        return None

    def page_table(self) -> str:
        head = ["surface", "tokens", "tok/s", "runs", "lag p50 ms", "lag p95 ms", "lag ×naive",
                "of which in the kernel p50 ms", "painted p50 ms",
                "footer p50 ms", "long tasks (p50 count)", "longest during stream ms",
                "longest after last token, until shown ms", "longest after shown ms"]
        lines = [_md_row(head), _md_row(["---"] * len(head))]
        for row in self.rows:
            cells = self._missing(row, len(head) - 4)
            if cells is None:
                lag50 = row.p("lag_ms")
                lag = _num(lag50) if row.lag_failures == 0 else f"{_num(lag50)} ({row.lag_failures} never shown)"
                cells = self._lead(row) + [
                    lag, _num(row.p("lag_ms", 95)), self._vs_naive(row, lambda r: r.p("lag_ms")),
                    _num(row.p("kernel_lag_ms")), _num(row.p("paint_lag_ms")), _num(row.p("final_ms")),
                    _num(row.longtask_count),
                    _num(row.longest("longtasks_during")), _num(row.longest("longtasks_until_shown")),
                    _num(row.longest("longtasks_after")),
                ]
            lines.append(_md_row(cells))
        return "\n".join(lines)

    def kernel_table(self) -> str:
        head = ["surface", "tokens", "tok/s", "runs", "kernel CPU s", "÷ raw SDK loop", "CPU ×naive", "wire kB",
                "messages", "wire ÷ answer", "wire ×naive", "answer kB", "first token ms p50 / max", "RSS Δ MB"]
        lines = [_md_row(head), _md_row(["---"] * len(head))]
        for row in self.rows:
            estimated = row.surface == "naive" and not row.measured and row.estimated_wire
            if estimated and row.surface not in self.unavailable:
                answer = next((r.answer for r in self.rows if r.tokens == row.tokens and r.answer), None)
                wire = row.wire
                cells = self._lead(row) + [
                    NOT_RUN, "–", "–", f"≈{_num(wire / 1000 if wire else None)}", f"≈{_num(row.messages)}",
                    f"≈{_num(_ratio(wire, answer))}", "1×", _num(answer / 1000 if answer else None), "–", "–",
                ]
                lines.append(_md_row(cells))
                continue
            cells = self._missing(row, len(head) - 4)
            if cells is None:
                naive = self.naive(row)
                wire_vs = "–"
                if naive is not None and naive.wire:
                    wire_vs = _times(_ratio(row.wire, naive.wire)) + ("" if naive.measured else " (est.)")
                first50, first_max = row.p("first_token_ms"), row.p("first_token_ms", 100)
                cells = self._lead(row) + [
                    _num(row.p("cpu_turn"), 2), _num(row.ratio("cpu_ratio"), 2),
                    self._vs_naive(row, lambda r: r.p("cpu_turn")),
                    _num((row.wire or 0) / 1000), _num(row.messages), _num(_ratio(row.wire, row.answer), 2), wire_vs,
                    _num((row.answer or 0) / 1000), f"{_num(first50)} / {_num(first_max)}",
                    _num(row.p("rss_growth_mb")),
                ]
            lines.append(_md_row(cells))
        return "\n".join(lines)

    # -- targets ---------------------------------------------------------------------------------------

    def targets(self) -> str:
        lines = []
        for surface in ("magic", "panel"):
            if surface in self.unavailable:
                lines.append(f"- **{surface}**: n/a — {self.unavailable[surface]}")
                continue
            rows = [r for r in self.rows if r.surface == surface and r.measured]
            if not rows:
                continue
            lines.append(f"- **{surface}**")
            lines.extend(f"  - {check}" for check in _checks(rows))
        return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return {True: "MET", False: "MISSED", None: "not measured"}[ok]


def _where(row: Row) -> str:
    return f"{row.tokens:,} tok @ {_rate(row.rate)} tok/s"


def _worst(rows: list[Row], value: Callable[[Row], float | None]) -> tuple[Row | None, float | None]:
    scored = [(row, value(row)) for row in rows]
    scored = [(row, v) for row, v in scored if v is not None]
    if not scored:
        return None, None
    return max(scored, key=lambda item: item[1])


def _checks(rows: list[Row]) -> list[str]:
    checks = []
    failures = sum(row.lag_failures for row in rows)
    row, lag = _worst(rows, lambda r: r.p("lag_ms"))
    ok = None if lag is None else lag <= LAG_P50_MS and failures == 0
    checks.append(f"lag after the last token p50 ≤ {LAG_P50_MS:.0f} ms everywhere: {_verdict(ok)} "
                  f"(worst {_num(lag)} ms at {_where(row) if row else '–'}"
                  f"{f'; {failures} runs never showed the last token' if failures else ''})")
    row, longest = _worst(rows, lambda r: r.longest_streaming)
    checks.append(f"no long task > {LONGTASK_MS:.0f} ms while streaming: "
                  f"{_verdict(None if longest is None else longest <= LONGTASK_MS)} "
                  f"(longest {_num(longest)} ms at {_where(row) if row else '–'}, counted from the cell's start "
                  f"until the last token is in the DOM; during the stream itself: "
                  f"{_num(max(r.longest('longtasks_during') for r in rows))} ms; after the last token is shown: "
                  f"{_num(max(r.longest('longtasks_after') for r in rows))} ms)")
    growth = []
    for rate in sorted({r.rate for r in rows}):
        by_tokens = {r.tokens: r.p("lag_ms") for r in rows if r.rate == rate}
        small, large = by_tokens.get(2000), by_tokens.get(32000)
        if small is not None and large is not None:
            growth.append((rate, large / small if small > 0 else float("inf"), small, large))
    if growth:
        ok = all(g <= LAG_GROWTH for _, g, _, _ in growth)
        detail = "; ".join(f"{_rate(rate)} tok/s: {_num(large)} / {_num(small)} ms = {g:.2f}×"
                           for rate, g, small, large in growth)
        checks.append(f"32k lag ≤ {LAG_GROWTH}× the 2k lag: {_verdict(ok)} ({detail})")
    else:
        checks.append(f"32k lag ≤ {LAG_GROWTH}× the 2k lag: not measured (needs lengths 2000 and 32000)")
    row, cpu = _worst(rows, lambda r: r.ratio("cpu_ratio"))
    checks.append(f"kernel CPU ≤ {CPU_RATIO}× the raw SDK loop: {_verdict(None if cpu is None else cpu <= CPU_RATIO)} "
                  f"(worst {_num(cpu, 2)}× at {_where(row) if row else '–'})")
    big = [r for r in rows if r.tokens == 32000]
    if big:
        detail = "; ".join(f"{_rate(r.rate)} tok/s: {_num(_ratio(r.wire, r.answer), 2)}×" for r in big)
        ok = all((_ratio(r.wire, r.answer) or 0) <= WIRE_RATIO for r in big)
        checks.append(f"wire bytes ≤ {WIRE_RATIO:.0f}× the final answer at 32k tokens: {_verdict(ok)} ({detail}; "
                      f"all lengths: {', '.join(f'{_num(_ratio(r.wire, r.answer), 1)}×' for r in rows)})")
    else:
        checks.append(f"wire bytes ≤ {WIRE_RATIO:.0f}× the final answer at 32k tokens: not measured")
    row, first = _worst(rows, lambda r: r.p("first_token_ms"))
    worst_any = max((v for r in rows for v in [r.p("first_token_ms", 100)] if v is not None), default=None)
    checks.append(f"first token leaves the kernel ≤ {FIRST_TOKEN_MS:.0f} ms after the SDK yields it: "
                  f"{_verdict(None if first is None else first <= FIRST_TOKEN_MS)} (worst p50 {_num(first)} ms at "
                  f"{_where(row) if row else '–'}; worst single run {_num(worst_any)} ms)")
    memory = [(r, r.p("rss_growth_mb")) for r in rows if r.tokens == max(x.tokens for x in rows)]
    if memory:
        detail = "; ".join(f"{_where(r)}: +{_num(v)} MB ({_num(r.messages)} messages)" for r, v in memory)
        checks.append(f"kernel memory, peak RSS growth during the longest turn: {detail}")
    return checks


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"

