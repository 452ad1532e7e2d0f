"""`jupyter nbconvert --execute` of a tutorial, offline: the saved notebook keeps the final answers.

nbconvert (nbclient) applies display updates and `clear_output` to the outputs it saves, unlike nbval,
so a live run (the default display) must leave each answer exactly as the final-only mode sends it:
one output with the whole answer and its footer, no live slots, no "Waiting for Claude".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from harness.lab import repo_root

pytestmark = pytest.mark.kernel

TUTORIAL = "01_quickstart.ipynb"
# Timings and ids differ between runs (the tutorials' nbval run masks them the same way).
VOLATILE = [(re.compile(r"first token \d+(\.\d+)? s"), "first token T s"),
            (re.compile(r"[\d,]+(\.\d+)? tokens/s"), "R tokens/s"),
            (re.compile(r"(msg|req)_[A-Za-z0-9_]+"), r"\1_ID")]


def execute(source: Path, out_dir: Path, name: str, display: str | None) -> Any:
    """Run `jupyter nbconvert --execute --to notebook` on `source` offline; the saved notebook, read back."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CLAUDE_MAGIC_", "ANTHROPIC_"))}
    env.update({"CLAUDE_MAGIC_OFFLINE": "1", "CLAUDE_MAGIC_EMULATOR_TPS": "400",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})
    if display is not None:
        env["CLAUDE_MAGIC_DISPLAY"] = display
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "notebook",
               "--ExecutePreprocessor.timeout=300", "--output-dir", str(out_dir), "--output", name, str(source)]
    done = subprocess.run(command, env=env, cwd=out_dir, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return nbformat.read(out_dir / name, as_version=4)


def claude_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.startswith("%%claude")]


def masked(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def test_nbconvert_execute_keeps_the_final_answers(tmp_path: Path) -> None:
    source = nbformat.read(repo_root() / "notebooks" / TUTORIAL, as_version=4)
    for cell in source.cells:  # what the saved notebook holds must come from this run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(source, tmp_path / TUTORIAL)

    live = execute(tmp_path / TUTORIAL, tmp_path, "live.ipynb", display=None)
    final = execute(tmp_path / TUTORIAL, tmp_path, "final.ipynb", display="final")

    cells = claude_cells(live)
    assert len(cells) >= 3
    for cell, reference in zip(cells, claude_cells(final), strict=True):
        displays = [out for out in cell.outputs if out.output_type == "display_data"]
        assert len(displays) == 1, f"one clean output per answer, got {len(displays)} in {cell.source!r}"
        text = displays[0].data["text/plain"]
        assert "stop_reason:" in text and "offline emulator, not Claude" in text
        assert "Waiting for Claude" not in displays[0].data["text/html"]
        assert "claude-magic-cursor" not in displays[0].data["text/html"]
        # The live run saved exactly what the final-only mode sends once.
        expected = [out for out in reference.outputs if out.output_type == "display_data"][0].data["text/plain"]
        assert masked(text) == masked(expected)
