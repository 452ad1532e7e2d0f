"""What a person sees in JupyterLab, light and dark theme, cell and chat panel: code blocks follow the
theme, thinking reads as prose, no status icon needs an emoji font, the panel has no horizontal
scrollbars, `%claude history` stays a readable size, and a saved notebook opened from disk (untrusted)
stays readable in the dark theme too.

Everything is measured on the page (getComputedStyle, Range rectangles, pixels drawn on a canvas);
screenshots of each theme go to the test's artifacts directory.
"""

from __future__ import annotations

import json
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
from test_rendering_browser import saved_outputs

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

CODE = 'def area(radius: float) -> float:\n    """Circle area."""\n    return 3.14159 * radius ** 2  # pi r²\n'
THINKING = (
    "The user wants the area of a circle, nothing else. Something to consider: the signature should take a "
    "radius, not a diameter, and a docstring that says so. Nevertheless, notwithstanding the "
    "straightforwardness, double-check the exponentiation operator before answering.\n\n"
    "Second paragraph: internationalization, counterintuitively, is irrelevant here. " * 3
)
SCRIPT = {
    "turns": [
        {"match": "code please", "content": [
            {"type": "thinking", "thinking": THINKING},
            {"type": "text", "text": f"Here is the code:\n\n```python\n{CODE}```\n\nDone."}]},
        {"match": "headings please", "content": "# A big title\n\nSome text.\n\n## A section\n\nMore text."},
    ]
}
# A model whose thinking is shown as written (budgets and summarized display before 4.7).
THINKING_FLAGS = "-m claude-opus-4-5 --thinking 1024 --max-tokens 4000"
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


@pytest.fixture(scope="module")
def lab_env() -> Iterator[dict[str, str]]:
    with Emulator(script=SCRIPT) as emulator:
        yield {"ANTHROPIC_BASE_URL": emulator.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY,
               "CLAUDE_MAGIC_HISTORY_DIR": ""}


