"""What a person meets first in a real kernel: a question ending in `?`, the help text, the error line said
once, and offline mode pointed at a script of one's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness.kernel import KernelSession

from claude_magic.core.errors import ClaudeError
from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel


def _help_page(kernel: KernelSession, code: str) -> str:
    result = kernel.execute(code)
    pages = [p for p in result.reply.get("payload", []) if p.get("source") == "page"]
    assert pages, f"{code!r} must show help in the pager"
    return pages[0]["data"]["text/plain"]


def test_a_line_question_ending_in_a_question_mark_is_sent_as_asked(
    magic_kernel: KernelSession, emulator: Emulator
) -> None:
    emulator.set_script({"turns": [{"match": "zip file", "content": "A ZIP file is an archive."}]})
    result = magic_kernel.execute("%claude what is a zip file?")
    assert "A ZIP file is an archive." in result.final_text()
    assert "Docstring" not in result.final_text() and not result.reply.get("payload")
    assert emulator.requests[-1].messages[-1]["content"] == "what is a zip file?"
    # With options in front, inside a block, and assigned: still questions.
    magic_kernel.execute("%claude --max-tokens 50 what about a tar file?")
    assert emulator.requests[-1].messages[-1]["content"] == "what about a tar file?"
    assert emulator.requests[-1].body["max_tokens"] == 50
    magic_kernel.execute("if True:\n    %claude --new and a zip file, again?")
    assert emulator.requests[-1].messages == [{"role": "user", "content": "and a zip file, again?"}]


def test_help_shows_both_forms_and_the_subcommands(magic_kernel: KernelSession) -> None:
    for code in ("%claude?", "%%claude?"):
        page = _help_page(magic_kernel, code)
        assert "::" not in page
        assert "%%claude [options]" in page and "%claude [options] PROMPT" in page
        for subcommand in ("history", "reset", "panel"):
            assert f"  {subcommand} " in page
        assert "--max-tokens" in page and "Stream Claude's answer" in page


def test_a_failed_turn_says_its_error_once(shell: Any, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """Terminal IPython (in-process shell): the raised ClaudeError carries the line; the output does not."""
    emulator.set_script({"turns": [{"fault": {"kind": "http", "status": 529}}]})
    shell.run_line_magic("config", "ClaudeMagic.max_retries = 0")
    with pytest.raises(ClaudeError, match=r"Overloaded \(529\)") as raised:
        shell.run_cell_magic("claude", "", "hi")
    printed = capsys.readouterr().out
    assert "Overloaded (529)" not in printed and "⚠" not in printed
    assert "stop_reason" not in printed  # nothing arrived: no footer of zeros, the raised line is all
    assert "request id" in str(raised.value)


def test_offline_mode_answers_from_a_script_of_ones_own(
    kernel_factory: Any, tmp_path: Path
) -> None:
    script = tmp_path / "answers.yaml"
    script.write_text('turns:\n  - match: "favourite colour"\n    content: "Offline answer: **teal**."\n')
    kernel = kernel_factory(env={"CLAUDE_MAGIC_OFFLINE": "1", "CLAUDE_MAGIC_EMULATOR_SCRIPT": str(script),
                                 "CLAUDE_MAGIC_EMULATOR_TPS": "0"})
    kernel.execute("%load_ext claude_magic")
    result = kernel.execute("%%claude\nWhat is your favourite colour?")
    assert "Offline answer: teal." in result.final_text("text/plain").replace("**", "")
    assert "<strong>teal</strong>" in result.final_text("text/html")
    assert "offline emulator, not Claude" in result.final_text()
    # A missing script is one line with the fix, and nothing is sent anywhere.
    kernel.execute(f"%config ClaudeMagic.emulator_script = {str(tmp_path / 'missing.yaml')!r}")
    failed = kernel.execute("%%claude\nhello", allow_error=True)
    error = failed.error()
    assert error is not None and error["ename"] == "ClaudeError"
    assert "Emulator script not found" in error["evalue"] and "emulator_script" in error["evalue"]
    assert "Traceback" not in failed.traceback_text()
