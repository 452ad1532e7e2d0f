"""Streaming benchmark: how fast long answers reach the screen, and what they cost on the way.

    python benchmarks/streaming.py            # full run, ~20 min on 2 cores
    python benchmarks/streaming.py --quick    # 1,000 tok/s only, one run each, ~3 min

The real stack for every figure: emulator → anthropic SDK → ipykernel → JupyterLab → headless
Chromium. For each surface (the `%%claude` magic, the chat panel, and a naive baseline that calls
`update(Markdown(all_text))` per token), answer length and emulator rate, it prints two Markdown
tables (page side, kernel side) and the issue's targets as met/missed, and writes everything to
`benchmarks/results/streaming-<time>.json`. See benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _metrics import Row, RunMetrics, fitted_naive_overhead, group, measure, naive_wire_estimate  # noqa: E402
from _stack import CALIBRATION, REPO, SURFACES, RunSpec, Stack  # noqa: E402
from _tables import Tables  # noqa: E402
from _timed_emulator import make_answer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RUN_OVERHEAD_S = 3.0  # per run: bookkeeping cells, settling, reading the page (measured ~2-3 s)
NAIVE_CATCH_UP_S = 25.0  # the page re-rendering 2k per-token updates after the stream ended
WARMUP_TOKENS = 300


@dataclass(frozen=True)
class Options:
    lengths: list[int]
    rates: list[float]
    surfaces: tuple[str, ...]
    repeats: int
    budget: float
    naive_max_tokens: int
    naive_repeats: int


def parse_args(argv: list[str] | None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1,000 tok/s only, one run per cell (about 3 minutes)")
    parser.add_argument("--lengths", default="2000,8000,32000", help="answer lengths in tokens (default %(default)s)")
    parser.add_argument("--rates", default=None, help="emulator rates in tokens/s (default 1000,100; --quick: 1000)")
    parser.add_argument("--surfaces", default="magic,panel,naive", help="default %(default)s")
    parser.add_argument("--repeats", type=int, default=None,
                        help="most runs per (surface, length, rate); fewer where one run streams longer than "
                        "--budget allows (default 5; --quick: 1)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds of streaming per (surface, length, rate) that decide the repeats: "
                        "repeats = clamp(budget // stream seconds, 1, --repeats) (default %(default)s)")
    parser.add_argument("--naive-max-tokens", type=int, default=2000,
                        help="run the naive baseline only up to this length; above it its bytes are computed "
                        "(per-token re-rendering of 8k tokens keeps the page busy for minutes) (default %(default)s)")
    parser.add_argument("--naive-repeats", type=int, default=1, help="runs per naive cell (default %(default)s)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="print the tables of a saved results file instead of running")
    args = parser.parse_args(argv)
    surfaces = tuple(s.strip() for s in args.surfaces.split(",") if s.strip())
    unknown = set(surfaces) - set(SURFACES)
    if unknown:
        parser.error(f"unknown surfaces: {', '.join(sorted(unknown))} (choose from {', '.join(SURFACES)})")
    rates = args.rates or ("1000" if args.quick else "1000,100")
    options = Options(
        lengths=[int(x) for x in args.lengths.split(",")],
        rates=[float(x) for x in rates.split(",")],
        surfaces=surfaces,
        repeats=args.repeats or (1 if args.quick else 5),
        budget=args.budget,
        naive_max_tokens=args.naive_max_tokens,
        naive_repeats=args.naive_repeats,
    )
    return options, args.from_json


def repeats_for(options: Options, surface: str, tokens: int, rate: float) -> int:
    if surface == "naive":
        return options.naive_repeats if tokens <= options.naive_max_tokens else 0
    return max(1, min(options.repeats, int(options.budget // (tokens / rate))))


def plan(options: Options, first_index: int) -> list[RunSpec]:
    """Fast rates first; within a (length, rate) the surfaces alternate, so drift hits them alike."""
    specs: list[RunSpec] = []
    index = first_index
    for rate in sorted(options.rates, reverse=True):
        for tokens in options.lengths:
            counts = {s: repeats_for(options, s, tokens, rate) for s in options.surfaces}
            for repeat in range(max(counts.values(), default=0)):
                for surface in options.surfaces:
                    if repeat < counts[surface]:
                        specs.append(RunSpec(surface, tokens, rate, index))
                        index += 1
    return specs


def estimate_seconds(specs: list[RunSpec]) -> float:
    return sum(s.stream_seconds + RUN_OVERHEAD_S + (NAIVE_CATCH_UP_S if s.surface == "naive" else 0) for s in specs)


def browser_timeout(spec: RunSpec) -> float:
    # The naive page falls far behind; give it time to catch up so its lag is measured, not censored.
    return 60 + (spec.stream_seconds + 600 if spec.surface == "naive" else 0)


def panel_unavailable() -> str | None:
    try:
        importlib.import_module("claude_magic.surfaces.panel").ChatPanel  # noqa: B018 - the import is the check
    except Exception as error:  # noqa: BLE001 - any failure means "no panel rows"
        return f"claude_magic.surfaces.panel is not importable: {error!r}"
    return None


def _progress(m: RunMetrics) -> str:
    def f(value: float | None, unit: str = "ms") -> str:
        return "–" if value is None else f"{value:,.0f} {unit}"

    longest = max(m.longtasks_streaming, default=0)
    return (f"{m.surface:5} {m.tokens:>6,} tok @ {m.rate:>5,.0f} tok/s: lag {f(m.lag_ms)}, "
            f"longest task {longest:.0f} ms, "
            f"CPU {m.cpu_turn:.2f} s ({m.cpu_turn / m.cpu_raw if m.cpu_raw else 0:.2f}× raw), "
            f"{m.wire_bytes / 1000:,.0f} kB in {m.messages:,} msgs ({m.wire_ratio:.1f}× answer), "
            f"first token {f(m.first_token_ms)}" + (f"  [{'; '.join(m.notes)}]" if m.notes else ""))


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("anthropic", "ipykernel", "ipywidgets", "jupyterlab", "jupyter_server", "playwright", "pyzmq")
    return {"python": platform.python_version(), **{name: version(name) for name in names}}


CALIBRATION_RUNS = 3


def package_fingerprint() -> dict[str, Any]:
    """Which claude_magic was measured: git commit, uncommitted files, and a hash of the sources."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    digest = hashlib.sha256()
    for path in sorted((REPO / "claude_magic").rglob("*.py")):
        digest.update(path.read_bytes())
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": git("status", "--porcelain", "claude_magic"),
            "sources_sha256": digest.hexdigest()[:16]}


