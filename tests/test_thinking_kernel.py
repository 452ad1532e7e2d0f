"""Today's contract in a real kernel, where the notebook view matters: `%claude continue` on the default model
(no prefill) draws only what follows and resolves the earlier cell's warning in place; re-run and deleted
cells (JupyterLab's cellId / deletedCells metadata) leave every next request one the API accepts."""

from __future__ import annotations

from typing import Any

import pytest
from harness.kernel import KernelSession

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel

LONG = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen."


def display_ids(result: Any, kind: str) -> list[str]:
    return [m["content"].get("transient", {}).get("display_id") for m in result.of_type(kind)]


def test_continue_resolves_the_earlier_cells_warning_and_draws_only_the_rest(magic_kernel: KernelSession,
                                                                             emulator: Emulator) -> None:
    # The emulator answers the request to go on with the rest (a model would write it on from the cut).
    emulator.set_script({"turns": [{"match": "Continue it exactly", "content": "six seven eight nine ten."},
                                   {"match": "count", "content": LONG}]})
    cut = magic_kernel.execute("%%claude --thinking off --max-tokens 5\ncount for me", metadata={"cellId": "a"})
    assert "%claude continue" in cut.final_text()
    final_ids = [i for i in display_ids(cut, "display_data") + display_ids(cut, "update_display_data") if i]
    rest = magic_kernel.execute("%claude continue", metadata={"cellId": "b"})
    assert rest.error() is None, rest.traceback_text()
    # The continuation cell shows what follows, not the answer from its start.
    shown = rest.final_text()
    assert "six seven" in shown and not shown.lstrip().startswith("One two three")
    # The earlier cell is drawn again in place: its warning replaced by a note.
    updates = [m for m in rest.of_type("update_display_data")
               if m["content"].get("transient", {}).get("display_id") in final_ids]
    assert updates, "the cut-off cell was not updated"
    earlier = updates[-1]["content"]["data"]["text/plain"]
    assert "continued below" in earlier and "Continue it with %claude continue" not in earlier
    assert earlier.lstrip().startswith("One two three four five")
    # History is one turn the API accepts back.
    magic_kernel.execute("%%claude\nand now?", metadata={"cellId": "c"})
    assert emulator.requests[-1].status == 200


def test_rerun_and_deleted_cells_keep_the_conversation_accepted(magic_kernel: KernelSession,
                                                               emulator: Emulator) -> None:
    for cell in "abc":
        magic_kernel.execute(f"%%claude\nquestion {cell}", metadata={"cellId": cell})
    magic_kernel.execute("%%claude\nquestion b, edited", metadata={"cellId": "b"})
    after = magic_kernel.execute("%%claude\nquestion d", metadata={"cellId": "d", "deletedCells": ["a"]})
    assert [r.status for r in emulator.requests if r.path == "/v1/messages"] == [200] * 5
    sent = emulator.requests[-1].messages
    # Cell a is gone; b's new answer keeps its thinking (its prefix is now empty: it changed with a's
    # deletion, so it goes too); c's was written after the old b: left out. The footer says so.
    assert [m["content"] for m in sent if m["role"] == "user"] == ["question b, edited", "question c", "question d"]
    assert not any(block.get("type") == "thinking" for m in sent if m["role"] == "assistant"
                   for block in m["content"])
    assert "earlier thinking of 2 turns left out" in after.final_text()
