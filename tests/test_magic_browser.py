"""What a person sees: %%claude in JupyterLab, in headless Chromium, streaming live."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, LabNotebook, write_notebook

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.browser

ANSWER = "".join(f"Paragraph {i}: caches keep **copies** of responses near the client.\n\n" for i in range(12))


def test_answer_grows_on_screen_then_footer(
    jupyterlab_factory: Callable[..., JupyterLab], lab_page: Any, emulator: Emulator,
    api_env: dict[str, str], artifacts: Path,
) -> None:
    emulator.set_script({"turns": [{"content": ANSWER}]})
    emulator.set_pace(tokens_per_second=80)
    lab = jupyterlab_factory(env=api_env)
    write_notebook(lab.root_dir / "live.ipynb", ["%load_ext claude_magic", "%%claude\nExplain caching."])
    nb = LabNotebook(lab_page).open(lab, "live.ipynb")
    nb.run_cell(0, timeout=60)
    nb.run_cell(1, wait=False)

    output = nb.output(1)
    states: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        texts = output.all_inner_texts() if output.count() else []
        text = "\n".join(texts)
        if not states or text != states[-1]:
            states.append(text)
            if len(states) == 3:
                nb.screenshot(artifacts / "streaming.png")
        if "stop_reason: end_turn" in text:
            break
        time.sleep(0.05)
    nb.screenshot(artifacts / "final.png")

    assert "stop_reason: end_turn" in states[-1], "the footer never appeared"
    assert "offline emulator, not Claude" in states[-1]
    streaming = [s for s in states if "Paragraph" in s and "stop_reason" not in s]
    assert len(streaming) >= 3, f"expected at least three growing states on screen, saw {len(streaming)}"
    sizes = [len(s.replace("▍", "").strip()) for s in streaming]
    assert sizes[-1] > sizes[0]
    # The rendered Markdown, not its source, is on screen; one clean output remains at the end.
    final = output.first
    assert final.locator("strong", has_text="copies").count() == 12
    assert output.count() == 1
    assert "**" not in states[-1]
