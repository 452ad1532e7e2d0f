"""The real stack, started once per benchmark: emulator → SDK → kernel → JupyterLab → headless Chromium.

`Stack.run(spec)` performs one measured turn and returns its raw observations (`RunObservation`).
Everything is reused from `tests/harness` (JupyterLab launcher, Browser, LabNotebook, KernelSession);
what the harness has no need for lives here: the IOPub tap, the page probe and the raw-SDK kernel.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _cells import (  # noqa: E402
    BOOK_CELL,
    PANEL,
    PANEL_CELL,
    RAW_SETUP,
    REPORT_TAG,
    RUN_CELL,
    SETUP,
    SETUP_TAG,
    prep_cell,
    raw_cell,
    report_cell,
    run_cell,
)
from _iopub_tap import OUTPUT_TYPES, IOPubTap, TapMessage  # noqa: E402
from _page_probe import WatchResult, clock_offset, install, read_watch, start_watch, watch_state  # noqa: E402
from _timed_emulator import Answer, LastTokenClock, make_answer, script_for, start_emulator  # noqa: E402
from harness.kernel import KernelSession  # noqa: E402
from harness.lab import Browser, JupyterLab, LabNotebook, write_notebook  # noqa: E402

FAKE_API_KEY = "sk-ant-benchmark-not-a-real-key"
FOOTER = ".claude-magic-footer"
SURFACES = ("magic", "panel", "naive")
CALIBRATION = "raw"  # the raw SDK loop in the measured kernel itself, against the reference kernel
SETUP_FILE = "bench_setup.ipy"


@dataclass(frozen=True)
class RunSpec:
    surface: str
    tokens: int
    rate: float
    index: int  # unique per run: names the prompt, the sentinel and the bookkeeping markers

    @property
    def stream_seconds(self) -> float:
        return self.tokens / self.rate


@dataclass
class RunObservation:
    spec: RunSpec
    answer: Answer
    last_token_sent: float | None  # epoch s: the emulator flushed the sentinel chunk
    kernel_idle: float | None  # epoch s: the measured cell's idle status reached the tap
    watch: WatchResult | None
    cpu_turn: float  # kernel process CPU seconds, trigger → idle
    cpu_raw: float  # the raw-SDK kernel's CPU seconds over its identical stream
    rss_before: int
    rss_peak: int
    messages: list[TapMessage]  # output and comm messages of the run, in arrival order
    report: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def clean_environment(base_url: str) -> dict[str, str]:
    """Drop the developer's Claude/Anthropic settings; point every kernel at the emulator."""
    for name in list(os.environ):
        if name.startswith("CLAUDE_MAGIC_") or name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                                                         "ANTHROPIC_BASE_URL"):
            del os.environ[name]
    env = {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY}
    os.environ.update(env)
    return env


