"""Every fault, through the real SDK in a real kernel: a clear line, partial text kept, history
valid, kernel usable. The emulator validates history exactly like the API (alternation, no empty
content), so a broken history shows up as a 400 on the turn after the fault."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness.kernel import KernelSession
from support import FAKE_API_KEY, after_thinking

from claude_magic.emulator import Emulator


@pytest.fixture(autouse=True)
def model_without_thinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wire mechanics, not thinking: a 4.5 model, which thinks only when asked (the default model starts every
    answer with a thinking block; tests/test_thinking_client.py covers it)."""
    monkeypatch.setenv("CLAUDE_MAGIC_MODEL", "claude-haiku-4-5")


pytestmark = pytest.mark.kernel

PARTIAL = "Hello there, this is"
REPLY = "Hello there, this is a reply long enough to be cut part way through by a fault."


@dataclass(frozen=True)
class Fault:
    name: str
    fault: dict[str, Any] | None  # the emulator script's fault; None for interrupts
    message: str  # must appear in the one-line error
    partial: bool  # text streamed before the failure stays visible
    flags: str = ""
    interrupt_after: str | None = None  # "start" (before the first token) or "token"


FAULTS = [
    Fault("http-400", {"kind": "http", "status": 400, "message": "messages.0: bad"}, "Bad request (400)", False),
    Fault("http-401", {"kind": "http", "status": 401}, "Authentication failed (401)", False),
    Fault("http-403", {"kind": "http", "status": 403}, "Permission denied (403)", False),
    Fault("http-404-model", None, "unknown model 'claude-no-such-model'", False, flags="-m claude-no-such-model"),
    Fault("http-413", {"kind": "http", "status": 413}, "Request too large (413)", False),
    Fault("http-429", {"kind": "http", "status": 429, "retry_after": 1}, "Rate limited (429)", False),
    Fault("http-500", {"kind": "http", "status": 500}, "API error (500)", False),
    Fault("http-529", {"kind": "http", "status": 529}, "Overloaded (529)", False),
    Fault("error-event", {"kind": "error_event", "after_tokens": 5}, "Overloaded mid-answer after 5 tokens", True),
    Fault("disconnect", {"kind": "disconnect", "after_tokens": 5}, "Connection to the API lost after 5 tokens",
          True),
    Fault("stall", {"kind": "stall", "after_tokens": 5, "seconds": 20}, "Timed out waiting for the API", True),
    Fault("malformed-sse", {"kind": "malformed", "after_tokens": 5}, "malformed stream event after 5 tokens", True),
    Fault("interrupt-before-first-token", {"kind": "stall", "after_tokens": 0, "seconds": 20},
          "Interrupted before the first token", False, interrupt_after="start"),
    Fault("interrupt-mid-stream", {"kind": "stall", "after_tokens": 5, "seconds": 20}, "Interrupted after 5 tokens",
          True, flags="--display live", interrupt_after="token"),
]
MATRIX: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def emulator_module() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def fault_kernel(emulator_module: Emulator) -> Iterator[KernelSession]:
    env = {"ANTHROPIC_BASE_URL": emulator_module.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY,
           "CLAUDE_MAGIC_DISPLAY": "live", "CLAUDE_MAGIC_OFFLINE": "0", "CLAUDE_MAGIC_MODEL": "claude-haiku-4-5"}
    with KernelSession(env=env) as kernel:
        kernel.execute("%load_ext claude_magic\n%config ClaudeMagic.read_timeout = 3\n"
                       "%config ClaudeMagic.max_retries = 1\nimport threading")
        yield kernel


def _threads(kernel: KernelSession) -> int:
    return int(kernel.execute("print(threading.active_count())").stdout())


def _open_connections(kernel: KernelSession, port: int) -> int:
    """The kernel's TCP connections to the emulator (the SDK's pool may keep one idle)."""
    code = ("import psutil\nprint(sum(1 for c in psutil.Process().net_connections('tcp')"
            f" if c.raddr and c.raddr.port == {port} and c.status == 'ESTABLISHED'))")
    return int(kernel.execute(code).stdout())


