"""A user's notebook, end to end: recorded once with `jupyter nbconvert --execute` against a live API (the
emulator plays it), committed with its cassette, then `pytest --nbval` passes with no key, no base URL and
nothing listening."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from support import FAKE_API_KEY

from claude_magic.emulator import Emulator
from claude_magic.nbval import SANITIZE_FILE

pytestmark = pytest.mark.kernel

SCRIPT = {"turns": [
    {"match": "Summarise", "content": "Sales **rose 12%**, led by the north.", "usage": {"input_tokens": 40,
                                                                                         "output_tokens": 11}},
    {"match": "Name a", "generate": {"tokens": 12, "seed": 5}},
]}
CELLS = [
    '%load_ext claude_magic\n%config ClaudeMagic.cassette = "analysis.cassette"',
    "%%claude\nSummarise this quarter's sales in one sentence.",
    "import claude_magic\n\nprint(claude_magic.ask('Name a colour', display='none').text)",
    "replies = claude_magic.map(['Name a fruit', 'Name a tree'], display='none')\n"
    "[reply.text for reply in replies]",
]


def environment(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CLAUDE_MAGIC_", "ANTHROPIC_"))}
    # nbval compares what a cell sends first and ignores display updates: answers are drawn once, finished.
    env.update({"CLAUDE_MAGIC_DISPLAY": "final", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
                **settings})
    return env


def test_a_recorded_notebook_passes_nbval_with_no_key_and_no_network(emulator: Emulator, tmp_path: Path) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=300, chunk_tokens=1)  # timings in the footers, as a live run has
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "analysis.ipynb")

    recorded = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace", "analysis.ipynb"],
        env=environment(ANTHROPIC_BASE_URL=emulator.base_url, ANTHROPIC_API_KEY=FAKE_API_KEY), cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    cassette = (tmp_path / "analysis.cassette").read_text()
    assert len(cassette.splitlines()) == 4 == len(emulator.requests)
    assert FAKE_API_KEY not in cassette
    saved = nbformat.read(tmp_path / "analysis.ipynb", as_version=4)
    assert "rose 12%" in str(saved.cells[1].outputs) and "first token" in str(saved.cells[1].outputs)
    emulator.stop()

    replayed = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "analysis.ipynb", "--nbval-sanitize-with", str(SANITIZE_FILE),
         "-p", "no:cacheprovider", "-q"],
        env=environment(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 0, replayed.stdout[-4000:]
    assert "4 passed" in replayed.stdout
    assert (tmp_path / "analysis.cassette").read_text() == cassette  # replayed: nothing sent, nothing added
