"""A cassette in a real kernel: cells record against the emulator, a fresh kernel with no key and the emulator
stopped replays them, and a changed prompt stops its cell with one line."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.kernel import KernelSession
from support import FAKE_API_KEY

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel

SCRIPT = {"turns": [
    {"match": "Name a colour", "content": "**Teal**, a blue-green."},
    {"match": "fruit", "content": "A fig."},
    {"match": "tree", "content": "An oak."},
]}
CELLS = [
    "%%claude\nName a colour in two words.",
    "import claude_magic\nreplies = claude_magic.map(['Name a fruit', 'Name a tree'], display='none')\n"
    "print([reply.text for reply in replies])",
]
TIMINGS = re.compile(r"first token [\d.]+ s|[\d,.]+ tokens/s")


def run_cells(kernel: KernelSession) -> list[str]:
    kernel.execute("%load_ext claude_magic")
    # JupyterLab sends each cell's id: re-running an edited cell replaces that cell's turn.
    return [TIMINGS.sub("T", kernel.execute(cell, metadata={"cellId": f"cell-{n}"}).final_text())
            for n, cell in enumerate(CELLS)]


def test_a_notebook_replays_without_key_or_emulator_and_a_changed_prompt_stops_in_one_line(
        kernel_factory: Callable[..., KernelSession], emulator: Emulator, api_env: dict[str, str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.set_script(SCRIPT)
    settings = {"CLAUDE_MAGIC_CASSETTE": "notebook.cassette", "CLAUDE_MAGIC_DISPLAY": "final"}
    recording = kernel_factory(env={**api_env, **settings, "CLAUDE_MAGIC_CASSETTE_MODE": "record"}, cwd=tmp_path)
    recorded = run_cells(recording)
    assert "Teal" in recorded[0] and "A fig." in recorded[1] and "An oak." in recorded[1]
    recording.shutdown()
    cassette = tmp_path / "notebook.cassette"  # relative to the kernel's (the notebook's) folder
    assert len(cassette.read_text().splitlines()) == 3
    assert FAKE_API_KEY not in cassette.read_text()

    emulator.stop()
    for name in api_env:
        monkeypatch.delenv(name)
    replaying = kernel_factory(env={**settings, "CLAUDE_MAGIC_CASSETTE_MODE": "replay",
                                    "CLAUDE_MAGIC_CASSETTE_SPEED": "0"}, cwd=tmp_path)
    assert run_cells(replaying) == recorded

    missed = replaying.execute("%%claude\nName a colour in three words.", allow_error=True,
                               metadata={"cellId": "cell-0"})  # the first cell, edited
    error = missed.error()
    assert error is not None and error["ename"] == "ClaudeError"
    line = missed.traceback_text()
    assert "\n" not in line.strip(), line
    assert line.startswith("ClaudeError: Not in cassette notebook.cassette (cell In[4], ")  # the 4th cell run
    assert "%claude 'Name a colour in three words.'" in line
    assert re.search(r"differs at messages\[0\]\.content: …'\w* in two words\.' ≠ …'\w* in three words\.'", line)
    assert "nothing was sent" in line
