"""The attachment line above a live answer, in JupyterLab + Chromium: still there when the answer has finished
(a long answer is drawn in several outputs, which the end replaces with one), as in final mode; light and
dark theme screenshots of the finished cell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, LabNotebook, write_notebook

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

# Long enough to be drawn in several outputs (each seals ~1.5 kB of finished HTML), short enough to stream
# in a few seconds.
ANSWER = "".join(f"Paragraph {number}: the values rise by one at each step, from 0 to 9.\n\n"
                 for number in range(80))


def attached_lines(notebook: LabNotebook, cell: int) -> Any:
    return notebook.output(cell).locator(".claude-magic-attached")


@pytest.mark.parametrize("display", ["live", "final"])
def test_the_attachment_line_is_still_there_when_the_answer_has_finished(
        jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any, emulator: Emulator,
        api_env: dict[str, str], artifacts: Path, display: str) -> None:
    emulator.set_script({"turns": [{"match": "Summarize", "content": ANSWER}]})
    emulator.set_pace(tokens_per_second=800)
    lab = jupyterlab_factory(env=api_env)
    write_notebook(lab.root_dir / "attached.ipynb",
                   ["%load_ext claude_magic", "data = list(range(10))",
                    f"%%claude -a data --display {display}\nSummarize the data."])
    nb = LabNotebook(lab_page).open(lab, "attached.ipynb")
    nb.run_cell(0, timeout=45)
    nb.run_cell(1, timeout=45)
    nb.run_cell(2, timeout=60)
    outputs = nb.output(2)
    outputs.filter(has_text="stop_reason").first.wait_for(state="visible", timeout=60_000)
    lab_page.wait_for_timeout(300)  # the final clear-and-redraw has landed

    lines = attached_lines(nb, 2)
    assert lines.count() == 1, "the attachment line must stay above the finished answer"
    assert lines.first.inner_text().strip().endswith(")") and "data (list" in lines.first.inner_text()
    texts = outputs.all_inner_texts()
    assert "Attached:" in texts[0] and "Paragraph 79" in texts[-1] and "stop_reason" in texts[-1]
    assert len(texts) == 2  # the line, then the answer with its footer: what final mode shows

    nb.screenshot(artifacts / f"attachment-line-{display}-light.png")
    lab_page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")
    lab_page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=20_000)
    lab_page.wait_for_timeout(500)
    nb.screenshot(artifacts / f"attachment-line-{display}-dark.png")
    lab_page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")
