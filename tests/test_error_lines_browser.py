"""What a failed turn and a mistyped line look like in JupyterLab + Chromium: a failed turn is an error output
of one line (ClaudeError, no traceback) under the partial answer and its footer; a subcommand typo and an empty
%%claude cell are one line each. Light and dark theme screenshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, LabNotebook, write_notebook

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

CELLS = [
    "%load_ext claude_magic\n%config ClaudeMagic.max_retries = 0",
    "%%claude -m claude-haiku-4-5\nTell me about caching, then fail.",  # answers without thinking first
    "%claude histroy",
    "%%claude",
    "%claude -- history of HTTP caching in one line",
]


def test_a_failed_turn_and_mistyped_lines_are_one_line_each(
        jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any, emulator: Emulator,
        api_env: dict[str, str], artifacts: Path) -> None:
    emulator.set_script({"turns": [
        {"match": "then fail", "content": "Caching keeps copies " * 20,
         "fault": {"kind": "disconnect", "after_tokens": 8}},
        {"match": "history of HTTP caching", "content": "It began with Expires in HTTP/1.0."},
    ]})
    lab = jupyterlab_factory(env=api_env)
    write_notebook(lab.root_dir / "errors.ipynb", CELLS)
    nb = LabNotebook(lab_page).open(lab, "errors.ipynb")
    for index in range(len(CELLS)):
        nb.run_cell(index, timeout=60)

    # The failed turn: partial answer and footer, then the error output, one line, no traceback.
    error = nb.wait_output_text(1, "ClaudeError:")
    line = error.inner_text().strip()
    assert line.startswith("ClaudeError: Connection to the API lost after") and "\n" not in line, line
    assert "Traceback" not in nb.cell(1).inner_text()
    texts = nb.output_texts(1)
    assert "Caching keeps copies" in texts[0] and "stop_reason" in texts[0]

    typo = nb.wait_output_text(2, "did you mean history?").inner_text().strip()
    assert typo.startswith("UsageError: Unknown subcommand 'histroy'") and "\n" not in typo
    empty = nb.wait_output_text(3, "Empty prompt").inner_text().strip()
    assert empty == "UsageError: Empty prompt: write the question in the cell body below %%claude."
    nb.wait_output_text(4, "It began with Expires")
    assert [r.messages[-1]["content"] for r in emulator.requests if r.path == "/v1/messages"] == [
        "Tell me about caching, then fail.", "history of HTTP caching in one line"]

    nb.screenshot(artifacts / "error-lines-light.png")
    lab_page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")
    lab_page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=20_000)
    lab_page.wait_for_timeout(500)
    nb.screenshot(artifacts / "error-lines-dark.png")
    lab_page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")
