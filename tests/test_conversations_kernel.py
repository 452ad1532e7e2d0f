"""Turns that belong to cells, in a real kernel: execute requests carry JupyterLab's `cellId` (and
`deletedCells`) metadata exactly as the frontend sends it; the emulator sees what each request carried."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.kernel import KernelSession

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel

SCRIPT = {
    "turns": [
        {"match": "fail now", "fault": {"kind": "http", "status": 500}},
        {"match": "ponder", "content": [{"type": "thinking", "thinking": "Let me weigh tea against coffee. " * 20},
                                        {"type": "text", "text": "Tea, on balance."}]},
    ]
}
CELL_A = {"cellId": "cell-a"}
CELL_B = {"cellId": "cell-b"}


def prompts(emulator: Emulator) -> list[list[str]]:
    """The user messages each /v1/messages request carried."""
    return [[m["content"] for m in r.messages if m["role"] == "user"] for r in emulator.requests
            if r.path == "/v1/messages"]


def history(kernel: KernelSession) -> list[list[Any]]:
    result = kernel.execute("from claude_magic.core.history import STORE\n"
                            "import json; print(json.dumps([[t.prompt_text, t.owner, t.source] "
                            "for t in STORE.get().turns]))")
    return json.loads(result.stdout().strip().splitlines()[-1])


def footer(result: Any) -> str:
    return result.final_outputs()[-1]["data"]["text/plain"].splitlines()[-1]


def test_rerunning_a_cell_replaces_its_turn_in_place(magic_kernel: KernelSession, emulator: Emulator) -> None:
    magic_kernel.execute("%%claude\nFirst question", metadata=CELL_A)
    magic_kernel.execute("%%claude\nSecond question", metadata=CELL_B)
    rerun = magic_kernel.execute("%%claude\nFirst question, edited", metadata=CELL_A)
    # The re-run sends only the turns before its own, and its answer takes the old one's place.
    assert prompts(emulator)[-1] == ["First question, edited"]
    assert "replaced turn 1 of 2" in footer(rerun)
    assert history(magic_kernel) == [["First question, edited", "cell-a", "cell"],
                                     ["Second question", "cell-b", "cell"]]
    # The next new cell sees both, in the order the cells first ran.
    magic_kernel.execute("%%claude\nThird question", metadata={"cellId": "cell-c"})
    assert prompts(emulator)[-1] == ["First question, edited", "Second question", "Third question"]


def test_append_and_cells_without_an_id_add_turns(magic_kernel: KernelSession, emulator: Emulator) -> None:
    magic_kernel.execute("%%claude\nFirst", metadata=CELL_A)
    magic_kernel.execute("%%claude --append\nFirst again", metadata=CELL_A)
    magic_kernel.execute("%%claude\nFrom a frontend without cell ids")  # e.g. terminal IPython
    magic_kernel.execute("%%claude\nFrom a frontend without cell ids")
    assert [h[0] for h in history(magic_kernel)] == ["First", "First again", "From a frontend without cell ids",
                                                     "From a frontend without cell ids"]


def test_two_claude_lines_in_one_cell_keep_two_turns(magic_kernel: KernelSession, emulator: Emulator) -> None:
    code = "a = %claude Question one\nb = %claude Question two"
    magic_kernel.execute(code, metadata=CELL_A)
    magic_kernel.execute(code, metadata=CELL_A)
    assert history(magic_kernel) == [["Question one", "cell-a", "cell"], ["Question two", "cell-a#1", "cell"]]


def test_deleted_cells_drop_their_turns(magic_kernel: KernelSession, emulator: Emulator) -> None:
    magic_kernel.execute("%%claude\nKeep me", metadata=CELL_A)
    magic_kernel.execute("%%claude\nDelete me", metadata=CELL_B)
    # JupyterLab lists deleted cells with the next execute request, whatever that cell runs.
    magic_kernel.execute("1 + 1", metadata={"cellId": "cell-x", "deletedCells": ["cell-b"]})
    assert [h[0] for h in history(magic_kernel)] == ["Keep me"]


def test_a_failed_rerun_keeps_the_old_turn(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    magic_kernel.execute("%config ClaudeMagic.max_retries = 0")
    magic_kernel.execute("%%claude\nA question that works", metadata=CELL_A)
    failed = magic_kernel.execute("%%claude\nfail now", metadata=CELL_A, allow_error=True)
    assert failed.status == "error" and "API error (500)" in failed.traceback_text()
    assert [h[0] for h in history(magic_kernel)] == ["A question that works"]


def test_thinking_streams_open_then_folds_when_the_answer_starts(magic_kernel: KernelSession,
                                                                 emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=400, chunk_tokens=2)
    result = magic_kernel.execute("%%claude --thinking adaptive --display live\nponder this")
    frames = [m["content"]["data"].get("text/html", "") for m in result.messages
              if m["msg_type"] in ("display_data", "update_display_data")]
    assert any("<details open><summary>Thinking…" in frame for frame in frames), "thinking shown open while it streams"
    final = result.final_outputs()[-1]["data"]["text/html"]
    assert "<details><summary>Thinking (" in final and "<details open>" not in final
    assert final.index("Thinking (") < final.index("Tea, on balance.")


def test_history_survives_a_restart_with_resume(kernel_factory: Callable[..., KernelSession],
                                                 api_env: dict[str, str], emulator: Emulator,
                                                 tmp_path: Path) -> None:
    env = {**api_env, "CLAUDE_MAGIC_HISTORY_DIR": str(tmp_path / "history"), "JPY_SESSION_NAME": "work/demo.ipynb"}
    first = kernel_factory(env=env, cwd=str(tmp_path))
    first.execute("%load_ext claude_magic")
    first.execute("%%claude\nRemember the number 42", metadata=CELL_A)
    first.execute("%%claude\nAnd the colour blue", metadata=CELL_B)
    before = history(first)
    first.shutdown(now=True)
    assert len(list((tmp_path / "history" / "demo").glob("default@*/index.json"))) == 1

    second = kernel_factory(env=env, cwd=str(tmp_path))
    second.execute("%load_ext claude_magic")
    assert history(second) == []  # a restarted kernel starts clean
    second.execute("%claude resume")
    assert history(second) == before
    # The resumed turns still belong to their cells: re-running one replaces it.
    second.execute("%%claude\nAnd the colour green", metadata=CELL_B)
    assert prompts(emulator)[-1] == ["Remember the number 42", "And the colour green"]
    assert [h[0] for h in history(second)] == ["Remember the number 42", "And the colour green"]


def _saves(folder: Path) -> dict[str, list[str]]:
    """Each save under `folder` (by folder name) and the prompts of its turns, in their saved order."""
    from claude_magic.core.persist import HistoryFiles

    files = HistoryFiles(lambda: folder)
    return {entry.name: [turn.prompt_text for turn in files.load(entry.name)] for entry in files.saved()}


def test_two_kernels_of_one_notebook_save_their_conversations_whole_and_apart(
        kernel_factory: Callable[..., KernelSession], api_env: dict[str, str], emulator: Emulator,
        tmp_path: Path) -> None:
    env = {**api_env, "CLAUDE_MAGIC_HISTORY_DIR": str(tmp_path / "history"), "JPY_SESSION_NAME": "work/two.ipynb"}
    first = kernel_factory(env=env, cwd=str(tmp_path))
    second = kernel_factory(env=env, cwd=str(tmp_path))  # both running at once, one notebook
    for kernel in (first, second):
        kernel.execute("%load_ext claude_magic")
    first.execute("%claude A-one")
    first.execute("%claude A-two")
    second.execute("%claude B-one")
    first.execute("%claude A-three")
    assert prompts(emulator)[-1] == ["A-one", "A-two", "A-three"]  # what kernel A had as its conversation

    saves = _saves(tmp_path / "history" / "two")
    assert sorted(saves.values()) == [["A-one", "A-two", "A-three"], ["B-one"]], saves

    # `%claude conversations` says which save is whose.
    first_pid, second_pid = (int(kernel.execute("import os; print(os.getpid())").stdout().strip())
                             for kernel in (first, second))
    report = first.execute("%claude conversations").stdout()
    a_save = next(name for name, turns in saves.items() if turns[0] == "A-one")
    b_save = next(name for name, turns in saves.items() if turns[0] == "B-one")
    assert "default                  3 turns" in report and f"saved as {a_save}" in report
    a_line = next(line for line in report.splitlines() if line.strip().startswith(a_save))
    b_line = next(line for line in report.splitlines() if line.strip().startswith(b_save))
    assert a_line.endswith("this kernel") and "3 turns" in a_line
    assert f"another running kernel (pid {second_pid}," in b_line and "1 turn " in b_line
    assert f"pid {first_pid}" in next(line for line in second.execute("%claude conversations").stdout().splitlines()
                                      if line.strip().startswith(a_save))

    # A third kernel resumes the newest save of 'default': A's, whole, and goes on with it as A had it.
    second.shutdown(now=True)
    third = kernel_factory(env=env, cwd=str(tmp_path))
    third.execute("%load_ext claude_magic")
    loaded = third.execute("%claude resume").stdout()
    assert f"Loaded 3 turns from saved conversation {a_save!r}" in loaded
    third.execute("%claude C-one")
    assert prompts(emulator)[-1] == ["A-one", "A-two", "A-three", "C-one"]
    # A still runs, so the resumed conversation is saved apart from A's save, which stays A's alone.
    first.execute("%claude A-four")
    saves = _saves(tmp_path / "history" / "two")
    assert saves[a_save] == ["A-one", "A-two", "A-three", "A-four"]
    assert ["A-one", "A-two", "A-three", "C-one"] in saves.values() and ["B-one"] in saves.values()
