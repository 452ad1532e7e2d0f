"""A failed turn raises a real exception of the package (ClaudeError, ClaudeInterrupted), shown as one line:
in a kernel it reaches IOPub as an `error` message, so nbval (even --nbval-lax), nbconvert and Run All stop at
the cell. UsageError stays for what the user typed wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness.kernel import KernelSession
from IPython.core.error import UsageError

import claude_magic
from claude_magic.core import client as _client
from claude_magic.emulator import Emulator

FAILURES = [
    ({"fault": {"kind": "http", "status": 529}}, r"Overloaded \(529\)"),
    ({"fault": {"kind": "http", "status": 400, "message": "nope"}}, r"Bad request \(400\): nope"),
    ({"content": "partial answer " * 50, "fault": {"kind": "disconnect", "after_tokens": 5}},
     r"Connection to the API lost after"),
]


def run(shell: Any, cell: str) -> Any:
    result = shell.run_cell(cell)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


@pytest.mark.parametrize(("turn", "message"), FAILURES)
def test_a_failed_turn_raises_claude_error_with_one_line(shell: Any, emulator: Emulator, turn: dict[str, Any],
                                                         message: str) -> None:
    emulator.set_script({"turns": [turn]})
    run(shell, "%config ClaudeMagic.max_retries = 0")
    with pytest.raises(claude_magic.ClaudeError, match=message) as raised:
        run(shell, "%%claude\nhi")
    assert not isinstance(raised.value, UsageError)
    assert raised.value._render_traceback_() == [f"ClaudeError: {raised.value}"]
    assert raised.value.reply is not None and raised.value.reply.error == str(raised.value)


def test_no_key_is_a_claude_error_and_a_bad_flag_stays_a_usage_error(shell: Any, emulator: Emulator,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _client.reset_clients()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(claude_magic.ClaudeError, match="set ANTHROPIC_API_KEY"):
        run(shell, "%%claude\nhi")
    with pytest.raises(UsageError, match="unrecognized arguments: --bogus"):
        run(shell, "%%claude --bogus\nhi")
    with pytest.raises(UsageError, match="max_tokens must be at least 1"):
        run(shell, "%%claude --max-tokens 0\nhi")


def test_a_json_answer_that_does_not_parse_points_where_the_text_is(shell: Any, emulator: Emulator) -> None:
    emulator.set_script({"turns": [{"content": "Not JSON at all."}]})
    with pytest.raises(claude_magic.ClaudeError, match=r"not JSON .*kept in %claude last \(its \.text\)") as raised:
        run(shell, "%%claude -f json\nlist three colours")
    assert "reply.text" not in str(raised.value)
    assert run(shell, "%claude last").text == "Not JSON at all."  # where the line says it is
    with pytest.raises(claude_magic.ClaudeError, match=r"kept in colours\.text"):
        run(shell, "%%claude -f json --out colours\nlist three colours")
    assert shell.user_ns["colours"].text == "Not JSON at all."


# -- in a real kernel ------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_iopub_carries_an_error_message_of_one_line(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script({"turns": [{"fault": {"kind": "http", "status": 529}}]})
    magic_kernel.execute("%config ClaudeMagic.max_retries = 0")
    result = magic_kernel.execute("%%claude\nhi", allow_error=True)
    errors = result.of_type("error")
    assert len(errors) == 1, "the failure must reach IOPub as an error message (nbval --nbval-lax reads only that)"
    content = errors[0]["content"]
    assert content["ename"] == "ClaudeError" and "Overloaded (529)" in content["evalue"]
    assert len(content["traceback"]) == 1 and content["traceback"][0].startswith("ClaudeError: Overloaded (529)")
    assert result.reply["status"] == "error"


@pytest.mark.kernel
def test_an_interrupted_turn_raises_claude_interrupted_not_a_usage_error(
        magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script({"turns": [{"content": "word " * 2000}]})
    emulator.set_pace(tokens_per_second=40)
    msg_id = magic_kernel.execute_async("%%claude\nPlease write a long answer.")
    magic_kernel.wait_for(lambda m: "▍" in m["content"].get("data", {}).get("text/html", ""),
                          msg_id=msg_id, timeout=30)
    magic_kernel.interrupt()
    result = magic_kernel.collect(msg_id, timeout=30)
    errors = result.of_type("error")
    assert [error["content"]["ename"] for error in errors] == ["ClaudeInterrupted"]
    assert errors[0]["content"]["traceback"][0].startswith("ClaudeInterrupted: Interrupted after")
    assert "UsageError" not in result.final_text()


NOTEBOOK_CELLS = ["%load_ext claude_magic", "%%claude\nExplain HTTP caching in three bullet points."]


def _notebook(path: Path) -> Path:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"cell-{number}", "metadata": {},
              "outputs": [], "source": source} for number, source in enumerate(NOTEBOOK_CELLS)]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                            "display_name": "Python 3"}},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


def _nbval_lax(notebook: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                           str(notebook)], cwd=notebook.parent, env=env, capture_output=True, text=True,
                          timeout=240)


@pytest.mark.kernel
def test_nbval_lax_fails_a_notebook_whose_claude_cell_failed(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "asks.ipynb")
    base = {name: value for name, value in os.environ.items() if not name.startswith(("ANTHROPIC_", "CLAUDE_MAGIC_"))}
    base["CLAUDE_MAGIC_HISTORY_DIR"] = ""
    # No key and not offline: the cell cannot be answered, and the run must say so.
    failed = _nbval_lax(notebook, base)
    assert failed.returncode != 0, failed.stdout
    assert "ClaudeError" in failed.stdout and "set ANTHROPIC_API_KEY" in failed.stdout
    # The same notebook offline passes: the failure above is the cell's, not the harness's.
    passed = _nbval_lax(notebook, {**base, "CLAUDE_MAGIC_OFFLINE": "1", "CLAUDE_MAGIC_EMULATOR_TPS": "0",
                                   "CLAUDE_MAGIC_DISPLAY": "final"})
    assert passed.returncode == 0, passed.stdout


def test_debug_mode_shows_the_chained_sdk_exception() -> None:
    """ask() in debug mode raises ClaudeError from the SDK's exception: then the whole chain is shown."""
    try:
        try:
            raise ValueError("the SDK's own error")
        except ValueError as cause:
            raise claude_magic.ClaudeError("Bad request (400): nope") from cause
    except claude_magic.ClaudeError as error:
        shown = "\n".join(error._render_traceback_())
    assert "Traceback" in shown and "ValueError: the SDK's own error" in shown
    assert shown.rstrip().endswith("ClaudeError: Bad request (400): nope")
