"""The bundled offline script answers the tutorials' cells with the replies meant for them: the quickstart's
"interrupt a long answer" cell gets an answer long enough to press Interrupt while it streams."""

from __future__ import annotations

from pathlib import Path

import anthropic
import nbformat

from claude_magic.core.client import DEMO_TOKENS_PER_SECOND, OFFLINE_SCRIPT
from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.emulator import Emulator

QUICKSTART = Path(__file__).resolve().parent.parent / "notebooks" / "01_quickstart.ipynb"


def claude_cell(notebook: Path, *, after: str = "", holding: str = "") -> str:
    """The prompt of the first %%claude cell that holds `holding`, after the Markdown cell with `after`."""
    cells = nbformat.read(notebook, as_version=4).cells
    start = next(number for number, cell in enumerate(cells) if cell.cell_type == "markdown" and after in cell.source)
    source = next(cell.source for cell in cells[start:]
                  if cell.cell_type == "code" and cell.source.startswith("%%claude") and holding in cell.source)
    return source.split("\n", 1)[1].strip()


def answer(emulator: Emulator, prompt: str) -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=emulator.base_url, api_key="offline", max_retries=0)
    return client.messages.create(model=DEFAULT_MODEL, max_tokens=4096, messages=[{"role": "user", "content": prompt}])


def test_the_quickstarts_interrupt_cell_gets_a_long_answer() -> None:
    long_prompt = claude_cell(QUICKSTART, after="## Interrupt a long answer")
    follow_up = claude_cell(QUICKSTART, holding="Cache-Control header")
    with Emulator(script=OFFLINE_SCRIPT, tokens_per_second=0) as emulator:
        long_answer, short_answer = answer(emulator, long_prompt), answer(emulator, follow_up)
    # At the demo's pace the answer streams for well over the few seconds it takes to find the Interrupt button.
    assert long_answer.usage.output_tokens / DEMO_TOKENS_PER_SECOND >= 10, long_answer.usage
    assert long_answer.stop_reason == "end_turn"
    # The follow-up, whose words the long prompt shares, still gets its own short reply.
    assert "Cache-Control: public, max-age=86400" in "".join(b.text for b in short_answer.content if b.type == "text")
    assert short_answer.usage.output_tokens < 200