@pytest.mark.parametrize("case", FAULTS, ids=[case.name for case in FAULTS])
def test_fault(case: Fault, fault_kernel: KernelSession, emulator_module: Emulator) -> None:
    emu, kernel = emulator_module, fault_kernel
    turns = [{"match": "warm-up", "content": "Warm-up answer."},
             {"match": case.name, "content": REPLY, "fault": case.fault} if case.fault else
             {"match": case.name, "content": REPLY},
             {"match": "after the fault", "content": "Recovered."}]
    emu.set_script({"turns": turns})
    kernel.execute("%%claude --new\nwarm-up")  # history holds one good exchange before the fault
    threads_before = _threads(kernel)

    started = time.monotonic()
    msg_id = kernel.execute_async(f"%%claude {case.flags}\n{case.name}")
    if case.interrupt_after == "start":
        kernel.wait_for(lambda m: "Waiting for Claude" in json.dumps(m["content"]), msg_id=msg_id, timeout=20)
        time.sleep(0.3)
        kernel.interrupt()
    elif case.interrupt_after == "token":
        kernel.wait_for(lambda m: PARTIAL in json.dumps(m["content"]), msg_id=msg_id, timeout=20)
        kernel.interrupt()
    result = kernel.collect(msg_id, timeout=60)
    elapsed = time.monotonic() - started

    # 1. One clear line, no traceback; the cell fails so Run All stops.
    error = result.error()
    assert result.status == "error" and error is not None
    assert error["ename"] == ("ClaudeInterrupted" if case.message.startswith("Interrupted") else "ClaudeError")
    assert case.message in error["evalue"] and "\n" not in error["evalue"]
    assert "Traceback" not in result.traceback_text()
    # 2. What streamed stays visible; the footer is there with the usage known; the error line is said
    #    once (the raised line), not also as a warning in the output above it.
    shown, shown_html = result.final_text(), result.final_text("text/html")
    sentence = error["evalue"].split(" (request id")[0]
    assert sentence in result.traceback_text()  # the raised line, the one place it is said
    assert shown.count(sentence) == 0 and shown_html.count(sentence) == 0
    assert "⚠" not in shown + shown_html
    # No footer of zeros: a turn that failed before anything arrived is its raised line alone.
    assert "0 in / 0 out" not in shown
    if case.partial:
        assert "stop_reason:" in shown
        assert after_thinking(shown).startswith(PARTIAL)  # after the default model's thinking
        assert "partial answer kept, not added to history" in error["evalue"]
    if case.name == "http-429":
        notices = [m for m in result.displays() if "retrying in 1 s" in json.dumps(m["content"])]
        assert notices, "the retry must be shown while it waits"
        assert elapsed >= 1.0  # retry-after honoured
    # 3. History valid: the next turn is accepted and carries only complete exchanges.
    kernel.execute("%%claude\nafter the fault")
    last = emu.requests[-1]
    assert last.status == 200
    assert [m["role"] for m in last.messages] == ["user", "assistant", "user"]
    assert last.messages[0]["content"] == "warm-up"
    # 4. Kernel usable, nothing leaked.
    assert kernel.execute("print(6 * 7)").stdout() == "42\n"
    assert _open_connections(kernel, int(emu.base_url.rsplit(":", 1)[1])) <= 1
    assert _threads(kernel) <= threads_before
    MATRIX.append({"fault": case.name, "line": error["evalue"], "partial kept": case.partial,
                   "history valid": True, "kernel usable": True, "seconds": round(elapsed, 2)})


def test_write_matrix(artifacts: Path) -> None:
    """Leave the matrix as a table in the artifacts folder (for the record; asserts it is complete)."""
    assert {row["fault"] for row in MATRIX} == {case.name for case in FAULTS}
    lines = ["| fault | message | partial kept | history valid | kernel usable | s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['fault']} | {r['line']} | {r['partial kept']} | {r['history valid']} | {r['kernel usable']} "
              f"| {r['seconds']} |" for r in MATRIX]
    (artifacts / "fault_matrix.md").write_text("\n".join(lines) + "\n")


# -- the same faults through the panel's non-browser API ------------------------------------------------

PANEL_MATRIX: list[dict[str, Any]] = []


@pytest.mark.parametrize("case", FAULTS, ids=[case.name for case in FAULTS])
def test_panel_fault(case: Fault, shell: Any, emulator: Emulator) -> None:
    """The panel never raises into the kernel; Stop stands in for the kernel interrupt."""
    import threading as threads

    from claude_magic import ChatPanel
    from claude_magic.core.history import STORE

    shell.run_line_magic("config", "ClaudeMagic.read_timeout = 3")
    shell.run_line_magic("config", "ClaudeMagic.max_retries = 1")
    emulator.set_script({"turns": [
        {"match": "warm-up", "content": "Warm-up answer."},
        {"match": case.name, "content": REPLY, "fault": case.fault} if case.fault else
        {"match": case.name, "content": REPLY},
        {"match": "after the fault", "content": "Recovered."}]})
    STORE.get().reset()
    panel = ChatPanel()
    try:
        assert panel.send("warm-up") and panel.wait(30).status == "complete"
        threads_before = threads.active_count()
        if case.flags.startswith("-m "):
            panel.model_picker.options = (*panel.model_picker.options, case.flags.split()[1])
            panel.model_picker.value = case.flags.split()[1]
        started = time.monotonic()
        assert panel.send(case.name)
        if case.interrupt_after == "start":
            time.sleep(0.3)
            panel.stop()
        elif case.interrupt_after == "token":
            deadline = time.monotonic() + 20
            while PARTIAL not in (panel.last_turn.text if panel.last_turn else ""):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            panel.stop()
        state = panel.wait(60)
        elapsed = time.monotonic() - started
        assert state is not None and state.error is not None
        line = state.error.message
        expected = case.message.replace("Interrupted", "Stopped")
        # 1. One clear line, shown inline in the panel.
        assert expected in line and "\n" not in line
        shown = "".join(getattr(child, "value", "") for child in _walk(panel.transcript))
        assert html.escape(line.split(" (request id")[0]) in shown  # escaped like footer_html does
        # 2. Partial text kept and marked.
        if case.partial:
            assert state.text.startswith(PARTIAL) and PARTIAL in shown
            assert "partial answer kept, not added to history" in line
        # 3. History valid: the next turn is accepted with only complete exchanges.
        panel.model_picker.value = panel.model_picker.options[0]
        assert panel.send("after the fault") and panel.wait(30).status == "complete"
        last = emulator.requests[-1]
        assert last.status == 200
        assert [m["role"] for m in last.messages] == ["user", "assistant", "user"]
    finally:
        panel.close()
        panel.wait(10)
    # 4. Usable, nothing leaked: no turn thread left; the kernel's shell is this thread and ran on.
    deadline = time.monotonic() + 5
    while threads.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads.active_count() <= threads_before
    PANEL_MATRIX.append({"fault": case.name, "line": line, "seconds": round(elapsed, 2)})


def _walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_write_panel_matrix(artifacts: Path) -> None:
    assert {row["fault"] for row in PANEL_MATRIX} == {case.name for case in FAULTS}
    lines = ["| fault | panel line | s |", "|---|---|---|"]
    lines += [f"| {r['fault']} | {r['line']} | {r['seconds']} |" for r in PANEL_MATRIX]
    (artifacts / "panel_fault_matrix.md").write_text("\n".join(lines) + "\n")
