"""A `%claude` line that is a subcommand, or nearly one, never goes to Claude as a question; `--` sends a
question that starts with a subcommand's word; the help lists every subcommand; an empty `%%claude` cell says
the question is missing."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

from claude_magic.core.history import STORE
from claude_magic.emulator import Emulator
from claude_magic.surfaces.magic import SUBCOMMANDS


def run(shell: Any, cell: str) -> Any:
    result = shell.run_cell(cell)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


@pytest.mark.parametrize(("line", "message"), [
    ("%claude export", r"Usage: %claude export FILE: write the conversation to FILE\.json"),
    ("%claude export out.txt", r"%claude export takes a FILE\.json or FILE\.md file, got 'out\.txt'"),
    ("%claude export tariffs", r"takes a FILE\.json or FILE\.md file, got 'tariffs'"),
    ("%claude import notes.md", r"%claude import takes a FILE\.json file"),
    ("%claude import", r"Usage: %claude import FILE"),
    ("%claude reset now", r"%claude reset takes no argument, got 'now'"),
    ("%claude history please", r"%claude history takes no argument"),
    ("%claude resume one two", r"Usage: %claude resume \[NAME\] \(one NAME\), got 'one two'"),
    ("%claude tokens -a df", r"Options go before the subcommand: %claude -a df tokens\."),
    ("%claude histroy", r"Unknown subcommand 'histroy': did you mean history\?"),
    ("%claude rest", r"did you mean reset\?"),
    ("%claude conversation", r"did you mean conversations\?"),
    ("%claude toekns", r"did you mean tokens\?"),
    ("%claude mpc", r"did you mean mcp\?"),
    ("%claude mcp servers", r"%claude mcp takes no argument, got 'servers'"),
    ("%claude batches foo", r"Usage: %claude batches, or %claude batches cancel ID; got 'foo'"),
])
def test_a_subcommand_with_a_wrong_argument_or_a_typo_is_one_line_and_sends_nothing(
        shell: Any, emulator: Emulator, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        run(shell, line)
    assert "\n" not in str(raised.value)
    assert "%claude -- " in str(raised.value)  # the way through for a real question
    assert emulator.requests == [] and len(STORE.get()) == 0  # no money spent, no junk turn


@pytest.mark.parametrize("question", ["export tariffs", "reset my password?", "histroy", "continue the list"])
def test_a_question_that_starts_with_a_subcommand_word_goes_through_after_two_dashes(
        shell: Any, emulator: Emulator, question: str) -> None:
    run(shell, f"%claude -- {question}")
    run(shell, f"%claude --new --max-tokens 50 -- {question}")  # options before the dashes still apply
    run(shell, f"%%claude\n{question}")  # a cell's body is always the question
    sent = [request.messages[-1]["content"] for request in emulator.requests]
    assert sent == [question] * 3
    assert emulator.requests[1].body["max_tokens"] == 50


def test_one_edit_away_is_only_for_one_word_lines(shell: Any, emulator: Emulator) -> None:
    run(shell, "%claude rest of the world population?")
    assert emulator.requests[-1].messages[-1]["content"] == "rest of the world population?"


def test_the_subcommands_still_run(shell: Any, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%claude hello")
    assert run(shell, "%claude history") is None  # this shell is a terminal's: the history is printed
    assert "Conversation 'default' · 1 turn" in capsys.readouterr().out
    run(shell, "%claude -c other reset")
    run(shell, "%claude reset")
    assert "cleared (1 turn removed)" in capsys.readouterr().out


def test_the_help_lists_every_subcommand_and_the_way_through(shell: Any) -> None:
    doc = shell.magics_manager.registry["ClaudeMagics"].claude.__doc__
    for name, (argument, _what) in SUBCOMMANDS.items():
        assert f"  {f'{name} {argument}'.strip()} " in doc, name
    assert "%claude [options] -- PROMPT" in doc
    # The prompt argument's own help does not list a few of them as if they were all.
    assert "one of `history`, `reset`, `panel`" not in doc


@pytest.mark.parametrize("cell", ["%%claude", "%%claude\n", "%%claude --new\n\n  \n"])
def test_an_empty_cell_says_the_question_is_missing(shell: Any, emulator: Emulator, cell: str) -> None:
    with pytest.raises(UsageError) as raised:
        run(shell, cell)
    assert str(raised.value) == "Empty prompt: write the question in the cell body below %%claude."
    assert emulator.requests == []


def test_terminal_ipython_still_waits_for_the_body_of_a_cell_magic(shell: Any) -> None:
    # What terminal IPython asks after each Enter: `%%claude` alone is not yet a whole cell.
    assert shell.input_transformer_manager.check_complete("%%claude\n")[0] == "incomplete"
    assert shell.input_transformer_manager.check_complete("%%claude\nhi\n\n")[0] == "complete"


def test_mcp_lists_nothing_configured_without_needing_the_mcp_package(
        shell: Any, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(shell, "%claude mcp") is None
    out = capsys.readouterr().out
    assert out.startswith("No MCP servers configured. Add one the way Claude Desktop does:")
    assert emulator.requests == []
