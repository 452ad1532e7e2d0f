"""Other frontends in headless Chromium: Jupyter Notebook 7 (the magic, the raw view and the panel stream
live; Stop stops), and JupyterLab with comm subshells turned off (the panel's widget messages then go
through the main shell; it still streams and stops).

The comm subshell setting is JupyterLab's user setting `@jupyterlab/apputils-extension:kernels-settings`
-> `commsOverSubshells` ("perCommTarget", the default since 4.4, "perComm" or "disabled"; schema in
jupyterlab/schemas/@jupyterlab/apputils-extension/kernels-settings.json). ipykernel's `%subshell` magic
lists the subshells the kernel has, which tells whether the panel's messages created one.

Everything waits on the page (selectors, `wait_for_function`, a MutationObserver): no sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, LabNotebook, Notebook7, artifacts_dir, write_notebook
from playwright.sync_api import expect
from test_panel_browser import FAKE_API_KEY, answer, answer_text, ask

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

ANSWER = "".join(f"Paragraph {i}: caches keep **copies** of responses near the client.\n\n" for i in range(12))
SCRIPT = {
    "turns": [
        {"match": "Explain caching", "content": ANSWER},
        {"match": "protocol", "generate": {"tokens": 160, "seed": 2}},
        {"match": "long answer", "generate": {"tokens": 6000, "seed": 5}},  # ~100 s: Stop ends it
    ]
}
TOKENS_PER_SECOND = 60
PANEL_CELLS = ["from claude_magic import ChatPanel\np = ChatPanel()\np", "%subshell",
               "print('turn', p.wait(60).status)"]
TIMEOUT = 120  # seconds: generous, for a loaded two-core machine


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(script=SCRIPT, tokens_per_second=TOKENS_PER_SECOND, chunk_tokens=1) as emulator:
        yield emulator


def server_env(emu: Emulator) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": emu.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY}


@pytest.fixture(scope="module")
def notebook7(emu: Emulator) -> Iterator[JupyterLab]:
    """One Notebook 7 server for the module, whose kernels reach only the emulator."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("CLAUDE_MAGIC_", "ANTHROPIC_")):
                patch.delenv(name)
        server = Notebook7(env=server_env(emu), log_dir=artifacts_dir("test_frontends_browser__notebook7"),
                           startup_timeout=TIMEOUT).start()
    yield server
    server.stop()


def growing(states: list[str], marker: str, done: str) -> list[str]:
    """The states that show `marker` but not yet `done`, each longer than every one before it."""
    streaming = [s for s in states if marker in s and done not in s]
    return [s for i, s in enumerate(streaming) if all(len(s) > len(t) for t in streaming[:i])]


def wait_answer_longer(nb: LabNotebook, chars: int) -> None:
    """Wait, in the page, until the panel's last answer shows more than `chars` characters."""
    nb.page.wait_for_function(
        """([area, chars]) => { const a = area.querySelectorAll('.claude-panel-answer');
                                return a.length > 0 && a[a.length - 1].innerText.length > chars; }""",
        arg=[nb.output(0).first.element_handle(), chars], timeout=TIMEOUT * 1000)


def open_panel(lab: JupyterLab, page: Any, name: str) -> LabNotebook:
    write_notebook(lab.root_dir / name, PANEL_CELLS)
    nb = LabNotebook(page).open(lab, name, timeout=TIMEOUT)
    nb.run_cell(0, timeout=TIMEOUT)
    nb.output(0).locator(".claude-magic-input textarea").wait_for(timeout=TIMEOUT * 1000)
    return nb


def stop_and_check(nb: LabNotebook, artifacts: Path) -> None:
    """Click Stop: the panel marks the answer stopped, and the kernel's turn ended as "stopped" (not
    "complete": the stream did not run on behind the mark)."""
    nb.output(0).locator("button.claude-magic-stop").click()
    nb.output(0).locator(".claude-panel-stopped").wait_for(timeout=TIMEOUT * 1000)
    nb.screenshot(artifacts / "stopped.png")
    assert "Stopped after" in answer_text(nb) and "partial answer kept" in answer_text(nb)
    nb.run_cell(2, timeout=TIMEOUT)
    assert nb.wait_output_text(2, "turn ", timeout=TIMEOUT).inner_text().strip() == "turn stopped"


# -- Notebook 7 ----------------------------------------------------------------------------------------


