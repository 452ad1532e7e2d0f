"""Proof that the test harness works: a real kernel through jupyter_client, and JupyterLab in Chromium."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.kernel import KernelSession, reconstruct_outputs
from harness.lab import Browser, JupyterLab, LabNotebook, artifacts_dir, write_notebook

# Fixtures artifacts, kernel_factory, jupyterlab_factory, browser, lab_page: tests/conftest.py star-imports
# harness.fixtures; load it as a plugin only when no conftest did (a second load would only warn).
if "harness.fixtures" not in sys.modules:
    pytest_plugins = ["harness.fixtures"]

# ---------------------------------------------------------------------------------------------------------
# Output reconstruction (pure, no kernel)
# ---------------------------------------------------------------------------------------------------------


def _msg(msg_type: str, **content: Any) -> dict[str, Any]:
    return {"header": {"msg_type": msg_type}, "parent_header": {}, "content": content}


def test_reconstruct_merges_streams_and_applies_carriage_returns() -> None:
    outputs = reconstruct_outputs(
        [
            _msg("stream", name="stdout", text="10%\r"),
            _msg("stream", name="stdout", text="100%\ndone\n"),
            _msg("stream", name="stderr", text="warn\n"),
            _msg("stream", name="stdout", text="more\n"),
        ]
    )
    assert [(o["name"], o["text"]) for o in outputs] == [
        ("stdout", "100%\ndone\n"),
        ("stderr", "warn\n"),
        ("stdout", "more\n"),
    ]


def test_reconstruct_display_updates_and_clear_output() -> None:
    shown = {"display_id": "d1"}
    msgs = [
        _msg("display_data", data={"text/plain": "a"}, metadata={}, transient=shown),
        _msg("display_data", data={"text/plain": "other"}, metadata={}),
        _msg("update_display_data", data={"text/plain": "b"}, metadata={}, transient=shown),
        _msg("update_display_data", data={"text/plain": "ignored"}, metadata={}, transient={"display_id": "?"}),
    ]
    assert [o["data"]["text/plain"] for o in reconstruct_outputs(msgs)] == ["b", "other"]
    # wait=True: the clear happens when the next output is added; updates before that still apply.
    waiting = [*msgs, _msg("clear_output", wait=True)]
    assert [o["data"]["text/plain"] for o in reconstruct_outputs(waiting)] == ["b", "other"]
    waiting.append(_msg("update_display_data", data={"text/plain": "c"}, metadata={}, transient=shown))
    assert [o["data"]["text/plain"] for o in reconstruct_outputs(waiting)] == ["c", "other"]
    waiting.append(_msg("stream", name="stdout", text="after\n"))
    assert reconstruct_outputs(waiting) == [{"output_type": "stream", "name": "stdout", "text": "after\n"}]
    # Clearing forgets display ids: a later update of d1 changes nothing.
    waiting.append(_msg("update_display_data", data={"text/plain": "d"}, metadata={}, transient=shown))
    assert len(reconstruct_outputs(waiting)) == 1
    # wait=False clears at once.
    assert reconstruct_outputs([*msgs, _msg("clear_output", wait=False)]) == []


# ---------------------------------------------------------------------------------------------------------
# KernelSession
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelSession]:
    with KernelSession() as session:
        yield session


@pytest.mark.kernel
def test_kernel_stdout(kernel: KernelSession) -> None:
    result = kernel.execute("print('a'); print('b')")
    assert result.status == "ok"
    assert result.stdout() == "a\nb\n"
    assert result.stderr() == ""
    assert result.final_text() == "a\nb\n"
    assert all(m["parent_header"]["msg_id"] == result.msg_id for m in result.messages)
    assert [m["header"]["msg_type"] for m in result.messages][:2] == ["status", "execute_input"]
    times = [m["t"] for m in result.messages]
    assert times == sorted(times)
    assert result.sent_at <= times[0] and result.duration() > 0


@pytest.mark.kernel
def test_kernel_display_update(kernel: KernelSession) -> None:
    result = kernel.execute("h = display('x', display_id=True); h.update('y')")
    assert [m["header"]["msg_type"] for m in result.displays()] == ["display_data", "update_display_data"]
    final = result.final_outputs()
    assert len(final) == 1
    assert final[0]["output_type"] == "display_data"
    assert final[0]["data"]["text/plain"] == "'y'"
    assert result.final_text() == "'y'"


@pytest.mark.kernel
def test_kernel_clear_output(kernel: KernelSession) -> None:
    waited = kernel.execute(
        "from IPython.display import clear_output\nprint('one'); clear_output(wait=True); print('two')"
    )
    assert waited.final_text() == "two\n"
    assert waited.stdout() == "one\ntwo\n"  # the raw stream still has both

    pending = kernel.execute(
        "from IPython.display import clear_output\n"
        "h = display('a', display_id=True); clear_output(wait=True); h.update('b')"
    )
    # Nothing was added after the clear, so the updated old output is still shown.
    assert pending.final_text() == "'b'"

    now = kernel.execute("from IPython.display import clear_output\nprint('x'); clear_output(); print('y')")
    assert now.final_outputs() == [{"output_type": "stream", "name": "stdout", "text": "y\n"}]


@pytest.mark.kernel
def test_kernel_error(kernel: KernelSession) -> None:
    result = kernel.execute("raise ValueError('boom')", allow_error=True)
    assert result.status == "error"
    err = result.error()
    assert err is not None and err["ename"] == "ValueError" and err["evalue"] == "boom"
    assert result.final_outputs()[-1]["output_type"] == "error"

    with pytest.raises(AssertionError, match=r"ValueError: again"):
        kernel.execute("raise ValueError('again')")

    # stop_on_error aborts what was queued behind a failing cell; the kernel keeps working afterwards.
    failing = kernel.execute_async("raise RuntimeError('first')")
    queued = kernel.execute_async("print('never')")
    assert kernel.collect(failing).status == "error"
    aborted = kernel.collect(queued)
    assert aborted.status == "aborted" and aborted.stdout() == ""
    assert kernel.execute("print('fine')").stdout() == "fine\n"


@pytest.mark.kernel
def test_kernel_concurrent_requests_are_routed(kernel: KernelSession) -> None:
    slow = kernel.execute_async("import time; time.sleep(0.5); print('A')")
    fast = kernel.execute_async("print('B')")
    # Collect in the "wrong" order: the slow one's messages arrive while we wait for the fast one.
    fast_result = kernel.collect(fast, timeout=30)
    slow_result = kernel.collect(slow, timeout=30)
    assert slow_result.stdout() == "A\n" and fast_result.stdout() == "B\n"
    assert slow_result.idle_at <= fast_result.idle_at


@pytest.mark.kernel
def test_kernel_late_background_output_is_kept(kernel: KernelSession) -> None:
    started = kernel.execute(
        "import threading, time\n"
        "def _late():\n"
        "    time.sleep(0.3); print('late')\n"
        "threading.Thread(target=_late).start()\n"
        "print('early')"
    )
    assert started.stdout() == "early\n"  # the snapshot was taken when the cell finished
    late = kernel.wait_for(lambda m: m["header"]["msg_type"] == "stream" and "late" in m["content"]["text"], timeout=10)
    # The thread's print carries the parent header of the kernel's current parent (this cell: no other
    # cell ran since); it was kept in that cell's buffer and is visible in a fresh result.
    assert late["parent_header"]["msg_id"] == started.msg_id
    assert late in kernel.messages_for(started.msg_id)
    assert kernel.result_for(started).stdout() == "early\nlate\n"


@pytest.mark.kernel
def test_kernel_interrupt(kernel: KernelSession) -> None:
    msg_id = kernel.execute_async("import time; time.sleep(30)")
    kernel.wait_for(lambda m: m["header"]["msg_type"] == "execute_input", msg_id=msg_id, timeout=10)
    time.sleep(0.2)  # let the cell reach time.sleep
    t0 = time.monotonic()
    kernel.interrupt()
    result = kernel.collect(msg_id, timeout=10)
    assert time.monotonic() - t0 < 5
    assert result.status == "error"
    err = result.error()
    assert err is not None and err["ename"] == "KeyboardInterrupt"
    assert kernel.execute("print('alive')").stdout() == "alive\n"


@pytest.mark.kernel
def test_kernel_factory_env_and_cwd(kernel_factory: Callable[..., KernelSession], tmp_path: Path) -> None:
    session = kernel_factory(env={"HARNESS_PROBE": "42"}, cwd=str(tmp_path))
    result = session.execute(
        "import os, sys; print(os.environ['HARNESS_PROBE']); print(os.getcwd()); print(sys.prefix)"
    )
    probe, cwd, prefix = result.stdout().splitlines()
    assert probe == "42"
    assert Path(cwd).resolve() == tmp_path.resolve()
    assert prefix == sys.prefix
    session.shutdown()
    session.shutdown()  # idempotent
    assert not session.is_alive


# ---------------------------------------------------------------------------------------------------------
# JupyterLab + Chromium
# ---------------------------------------------------------------------------------------------------------

WIDGET_CELL = (
    "import ipywidgets as w\n"
    'b = w.Button(description="Press me"); out = w.Label(value="0")\n'
    "b.on_click(lambda _: setattr(out, 'value', str(int(out.value)+1)))\n"
    "w.VBox([b, out])"
)
# Kernel-side evidence of how JupyterLab sent the comm messages: the subshells it created in the kernel.
PROBE_CELL = (
    "import json\n"
    "_m = getattr(get_ipython().kernel, 'shell_channel_thread', None)\n"
    "print('SUBSHELLS=' + json.dumps(_m.manager.list_subshell() if _m else []))"
)


@pytest.fixture(scope="module")
def default_lab() -> Iterator[JupyterLab]:
    """One JupyterLab with default settings shared by this module's browser tests (startup costs ~3 s)."""
    with JupyterLab(log_dir=artifacts_dir("test_harness__default_lab", clean=True)) as lab:
        yield lab


