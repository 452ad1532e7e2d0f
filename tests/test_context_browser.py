"""`%%claude -a fig` in JupyterLab + Chromium: the attachment line above the answer, the rendered answer, the
escaping of that line (names and kinds come from the notebook), and the image block the emulator received."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, LabNotebook, write_notebook

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

PAYLOAD = "<img src=x onerror=window.__pwned=1>"
ANSWER = (
    "## The figure\n\n"
    "- a single line plot\n"
    "- three points, rising then falling\n\n"
    "```python\n"
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 3, 2])  # the same line\n"
    "```\n"
)
SETUP = f"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
ax.plot([1, 3, 2])
payload = {PAYLOAD!r}
evil = type(payload, (), {{}})()  # a class named by the payload: it shows up as the attachment's kind
plt.close(fig)
"""
QUESTION = "What does this figure show?"

# The code block's look, read from the page (as tests/test_rendering_browser.py does).
CODE_STYLE_JS = r"""
(root) => {
  const opaque = (c) => c && c !== 'transparent' && !/^rgba\(.*,\s*0\)$/.test(c);
  // the answer's code box, not the thinking fold the default model's answer starts with
  const pre = root.querySelector('pre:not(details pre)');
  if (!pre) return null;
  let backdrop = 'rgb(255, 255, 255)';
  for (let e = pre.parentElement; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    if (opaque(c)) { backdrop = c; break; }
  }
  const code = pre.querySelector('code') || pre;
  const colours = new Set(Array.from(code.querySelectorAll('span')).map((s) => getComputedStyle(s).color));
  colours.delete(getComputedStyle(code).color);
  const background = getComputedStyle(pre).backgroundColor;
  return {background, backdrop, opaque: opaque(background), tokenColours: colours.size, text: code.textContent};
}
"""


def test_attached_figure_line_answer_and_image_block(
    jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any, emulator: Emulator,
    api_env: dict[str, str], artifacts: Path,
) -> None:
    emulator.set_script({"turns": [{"match": "figure", "content": ANSWER}]})
    lab = jupyterlab_factory(env=api_env)
    write_notebook(lab.root_dir / "attach.ipynb",
                   ["%load_ext claude_magic", SETUP, f"%%claude -a fig -a payload,evil\n{QUESTION}"])
    nb = LabNotebook(lab_page).open(lab, "attach.ipynb")
    nb.run_cell(0, timeout=45)
    nb.run_cell(1, timeout=45)
    nb.run_cell(2, timeout=45)
    outputs = nb.output(2)
    answer = outputs.filter(has_text="stop_reason").first
    answer.wait_for(state="visible", timeout=30_000)
    nb.screenshot(artifacts / "attach.png")

    # The one-line summary comes first, then the answer.
    summary = outputs.first.locator(".claude-magic-attached")
    summary.wait_for(timeout=10_000)
    line = summary.inner_text().strip()
    assert "\n" not in line, line
    assert line.startswith("Attached: fig (matplotlib Figure, PNG 400×300 px, "), line
    fig_part = line.split(" · ")[0]
    assert re.search(r"PNG 400×300 px, [\d.]+ (kB|B), ~[\d,]+ tokens\)$", fig_part), fig_part
    assert f"payload (str, 1 line, {len(PAYLOAD)} chars, ~" in line, line
    assert f"evil ({PAYLOAD} (repr), " in line, line  # the payload is shown as text
    texts = outputs.all_inner_texts()
    assert texts[0].strip() == line and "stop_reason" not in texts[0]
    assert "The figure" in texts[-1] and "Attached:" not in texts[-1]

    # The answer is rendered Markdown: a heading, list items, a highlighted code block.
    assert answer.locator("h2", has_text="The figure").count() == 1
    assert answer.locator("li").all_inner_texts() == ["a single line plot", "three points, rising then falling"]
    style = lab_page.evaluate(CODE_STYLE_JS, answer.element_handle())
    assert style is not None, "no code block in the answer"
    assert style["opaque"] and style["background"] != style["backdrop"], style
    assert style["tokenColours"] >= 2, style
    assert "plt.plot([1, 3, 2])" in style["text"]
    assert "```" not in texts[-1] and "## " not in texts[-1]

    # Escaped: nothing in the output became an element, no handler ran.
    assert nb.cell(2).locator(".jp-OutputArea-output img").count() == 0
    assert summary.locator("*").count() == 0
    assert lab_page.evaluate("() => typeof window.__pwned") == "undefined"

    # The request carried the figure as a PNG image block, after its label, before the question.
    posts = [r for r in emulator.requests if r.path == "/v1/messages"]
    assert len(posts) == 1 and posts[0].status == 200
    content = posts[0].messages[-1]["content"]
    assert [b["type"] for b in content] == ["text", "image", "text", "text", "text"]
    assert content[0]["text"].startswith('<attachment name="fig" kind="matplotlib Figure">')
    image = content[1]["source"]
    assert image["type"] == "base64" and image["media_type"] == "image/png"
    assert base64.b64decode(image["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert content[-1] == {"type": "text", "text": QUESTION}