def run_watching(nb: LabNotebook, index: int, screenshot: Path) -> list[str]:
    """Run cell `index` and return every text its output showed until the footer; then a screenshot."""
    watch = nb.watch_output(index, "stop_reason: end_turn")
    nb.run_cell(index, wait=False)
    states = nb.watched_states(watch, timeout=TIMEOUT)
    nb.screenshot(screenshot)
    return states


def test_notebook7_magic_and_raw_view_stream_live(notebook7: JupyterLab, lab_page: Any, artifacts: Path) -> None:
    write_notebook(notebook7.root_dir / "magic.ipynb",
                   ["%load_ext claude_magic", "%%claude\nExplain caching.", "%%claude --raw\nShow the protocol."])
    nb = LabNotebook(lab_page).open(notebook7, "magic.ipynb", timeout=TIMEOUT)
    assert "/notebooks/magic.ipynb" in lab_page.url
    nb.run_cell(0, timeout=TIMEOUT)

    states = run_watching(nb, 1, artifacts / "magic-final.png")
    live = growing(states, "Paragraph", "stop_reason")
    assert len(live) >= 3, f"the answer must grow on screen before it finishes; saw {len(live)} growing states"
    assert "offline emulator, not Claude" in states[-1]
    expect(nb.output(1)).to_have_count(1)  # one clean output at the end
    assert nb.output(1).locator("strong", has_text="copies").count() == 12  # rendered Markdown

    states = run_watching(nb, 2, artifacts / "raw-final.png")
    live = growing(states, "content_block_delta", "stop_reason:")
    assert len(live) >= 3, f"the event lines must grow on screen; saw {len(live)} growing states"
    final = states[-1]
    assert "ping" in final and "message_stop" in final and "HTTP 200" in final
    assert final.index("message_start") < final.index("content_block_start") < final.index("message_stop")


def test_notebook7_panel_streams_and_stops(notebook7: JupyterLab, lab_page: Any, artifacts: Path) -> None:
    nb = open_panel(notebook7, lab_page, "panel.ipynb")
    ask(nb, "A long answer please")
    wait_answer_longer(nb, 50)
    first = len(answer_text(nb))
    wait_answer_longer(nb, first + 50)  # still growing: it streams
    assert not answer(nb).locator(".claude-magic-footer").count()
    nb.screenshot(artifacts / "streaming.png")
    stop_and_check(nb, artifacts)
    # The keyboard shortcut is application/javascript output: Notebook 7 runs it as JupyterLab does.
    ask(nb, "Explain caching.", keyboard=True)
    answer(nb).locator(".claude-magic-footer").wait_for(timeout=TIMEOUT * 1000)
    assert nb.cells().count() == len(PANEL_CELLS)  # Shift+Enter sent; it neither ran nor added a cell


# -- JupyterLab without comm subshells ---------------------------------------------------------------------


@pytest.mark.parametrize("comm_subshells", [False, None], ids=["subshells-off", "subshells-default"])
def test_lab_panel_with_and_without_comm_subshells(
    comm_subshells: bool | None, emu: Emulator, jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any,
    artifacts: Path,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("CLAUDE_MAGIC_", "ANTHROPIC_")):
                patch.delenv(name)
        lab = jupyterlab_factory(env=server_env(emu), comm_subshells=comm_subshells, startup_timeout=TIMEOUT)
    nb = open_panel(lab, lab_page, "subshells.ipynb")
    assert nb.comms_over_subshells() == ("disabled" if comm_subshells is False else "perCommTarget")
    ask(nb, "A long answer please")
    wait_answer_longer(nb, 50)
    # The turn streams in a thread of its own, so the main shell is free for another cell meanwhile.
    nb.run_cell(1, timeout=TIMEOUT)
    listing = nb.wait_output_text(1, "subshell list:", timeout=TIMEOUT).inner_text()
    subshells = listing.split("subshell list:", 1)[1].strip().splitlines()[0]
    if comm_subshells is False:
        assert subshells == "[]", "with subshells off, the panel's widget messages must use the main shell"
    else:
        assert subshells != "[]", "JupyterLab's default gives the widget comms a subshell"
    first = len(answer_text(nb))
    wait_answer_longer(nb, first + 50)  # still streaming after the other cell ran
    assert not answer(nb).locator(".claude-magic-footer").count()
    stop_and_check(nb, artifacts)
