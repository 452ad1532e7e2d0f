"""How answers look in JupyterLab + Chromium: the live cursor, code blocks, tables, and the footer of a
saved notebook opened from disk (untrusted: JupyterLab drops <style> elements there).

Everything is read from the page with getBoundingClientRect / getComputedStyle, so these tests see what
a person sees, not the HTML the kernel sent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from harness.kernel import KernelSession
from harness.lab import JupyterLab, LabNotebook, artifacts_dir, write_notebook
from support import FAKE_API_KEY

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

STALL_SECONDS = 5  # each live answer pauses this long with all its text on screen, before it finishes
STREAMING = {  # prompt -> (answer, the element the cursor must be in, the last word)
    "cursor in a list item": ("Intro paragraph.\n\n- first item\n- second item ends with these words", "li", "words"),
    "cursor in a heading": ("Intro paragraph.\n\n## A heading that ends here", "h2", "here"),
    "cursor in a paragraph": ("# Title\n\nA paragraph whose last word is visible", "p", "visible"),
    "cursor in code": ("Some code:\n\n```python\nvalue = compute(1, 2)", "code", "2)"),
}
CODE = 'def area(radius: float) -> float:\n    """Circle area."""\n    return 3.14159 * radius ** 2  # pi r²\n'
CODE_ANSWER = f"Here is the code:\n\n```python\n{CODE}```\n\n| name | value |\n|---|---|\n| pi | 3.14159 |\n\nDone."
CUT_ANSWER = "This answer is long enough to be cut off by a small max_tokens limit, well before its end."
SCRIPT = {
    "turns": [
        *({"match": prompt, "content": answer, "fault": {"kind": "stall", "after_tokens": 10_000,
                                                          "seconds": STALL_SECONDS}}
          for prompt, (answer, _, _) in STREAMING.items()),
        {"match": "code please", "content": CODE_ANSWER},
        {"match": "cut please", "content": CUT_ANSWER},
    ]
}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(script=SCRIPT) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def lab_env(emu: Emulator) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": emu.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY}


@pytest.fixture(scope="module")
def lab(lab_env: dict[str, str]) -> Iterator[JupyterLab]:
    """One JupyterLab for the module, whose kernels reach only the emulator (no inherited settings)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("CLAUDE_MAGIC_", "ANTHROPIC_")):
                patch.delenv(name)
        server = JupyterLab(env=lab_env, log_dir=artifacts_dir("test_rendering_browser__lab")).start()
    yield server
    server.stop()


# Where the cursor is against the last character before it (a Range around that character).
MEASURE_CURSOR_JS = r"""
(root) => {
  const cursor = root.querySelector('.claude-magic-cursor');
  if (!cursor) return null;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let last = null;
  let before = '';
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (cursor.contains(node)) break;
    before += node.textContent;
    if (node.textContent.trim()) last = node;
  }
  const text = last.textContent.replace(/\s+$/, '');
  const range = document.createRange();
  range.setStart(last, text.length - 1);
  range.setEnd(last, text.length);
  const ch = range.getBoundingClientRect();
  const cur = cursor.getBoundingClientRect();
  return {
    text: before.slice(-12), charTop: ch.top, charBottom: ch.bottom, charRight: ch.right,
    curTop: cur.top, curBottom: cur.bottom, curLeft: cur.left, parent: cursor.parentElement.localName,
  };
}
"""