@pytest.fixture(scope="module")
def default_page(browser: Browser) -> Iterator[Any]:
    """One page shared by the tests on ``default_lab``: the first loads JupyterLab (~4 s), later ones open
    their notebook inside the loaded app (``LabNotebook.open(..., reload=False)``, ~1 s)."""
    page = browser.new_page()
    yield page
    page.context.close()


@pytest.mark.browser
def test_lab_runs_a_cell(default_lab: JupyterLab, default_page: Any, artifacts: Path) -> None:
    write_notebook(default_lab.root_dir / "hello.ipynb", ['print("hello from kernel")'])
    nb = LabNotebook(default_page).open(default_lab, "hello.ipynb")
    nb.run_cell(0, timeout=30)
    out = nb.wait_output_text(0, "hello from kernel", timeout=30)
    assert out.inner_text().strip() == "hello from kernel"
    assert nb.cells().count() == 1  # running in place added no cell
    nb.screenshot(artifacts / "hello.png")
    assert (artifacts / "hello.png").stat().st_size > 0
    _record_timings(artifacts, lab_startup=default_lab.startup_seconds, open_with_reload=nb.open_seconds)


def _record_timings(artifacts: Path, **seconds: float) -> None:
    """Keep the measured durations next to the screenshots (test-artifacts/<test>/timings.json)."""
    (artifacts / "timings.json").write_text(json.dumps({k: round(v, 3) for k, v in seconds.items()}, indent=2))