def measure_all(options: Options, unavailable: dict[str, str],
                calibration: list[float]) -> list[RunMetrics]:
    """Start the stack, warm it up, check the reference, run the plan; a broken run is reported and skipped."""
    surfaces = tuple(s for s in options.surfaces if s not in unavailable)
    warmups = [RunSpec(s, WARMUP_TOKENS, 1000.0, i + 1) for i, s in enumerate(surfaces) if s != "naive"]
    specs = plan(replace(options, surfaces=surfaces), first_index=100)
    print(f"Planned {len(specs)} runs: about {estimate_seconds(specs) / 60:.0f} min "
          f"(+ ~1 min to start JupyterLab and Chromium).", flush=True)
    runs: list[RunMetrics] = []
    with Stack(surfaces, RESULTS / "logs") as stack:
        if stack.panel_error:
            unavailable["panel"] = stack.panel_error
            specs = [s for s in specs if s.surface != "panel"]
            warmups = [s for s in warmups if s.surface != "panel"]
        if not stack.longtasks_supported:
            print("warning: this browser does not report long tasks", file=sys.stderr)
        for spec in warmups:  # imports, first connections, JupyterLab's first renderers: not measured
            stack.run(spec, browser_timeout=browser_timeout(spec))
        # The CPU reference runs in a second kernel: check it against the same loop in the measured one.
        for index in range(CALIBRATION_RUNS):
            observation = stack.run(RunSpec(CALIBRATION, 2000, 1000.0, 50 + index), browser_timeout=0)
            calibration.append(observation.cpu_turn / observation.cpu_raw)
        print(f"Reference check: raw SDK loop in the measured kernel ÷ in the reference kernel = "
              f"{', '.join(f'{r:.2f}' for r in calibration)}", flush=True)
        for number, spec in enumerate(specs, 1):
            try:
                metrics = measure(stack.run(spec, browser_timeout=browser_timeout(spec)))
            except Exception as error:  # noqa: BLE001 - one broken run must not lose the others
                print(f"[{number}/{len(specs)}] {spec} failed: {error!r}", file=sys.stderr, flush=True)
                continue
            runs.append(metrics)
            print(f"[{number}/{len(specs)}] {_progress(metrics)}", flush=True)
    return runs