def test_cursor_is_on_the_line_of_the_last_word(lab: JupyterLab, lab_page: Any, artifacts: Path) -> None:
    prompts = list(STREAMING)
    cells = ["%load_ext claude_magic"] + [f"%%claude -c cursor-{i} --display live\n{p}" for i, p in enumerate(prompts)]
    write_notebook(lab.root_dir / "cursor.ipynb", cells)
    nb = LabNotebook(lab_page).open(lab, "cursor.ipynb")
    nb.run_cell(0, timeout=60)
    for index, prompt in enumerate(prompts, start=1):
        _, element, last_word = STREAMING[prompt]
        # One cell at a time: clicking the next cell while an answer above grows could land on a cell
        # that the growing output has just pushed down.
        nb.run_cell(index, wait=False)
        cell = nb.cell(index)
        cell.locator(".jp-OutputArea-output", has_text=last_word).locator(".claude-magic-cursor").wait_for(
            timeout=(STALL_SECONDS + 20) * 1000)
        box = cell.locator(".jp-OutputArea").element_handle()
        found = lab_page.evaluate(MEASURE_CURSOR_JS, box)
        nb.screenshot(artifacts / f"cursor-{index}.png", full_page=False)
        assert found is not None and found["text"].endswith(last_word), (prompt, found)
        assert found["parent"] == element, (prompt, found)
        middle = (found["curTop"] + found["curBottom"]) / 2
        assert found["charTop"] <= middle <= found["charBottom"], f"{prompt}: not on the last word's line {found}"
        assert -1 <= found["curLeft"] - found["charRight"] <= 12, f"{prompt}: cursor not right after the text {found}"
        nb.wait_output_text(index, "stop_reason", timeout=STALL_SECONDS + 20)
    assert not lab_page.locator(".jp-OutputArea-output .claude-magic-cursor").count()  # gone once finished


# Computed styles of an answer: its code block, token colours, table cells, footer and warning.
STYLES_JS = r"""
(root) => {
  const style = (el) => el ? getComputedStyle(el) : null;
  const opaque = (c) => c && c !== 'transparent' && !/^rgba\(.*,\s*0\)$/.test(c);
  const backdrop = (el) => {
    for (let e = el && el.parentElement; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (opaque(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  // the answer's code box, not the thinking fold the default model's answer starts with
  const pre = root.querySelector('pre:not(details pre)');
  const code = pre && pre.querySelector('code');
  const p = root.querySelector('p');
  const td = root.querySelector('td');
  const footer = root.querySelector('.claude-magic-footer');
  const warning = root.querySelector('.claude-magic-warning');
  const spans = code ? Array.from(code.querySelectorAll('span')) : [];
  return {
    preBackground: pre ? style(pre).backgroundColor : null,
    preBackdrop: pre ? backdrop(pre) : null,
    codeBackground: code ? style(code).backgroundColor : null,
    codeText: code ? code.textContent : null,
    tokenColours: Array.from(new Set(spans.map((s) => style(s).color))),
    codeColour: code ? style(code).color : null,
    tdAlign: td ? style(td).textAlign : null,
    bodySize: p ? parseFloat(style(p).fontSize) : null,
    bodyColour: p ? style(p).color : null,
    footerSize: footer ? parseFloat(style(footer).fontSize) : null,
    footerColour: footer ? style(footer).color : null,
    warningColour: warning ? style(warning).color : null,
    warningWeight: warning ? parseInt(style(warning).fontWeight, 10) : null,
    styleElements: root.querySelectorAll('style').length,
  };
}
"""

BLACKISH = re.compile(r"^rgba?\(0, 0, 0(, 0?\.\d+)?\)$")


def assert_code_block_styled(found: dict[str, Any], where: str) -> None:
    assert found["preBackground"] and not found["preBackground"].endswith(", 0)"), (where, found)
    assert found["preBackground"] != found["preBackdrop"], f"{where}: the code box does not stand out {found}"
    assert found["codeBackground"] in ("rgba(0, 0, 0, 0)", found["preBackground"]), (where, found)
    assert len(set(found["tokenColours"]) - {found["codeColour"]}) >= 2, f"{where}: too few token colours {found}"
    assert found["codeText"] == CODE, f"{where}: the code's text is not exactly the code"