def process_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class RssSampler:
    """Peak RSS of a process, sampled every 50 ms on a thread while active."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self._stop = threading.Event()
        self.before = process.memory_info().rss
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.peak = max(self.peak, self._process.memory_info().rss)


class Stack:
    """Usage::

        with Stack(surfaces, log_dir) as stack:
            observation = stack.run(RunSpec("magic", 2000, 1000.0, index=1), browser_timeout=60)
    """

    def __init__(self, surfaces: tuple[str, ...], log_dir: Path) -> None:
        self.surfaces = surfaces
        self.log_dir = log_dir
        self.clock = LastTokenClock()
        self.panel_error: str | None = None
        self.longtasks_supported = False
        self._closers: list[Any] = []

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as error:  # noqa: BLE001 - shut down everything else regardless
                print(f"warning: shutdown step failed: {error!r}", file=sys.stderr)
        self._closers.clear()

    def _start(self) -> None:
        self.emulator = start_emulator(self.clock)
        self._closers.append(self.emulator.stop)
        env = clean_environment(self.emulator.base_url)

        # Autosave would serialize the notebook (with a 400 kB answer in it) at random moments.
        settings = {"@jupyterlab/docmanager-extension:plugin": {"autosave": False}}
        self.lab = JupyterLab(env=env, log_dir=self.log_dir, user_settings=settings)
        self.lab.start()
        self._closers.append(self.lab.stop)
        (self.lab.root_dir / SETUP_FILE).write_text(SETUP)
        cells = [f"%run -i {SETUP_FILE}", PANEL, "# the measured cell", "# bookkeeping"]
        write_notebook(self.lab.root_dir / "bench.ipynb", cells)

        self.browser = Browser(headless=True)
        self.browser.start()
        self._closers.append(self.browser.close)
        self.page = self.browser.new_page(viewport=(1280, 1000))
        self.nb = LabNotebook(self.page).open(self.lab, "bench.ipynb", timeout=120)
        self.longtasks_supported = install(self.page)

        self.nb.run_cell(0, timeout=120)
        setup_text = "\n".join(self.nb.output_texts(0))
        if SETUP_TAG not in setup_text:
            raise RuntimeError(f"setup cell failed:\n{setup_text}")
        info = json.loads(setup_text.split(SETUP_TAG, 1)[1].splitlines()[0])
        self.kernel = psutil.Process(info["pid"])
        self.tap = IOPubTap(info["connection_file"]).start()
        self._closers.append(self.tap.close)
        self._wait_tap_ready()

        if "panel" in self.surfaces:
            self._start_panel()

        self.raw = KernelSession(env=env)
        self.raw.start()
        self._closers.append(lambda: self.raw.shutdown(now=True))
        raw_pid = self.raw.execute(RAW_SETUP).stdout().strip().splitlines()[-1]
        self.raw_process = psutil.Process(int(raw_pid))

    def _wait_tap_ready(self) -> None:
        """ZMQ subscriptions take a moment to be established; run a cell until the tap sees it."""
        for attempt in range(20):
            marker = f"tap-ready-{attempt}"
            mark = self.tap.mark()
            self._run_book(f"# {marker}\npass")
            try:
                self.tap.execution(marker, mark, timeout=2)
                return
            except TimeoutError:
                continue
        raise RuntimeError("the IOPub tap never received the kernel's messages")

    def _start_panel(self) -> None:
        try:
            self.nb.run_cell(PANEL_CELL, timeout=60)
            self.nb.cell(PANEL_CELL).locator(".claude-magic-panel").first.wait_for(timeout=30_000)
        except Exception as error:  # noqa: BLE001 - the panel is reported as n/a, the rest still runs
            self.panel_error = f"the panel did not start: {error!r}"[:300]

    # -- one run -------------------------------------------------------------------------------------

    def _run_book(self, code: str) -> None:
        self.nb.set_cell_source(BOOK_CELL, code)
        self.nb.run_cell(BOOK_CELL, timeout=60)

    def _book(self, code: str, marker: str) -> list[TapMessage]:
        mark = self.tap.mark()
        self._run_book(code)
        _, messages = self.tap.execution(marker, mark, timeout=60)
        return messages

    def _report(self, tag: str) -> dict[str, Any]:
        for message in self._book(report_cell(tag), tag):
            if message.msg_type == "stream":
                text = message.json()["text"]
                if REPORT_TAG in text:
                    report: dict[str, Any] = json.loads(text.split(REPORT_TAG, 1)[1].splitlines()[0])
                    return report
        return {}

    def _scroll_to(self, cell: int) -> None:
        self.page.evaluate(
            "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].node.scrollIntoView({block: 'start'})",
            cell,
        )

    def run(self, spec: RunSpec, *, browser_timeout: float) -> RunObservation:
        tag = f"bench-op-{spec.index:04d}"
        prompt = f"bench run {spec.index:04d} {spec.surface}"
        raw_prompt = f"raw run {spec.index:04d}"
        answer = make_answer(spec.tokens, f"Zq{spec.index:04d}")
        raw_answer = make_answer(spec.tokens, f"Zr{spec.index:04d}")
        self.clock.watch(answer.sentinel, raw_answer.sentinel)
        self.emulator.set_script(script_for({prompt: answer, raw_prompt: raw_answer}, spec.rate))
        notes: list[str] = []

        self.tap.forget()
        self._book(prep_cell(tag, spec.surface), tag)
        # Clearing a long previous answer is expensive for the page: do it before the run starts.
        self.page.evaluate("(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs.clear()",
                           RUN_CELL)
        self.nb.set_cell_source(RUN_CELL, run_cell(spec.surface, prompt, timeout=spec.stream_seconds * 3 + 120))
        target = PANEL_CELL if spec.surface == "panel" else RUN_CELL
        self.nb.select_cell(RUN_CELL)
        self._scroll_to(target)
        time.sleep(0.5)  # let the page settle (layout, GC of the cleared output)

        shown = spec.surface != "raw"  # the calibration surface draws nothing
        offset = clock_offset(self.page)
        if shown:
            start_watch(self.page, target, answer.sentinel, None if spec.surface == "naive" else FOOTER)
        mark = self.tap.mark()
        rss = RssSampler(self.kernel)
        cpu_before, raw_cpu_before = process_cpu(self.kernel), process_cpu(self.raw_process)
        self.page.keyboard.press("Control+Enter")
        raw_id = self.raw.execute_async(raw_cell(raw_prompt))

        stream_timeout = spec.stream_seconds * 2 + 60
        last_sent = self.clock.wait(answer.sentinel, stream_timeout)
        kernel_idle = None
        try:
            msg_id, cell_messages = self.tap.execution(prompt, mark, timeout=stream_timeout)
            kernel_idle = next(m.t for m in cell_messages if m.msg_type == "status" and b'"idle"' in m.content)
        except TimeoutError:
            notes.append("the measured cell did not finish")
        cpu_turn = process_cpu(self.kernel) - cpu_before
        rss.stop()
        try:
            self.raw.collect(raw_id, timeout=stream_timeout)
        except TimeoutError:
            notes.append("the raw SDK loop did not finish")
        cpu_raw = process_cpu(self.raw_process) - raw_cpu_before

        watch = None
        if shown:
            deadline = time.monotonic() + browser_timeout
            while time.monotonic() < deadline and watch_state(self.page)["done"] is None:
                time.sleep(0.1)
            if watch_state(self.page)["done"] is None:
                notes.append(f"the page did not show the end of the answer within {browser_timeout:.0f} s")
            watch = read_watch(self.page, offset)
        messages = [m for m in self.tap.since(mark) if m.msg_type in OUTPUT_TYPES]
        report = self._report(tag)
        return RunObservation(
            spec=spec, answer=answer, last_token_sent=last_sent,
            kernel_idle=kernel_idle, watch=watch, cpu_turn=cpu_turn, cpu_raw=cpu_raw,
            rss_before=rss.before, rss_peak=rss.peak, messages=messages, report=report, notes=notes,
        )