def _click_and_count(nb: LabNotebook, artifacts: Path, tag: str) -> dict[str, float]:
    t0 = time.monotonic()
    nb.run_cell(0, timeout=30)
    button = nb.output(0).get_by_role("button", name="Press me")
    button.wait_for(timeout=30_000)
    label = nb.output(0).locator(".widget-label").first
    label.filter(has_text=re.compile(r"^0$")).wait_for(timeout=10_000)
    t1 = time.monotonic()
    button.click()
    label.filter(has_text=re.compile(r"^1$")).wait_for(timeout=15_000)
    t2 = time.monotonic()
    nb.screenshot(artifacts / f"widget-{tag}.png")
    return {"run_to_widget_rendered": t1 - t0, "click_to_label_updated": t2 - t1}


def _subshells(nb: LabNotebook) -> list[str]:
    nb.run_cell(1, timeout=30)
    text = nb.wait_output_text(1, "SUBSHELLS=", timeout=30).inner_text()
    found: list[str] = json.loads(text.split("SUBSHELLS=", 1)[1].strip())
    return found


@pytest.mark.browser
def test_lab_widget_click_default(default_lab: JupyterLab, default_page: Any, artifacts: Path) -> None:
    write_notebook(default_lab.root_dir / "widget.ipynb", [WIDGET_CELL, PROBE_CELL])
    nb = LabNotebook(default_page).open(default_lab, "widget.ipynb", reload=False)
    assert nb.comms_over_subshells() == "perCommTarget"  # JupyterLab 4.4+'s default
    timings = _click_and_count(nb, artifacts, "default")
    # With the default, JupyterLab asked the kernel for a subshell for the jupyter.widget comm target.
    assert len(_subshells(nb)) == 1
    _record_timings(artifacts, open_in_app=nb.open_seconds, **timings)


@pytest.mark.browser
def test_lab_widget_click_without_comm_subshells(
    jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any, artifacts: Path
) -> None:
    lab = jupyterlab_factory(comm_subshells=False)
    # The server serves the user setting ...
    settings = lab.plugin_settings("@jupyterlab/apputils-extension:kernels-settings")
    assert settings["settings"]["commsOverSubshells"] == "disabled"
    write_notebook(lab.root_dir / "widget.ipynb", [WIDGET_CELL, PROBE_CELL])
    nb = LabNotebook(lab_page).open(lab, "widget.ipynb")
    # ... the page's kernel manager uses it ...
    assert nb.comms_over_subshells() == "disabled"
    timings = _click_and_count(nb, artifacts, "no-subshells")
    # ... and the kernel never got a subshell, so the click went through the main shell.
    assert _subshells(nb) == []
    _record_timings(artifacts, lab_startup=lab.startup_seconds, open_with_reload=nb.open_seconds, **timings)


def test_artifacts_dir_is_under_repo_and_ignored() -> None:
    path = artifacts_dir("some/odd name[param]")
    assert path.is_dir() and path.name == "some_odd_name_param"
    assert path.parent.name == "test-artifacts"
    gitignore = Path(__file__).resolve().parents[1] / ".gitignore"
    if gitignore.exists():
        assert "test-artifacts/" in gitignore.read_text().split()
    assert os.access(path, os.W_OK)