def test_code_blocks_are_highlighted_in_cells_and_in_the_panel(lab: JupyterLab, lab_page: Any,
                                                                artifacts: Path) -> None:
    cells = [
        "%load_ext claude_magic\nfrom claude_magic import ChatPanel",
        "%%claude -c code-cell --display live\ncode please",
        "panel = ChatPanel(conversation='code-panel')\npanel",
        "assert panel.send('code please')\nprint(panel.wait(30).status)",
    ]
    write_notebook(lab.root_dir / "code.ipynb", cells)
    nb = LabNotebook(lab_page).open(lab, "code.ipynb")
    nb.run_cell(0, timeout=60)
    nb.run_cell(1, timeout=60)
    nb.wait_output_text(1, "stop_reason", timeout=30)
    nb.run_cell(2, timeout=60)
    nb.output(2).locator(".claude-magic-panel").wait_for(timeout=30_000)
    nb.run_cell(3, timeout=60)
    nb.wait_output_text(3, "complete", timeout=30)
    panel_answer = nb.output(2).locator(".claude-panel-answer", has_text="Done.").last
    panel_answer.locator(".claude-magic-footer").wait_for(timeout=30_000)
    nb.screenshot(artifacts / "code.png")

    in_cell = lab_page.evaluate(STYLES_JS, nb.output(1).first.element_handle())
    assert_code_block_styled(in_cell, "cell")
    assert in_cell["tdAlign"] == "left", in_cell  # JupyterLab right-aligns HTML tables by default
    in_panel = lab_page.evaluate(STYLES_JS, panel_answer.element_handle())
    assert_code_block_styled(in_panel, "panel")
    assert in_panel["tdAlign"] == "left", in_panel


def saved_outputs(kernel: KernelSession, code: str) -> list[Any]:
    """The outputs a notebook saves for `code`, run for real (display updates applied)."""
    outputs = []
    for out in kernel.execute(code, timeout=60).final_outputs():
        kind = out["output_type"]
        if kind == "stream":
            outputs.append(nbformat.v4.new_output(kind, name=out["name"], text=out["text"]))
        elif kind in ("display_data", "execute_result"):
            outputs.append(nbformat.v4.new_output("display_data", data=out["data"], metadata=out["metadata"]))
    return outputs


def test_saved_notebook_opened_from_disk_keeps_its_styles(
    lab: JupyterLab, lab_env: dict[str, str], kernel_factory: Callable[..., KernelSession], lab_page: Any,
    artifacts: Path,
) -> None:
    kernel = kernel_factory(env=lab_env)
    sources = ["%load_ext claude_magic", "%%claude -c saved --display live\ncode please",
               "%%claude -c cut --display live --max-tokens 6\ncut please"]
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for count, source in enumerate(sources, start=1):
        cell = nbformat.v4.new_code_cell(source, execution_count=count)
        cell.outputs = saved_outputs(kernel, source)
        notebook.cells.append(cell)
    assert "<style" not in nbformat.writes(notebook)
    nbformat.write(notebook, str(lab.root_dir / "saved.ipynb"))  # not signed: untrusted when opened

    nb = LabNotebook(lab_page).open(lab, "saved.ipynb")
    nb.output(2).locator(".claude-magic-warning").wait_for(timeout=30_000)
    nb.screenshot(artifacts / "saved.png")
    trusted = nb.eval_app("[0, 1, 2].map((i) => app.shell.currentWidget.content.model.cells.get(i).trusted)")
    assert trusted == [False, False, False], "the notebook must open untrusted for this test to mean anything"

    answer = lab_page.evaluate(STYLES_JS, nb.output(1).first.element_handle())
    assert answer["styleElements"] == 0
    assert answer["footerSize"] < answer["bodySize"], answer
    assert answer["footerColour"] != answer["bodyColour"] and not BLACKISH.match(answer["footerColour"]), answer
    assert_code_block_styled(answer, "saved cell")
    assert answer["tdAlign"] == "left", answer

    cut = lab_page.evaluate(STYLES_JS, nb.output(2).first.element_handle())
    assert "cut off" in nb.output(2).first.inner_text()
    assert not BLACKISH.match(cut["warningColour"]) and cut["warningColour"] != cut["footerColour"], cut
    assert cut["warningWeight"] >= 600, cut
    assert cut["footerSize"] < answer["bodySize"] and not BLACKISH.match(cut["footerColour"]), cut
