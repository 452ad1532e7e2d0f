"""Conversations in JupyterLab + Chromium: editing and re-running a cell replaces its turn (JupyterLab sends
the cell's id), deleting a cell drops its turn, and a thinking block is open while it streams and folded
once the answer starts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, LabNotebook, write_notebook

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

THOUGHT = "Weighing the options one by one before answering. " * 12
SCRIPT = {"turns": [
    {"match": "ponder", "content": [{"type": "thinking", "thinking": THOUGHT},
                                    {"type": "text", "text": "Tea, on balance. " * 30}]},
]}
HISTORY = ("from claude_magic.core.history import STORE\n"
           "import json; print(json.dumps([t.prompt_text for t in STORE.get().turns]))")


def printed_history(nb: LabNotebook, index: int) -> list[str]:
    text = "\n".join(nb.output_texts(index))
    return json.loads(text.strip().splitlines()[-1])


def test_rerunning_an_edited_cell_replaces_its_turn(
    jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any, emulator: Emulator,
    api_env: dict[str, str], artifacts: Path,
) -> None:
    lab = jupyterlab_factory(env=api_env)
    write_notebook(lab.root_dir / "rerun.ipynb", [
        "%load_ext claude_magic", "%%claude\nWhat is a cache?", "%%claude\nWhat is a CDN?", HISTORY])
    nb = LabNotebook(lab_page).open(lab, "rerun.ipynb")
    for index in range(4):
        nb.run_cell(index, timeout=60)
    assert printed_history(nb, 3) == ["What is a cache?", "What is a CDN?"]

    nb.set_cell_source(1, "%%claude\nWhat is a browser cache?")
    nb.run_cell(1, timeout=60)
    nb.wait_output_text(1, "replaced turn 1 of 2", timeout=30)
    # The re-run asked with only the turns before its own.
    assert [m["content"] for m in emulator.requests[-1].messages] == ["What is a browser cache?"]
    nb.run_cell(3, timeout=60)
    assert printed_history(nb, 3) == ["What is a browser cache?", "What is a CDN?"]
    nb.screenshot(artifacts / "replaced.png")

    # Delete the CDN cell (D, D in command mode): JupyterLab names it in the next execute request.
    nb.select_cell(2)
    nb.page.keyboard.press("d")
    nb.page.keyboard.press("d")
    deadline = time.monotonic() + 10
    while nb.cells().count() != 3:
        assert time.monotonic() < deadline, "the cell was not deleted"
        time.sleep(0.05)
    nb.run_cell(2, timeout=60)
    assert printed_history(nb, 2) == ["What is a browser cache?"]


def test_thinking_is_open_while_it_streams_then_folds(
    jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any, emulator: Emulator,
    api_env: dict[str, str], artifacts: Path,
) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=60)
    lab = jupyterlab_factory(env=api_env)
    write_notebook(lab.root_dir / "think.ipynb", ["%load_ext claude_magic",
                                                   "%%claude --thinking adaptive\nponder tea or coffee"])
    nb = LabNotebook(lab_page).open(lab, "think.ipynb")
    nb.run_cell(0, timeout=60)
    nb.run_cell(1, wait=False)
    details = nb.output(1).locator("details")
    details.first.wait_for(timeout=30_000)
    deadline = time.monotonic() + 30
    while not details.first.evaluate("d => d.open && d.innerText.includes('Weighing')"):
        assert time.monotonic() < deadline, "the thinking block never showed open with its text"
        time.sleep(0.05)
    nb.screenshot(artifacts / "thinking-open.png")
    nb.wait_output_text(1, "stop_reason: end_turn", timeout=60)
    nb.screenshot(artifacts / "thinking-folded.png")
    final = nb.output(1).locator("details")
    assert final.count() == 1
    assert final.first.evaluate("d => d.open") is False
    summary = final.first.locator("summary").inner_text()
    assert summary.startswith("Thinking (") and "characters" in summary
    # Folded, the thought takes one line: the answer below it is what the reader sees.
    box = final.first.bounding_box()
    assert box is not None and box["height"] < 40