def render(options: Options, runs: list[RunMetrics], unavailable: dict[str, str],
           title: str) -> tuple[str, list[Row], float | None]:
    rows = group(runs, options.surfaces, options.lengths, options.rates)
    texts = {tokens: make_answer(tokens, "Zq0000").text for tokens in options.lengths}
    overhead = fitted_naive_overhead(runs, texts)
    for row in rows:
        if row.surface == "naive" and not row.measured and overhead is not None:
            row.estimated_wire = naive_wire_estimate(texts[row.tokens], overhead)
    tables = Tables(rows, unavailable)
    report = "\n\n".join([
        f"## {title}",
        "### In the page (lag: the emulator sent the last token → it is in the DOM)",
        tables.page_table(),
        "### In the kernel (per answer; ×naive: this row ÷ the naive row of the same length and rate; "
        "≈/est.: computed, not run)",
        tables.kernel_table(),
        "### Targets",
        tables.targets(),
    ])
    return report, rows, overhead


def main(argv: list[str] | None = None) -> int:
    options, from_json = parse_args(argv)
    if from_json is not None:
        saved = json.loads(from_json.read_text())
        options = Options(**saved["options"])
        runs = [RunMetrics.from_json(run) for run in saved["runs"]]
        report, _, _ = render(options, runs, saved["unavailable"], saved["title"])
        print(report)
        return 0

    started = time.monotonic()
    unavailable: dict[str, str] = {}
    if "panel" in options.surfaces and (reason := panel_unavailable()):
        unavailable["panel"] = reason
    RESULTS.mkdir(exist_ok=True)
    package = package_fingerprint()
    calibration: list[float] = []
    runs = measure_all(options, unavailable, calibration)
    wall = time.monotonic() - started
    after = package_fingerprint()
    changed = (after["sources_sha256"], after["dirty"]) != (package["sources_sha256"], package["dirty"])
    title = (f"Streaming benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {wall / 60:.1f} min wall; "
             f"claude_magic {package['commit']}{' + uncommitted changes' if package['dirty'] else ''}"
             f"{'; WARNING: the sources changed during the run' if changed else ''}; reference check "
             f"{', '.join(f'{r:.2f}' for r in calibration)})")
    report, rows, overhead = render(options, runs, unavailable, title)
    print("\n" + report + "\n")
    out = RESULTS / f"streaming-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "title": title,
        "package": package,
        "package_changed_during_run": changed,
        "reference_check": calibration,
        "options": asdict(options),
        "versions": _versions(),
        "cpus": os.cpu_count(),
        "wall_seconds": wall,
        "unavailable": unavailable,
        "naive_overhead_bytes_per_message": overhead,
        "runs": [run.to_json() for run in runs],
        "rows": [_row_json(row) for row in rows],
        "report_markdown": report,
    }, indent=1))
    print(f"Results: {out.relative_to(REPO)}")
    return 0


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "surface": row.surface, "tokens": row.tokens, "rate": row.rate, "runs": len(row.runs),
        "lag_p50_ms": row.p("lag_ms"), "lag_p95_ms": row.p("lag_ms", 95), "cpu_ratio_p50": row.ratio("cpu_ratio"),
        "wire_bytes": row.wire, "messages": row.messages, "answer_bytes": row.answer,
        "first_token_p50_ms": row.p("first_token_ms"), "longest_task_streaming_ms": row.longest_streaming,
        "longest_task_after_shown_ms": row.longest("longtasks_after"),
        "estimated": not row.measured and row.estimated_wire is not None,
    }


if __name__ == "__main__":
    sys.exit(main())