@pytest.fixture(scope="module")
def lab(lab_env: dict[str, str]) -> Iterator[JupyterLab]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("CLAUDE_MAGIC_", "ANTHROPIC_")):
                patch.delenv(name)
        # windowingMode none: every cell stays in the page. With JupyterLab 4.4's windowing a cell far below
        # the panel's tall output may not be drawn yet when the test reaches for its prompt.
        server = JupyterLab(env=lab_env, log_dir=artifacts_dir("test_looks_browser__lab"), user_settings={
            "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}).start()
    yield server
    server.stop()


# Colours as the page computes them, contrast ratios (WCAG), and what would scroll sideways.
MEASURE_JS = r"""
([root, selector]) => {
  const rgb = (c) => (c.match(/[\d.]+/g) || []).slice(0, 4).map(Number);
  const opaque = (c) => { const v = rgb(c); return v.length && (v.length < 4 || v[3] > 0); };
  const lum = (c) => {
    const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  // A translucent colour (JupyterLab's greys are black or white at some alpha) is seen over its background.
  const over = (fg, bg) => {
    const [r, g, b, a = 1] = rgb(fg);
    const base = rgb(bg);
    return `rgb(${[r, g, b].map((v, i) => a * v + (1 - a) * base[i]).join(', ')})`;
  };
  const contrast = (fg, bg) => {
    const [x, y] = [lum(over(fg, bg)), lum(bg)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const backdrop = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (opaque(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const scope = root.querySelector(selector) || root;
  const pre = Array.from(scope.querySelectorAll('pre')).find((p) => p.textContent.includes('def area'));
  const code = pre && pre.querySelector('code');
  const preBg = pre ? backdrop(pre) : null;
  const around = pre ? backdrop(pre.parentElement) : null;
  const tokens = code ? Array.from(code.querySelectorAll('span')).filter((s) => s.textContent.trim()) : [];
  const footer = scope.querySelector('.claude-magic-footer');
  return {
    preBackground: preBg, around,
    preLuminance: preBg ? lum(preBg) : null, aroundLuminance: around ? lum(around) : null,
    codeContrast: code ? contrast(getComputedStyle(code).color, preBg) : null,
    worstToken: tokens.length ? Math.min(...tokens.map((s) => contrast(getComputedStyle(s).color, preBg))) : null,
    tokenColours: new Set(tokens.map((s) => getComputedStyle(s).color)).size,
    footerContrast: footer ? contrast(getComputedStyle(footer).color, backdrop(footer)) : null,
  };
}
"""

# Words of the thinking text that a line break cuts in two (a word laid out on two lines has two rects).
THINKING_JS = r"""
(root) => {
  const box = root.querySelector('.claude-magic-thinking') || root.querySelector('details pre');
  if (!box) return null;
  box.closest('details').open = true;  // unfolded, as a reader would
  const style = getComputedStyle(box);
  const node = box.firstChild;
  const text = node.textContent;
  const broken = [];
  const re = /\S+/g;
  let m;
  while ((m = re.exec(text))) {
    const range = document.createRange();
    range.setStart(node, m.index);
    range.setEnd(node, m.index + m[0].length);
    const lines = new Set(Array.from(range.getClientRects()).filter((r) => r.width > 0).map((r) => Math.round(r.top)));
    if (lines.size > 1) broken.push(m[0]);
  }
  const lineCount = Math.round(box.getBoundingClientRect().height / parseFloat(style.lineHeight || 16));
  return {broken, font: style.fontFamily, lines: lineCount, width: box.getBoundingClientRect().width};
}
"""

# Characters drawn as the font's "missing glyph" box: each non-ASCII character of the outputs is drawn
# on a canvas in the element's own font and compared with a private-use character no font has.
TOFU_JS = r"""
(root) => {
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (ch, font) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font; ctx.fillStyle = '#000'; ctx.textBaseline = 'top';
    ctx.fillText(ch, 4, 4);
    return Array.from(ctx.getImageData(0, 0, 64, 64).data).join(',');
  };
  const seen = new Map();
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const style = getComputedStyle(n.parentElement);
    const font = `${style.fontStyle} ${style.fontWeight} 32px ${style.fontFamily}`;
    for (const ch of n.textContent) {
      if (ch.codePointAt(0) > 127 && !/\s/.test(ch) && !seen.has(ch + font)) seen.set(ch + font, [ch, font]);
    }
  }
  const missing = [];
  for (const [ch, font] of seen.values()) {
    if (draw(ch, font) === draw('\uE000', font) || draw(ch, font) === draw('\u{10FFFD}', font)) missing.push(ch);
  }
  return {checked: Array.from(new Set(Array.from(seen.values()).map(([c]) => c))).join(''), missing};
}
"""

# Elements inside the panel that scroll sideways (a horizontal scrollbar on screen).
SIDEWAYS_JS = r"""
(root) => Array.from(root.querySelectorAll('*')).filter((el) => {
  const s = getComputedStyle(el);
  return ['auto', 'scroll'].includes(s.overflowX) && el.scrollWidth > el.clientWidth + 1;
}).map((el) => `${el.className} (${el.scrollWidth} > ${el.clientWidth})`)
"""

# %claude history: its height, and the turn label's size against the biggest heading inside a turn.
HISTORY_JS = r"""
(root) => {
  const labels = Array.from(root.querySelectorAll('details > summary span:first-child'));
  const headings = Array.from(root.querySelectorAll('details :is(h1, h2, h3, h4, h5, h6)'));
  const size = (el) => parseFloat(getComputedStyle(el).fontSize);
  const folded = {height: root.getBoundingClientRect().height, chars: root.innerText.length};
  const shut = Array.from(root.querySelectorAll('details:not([open])'));
  shut.forEach((d) => { d.open = true; });
  const unfolded = {height: root.getBoundingClientRect().height, chars: root.innerText.length};
  shut.forEach((d) => { d.open = false; });
  return {
    height: folded.height, chars: folded.chars, openHeight: unfolded.height, openChars: unfolded.chars,
    turns: labels.length,
    label: labels.length ? Math.min(...labels.map(size)) : null,
    heading: headings.length ? Math.max(...headings.map(size)) : 0,
    open: root.querySelectorAll('details[open]').length,
  };
}
"""


def set_theme(page: Any, theme: str) -> None:
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", THEMES[theme])
    light = "true" if theme == "light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(500)  # the theme's stylesheet applies after the attribute


def test_answers_panel_and_history_read_well_in_light_and_dark_themes(lab: JupyterLab, lab_page: Any,
                                                                       artifacts: Path) -> None:
    cells = [
        "%load_ext claude_magic\nimport claude_magic\nfrom claude_magic import ChatPanel\n"
        "def get_weather(city: str) -> str:\n    'The weather in a city.'\n    return f'Sunny in {city}'",
        f"%%claude -c look --display live {THINKING_FLAGS}\ncode please",
        "%%claude -c tools --display live --tools get_weather\nWhat is the weather in Paris?",
        "panel = ChatPanel(conversation='look-panel')\npanel",
        "panel.model_picker.value = 'claude-opus-4-5'\n%config ClaudeMagic.thinking = '1024'\n"
        "%config ClaudeMagic.max_tokens = 4000\nassert panel.send('code please')\nprint(panel.wait(30).status)\n"
        "assert panel.send('What is the weather?')\nprint(panel.wait(30).status)",
        "%config ClaudeMagic.thinking = ''\n"
        "claude_magic.ask('word ' * 40_000, conversation='big', display='none')\n"
        "claude_magic.ask('headings please', conversation='big', display='none')\n"
        "claude_magic.ask('headings please', conversation='big', display='none').ok",
        "%claude -c big history",
    ]
    write_notebook(lab.root_dir / "looks.ipynb", cells)
    nb = LabNotebook(lab_page).open(lab, "looks.ipynb")
    for index in (0, 1, 2, 3):
        nb.run_cell(index, timeout=90)
    nb.wait_output_text(1, "stop_reason", timeout=60)
    nb.wait_output_text(2, "stop_reason", timeout=60)
    nb.output(3).locator(".claude-magic-panel").wait_for(timeout=30_000)
    nb.run_cell(4, timeout=90)
    nb.wait_output_text(4, re.compile(r"complete\s+complete"), timeout=60)
    nb.run_cell(5, timeout=120)
    nb.wait_output_text(5, "True", timeout=60)
    nb.run_cell(6, timeout=60)
    nb.output(6).locator("details").first.wait_for(timeout=30_000)
    panel = nb.output(3).locator(".claude-magic-panel").first
    panel.locator(".claude-magic-footer").nth(1).wait_for(timeout=30_000)

    found: dict[str, Any] = {}
    for theme in THEMES:
        set_theme(lab_page, theme)
        nb.screenshot(artifacts / f"{theme}-notebook.png")
        panel.screenshot(path=str(artifacts / f"{theme}-panel.png"))
        nb.output(6).first.screenshot(path=str(artifacts / f"{theme}-history.png"))
        for index, what in ((1, "thinking-and-code"), (2, "tool-call")):
            # Back to the top, where these cells are: a windowed notebook (JupyterLab 4.4) does not draw cells
            # far out of view, and Playwright cannot scroll to an element that is not drawn.
            lab_page.evaluate("() => document.querySelectorAll('.jp-WindowedPanel-outer, .jp-Notebook')"
                              ".forEach(element => { element.scrollTop = 0; })")
            lab_page.wait_for_timeout(500)
            nb.cell(index).locator(".jp-OutputArea").screenshot(path=str(artifacts / f"{theme}-cell-{what}.png"))
        cell_box = nb.cell(1).locator(".jp-OutputArea").element_handle()
        panel_box = panel.element_handle()
        found[theme] = {
            "cell": lab_page.evaluate(MEASURE_JS, [cell_box, ".jp-OutputArea-output"]),
            "panel": lab_page.evaluate(MEASURE_JS, [panel_box, ".claude-panel-answer"]),
            "thinking_cell": lab_page.evaluate(THINKING_JS, cell_box),
            "tofu": [lab_page.evaluate(TOFU_JS, nb.cell(i).locator(".jp-OutputArea").element_handle())
                     for i in (1, 2, 3)],
            "sideways": lab_page.evaluate(SIDEWAYS_JS, panel_box),
            "history": lab_page.evaluate(HISTORY_JS, nb.output(6).first.element_handle()),
        }
    (artifacts / "measured.json").write_text(json.dumps(found, indent=1))

    for theme, seen in found.items():
        for where in ("cell", "panel"):
            box = seen[where]
            assert box["preBackground"] is not None, (theme, where, box)
            assert box["preBackground"] != box["around"], f"{theme} {where}: the code box does not stand out {box}"
            assert box["codeContrast"] >= 4.5, f"{theme} {where}: code text unreadable {box}"
            assert box["worstToken"] >= 3 and box["tokenColours"] >= 2, f"{theme} {where}: token colours {box}"
            assert box["footerContrast"] >= 3, f"{theme} {where}: footer unreadable {box}"
            # The box follows the theme: a dark box in the dark theme, a light one in the light theme.
            assert (box["preLuminance"] < 0.2) == (theme == "dark"), f"{theme} {where}: box ignores the theme {box}"
        thinking = seen["thinking_cell"]
        assert thinking is not None and thinking["lines"] >= 3, thinking
        assert not thinking["broken"], f"{theme}: thinking words broken across lines: {thinking['broken'][:10]}"
        assert "mono" not in thinking["font"].lower(), thinking
        for tofu in seen["tofu"]:
            assert not tofu["missing"], f"{theme}: drawn as empty boxes (no font has them): {tofu}"
        assert "✓" in "".join(t["checked"] for t in seen["tofu"])  # the tool's status mark was checked
        assert not seen["sideways"], f"{theme}: the panel scrolls sideways: {seen['sideways']}"
        history = seen["history"]
        assert history["turns"] == 3 and history["open"] == 1, history
        assert history["chars"] < 2_000 and history["height"] < 1_000, f"{theme}: history too big {history}"
        # Unfolded, the 200,000-character prompt is clipped: the whole history is a few screens at most.
        assert history["openChars"] < 10_000 and history["openHeight"] < 3_000, f"{theme}: history too big {history}"
        assert 0 < history["heading"] < history["label"], f"{theme}: a heading outgrows its turn {history}"


def test_saved_notebook_opened_untrusted_stays_readable_in_the_dark_theme(
    lab: JupyterLab, lab_env: dict[str, str], kernel_factory: Callable[..., KernelSession], lab_page: Any,
    artifacts: Path,
) -> None:
    """Untrusted, JupyterLab sanitizes the saved HTML (it may drop `var()`): the hex colours written first
    must still give a readable code box and footer on the dark theme's background."""
    kernel = kernel_factory(env=lab_env)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for count, source in enumerate(["%load_ext claude_magic", "%%claude -c saved --display live\ncode please"], 1):
        cell = nbformat.v4.new_code_cell(source, execution_count=count)
        cell.outputs = saved_outputs(kernel, source)
        notebook.cells.append(cell)
    nbformat.write(notebook, str(lab.root_dir / "saved-dark.ipynb"))  # not signed: untrusted when opened

    nb = LabNotebook(lab_page).open(lab, "saved-dark.ipynb")
    nb.output(1).locator(".claude-magic-footer").wait_for(timeout=30_000)
    assert nb.eval_app("app.shell.currentWidget.content.model.cells.get(1).trusted") is False
    set_theme(lab_page, "dark")
    nb.cell(1).locator(".jp-OutputArea").screenshot(path=str(artifacts / "dark-untrusted.png"))
    box = lab_page.evaluate(MEASURE_JS, [nb.cell(1).locator(".jp-OutputArea").element_handle(),
                                         ".jp-OutputArea-output"])
    (artifacts / "measured.json").write_text(json.dumps(box, indent=1))
    assert box["preBackground"] != box["around"], box
    assert box["codeContrast"] >= 4.5 and box["worstToken"] >= 3 and box["footerContrast"] >= 3, box
