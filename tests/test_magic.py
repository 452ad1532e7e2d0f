"""The magic in an in-process InteractiveShell: parsing, config, history, terminal output."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

from claude_magic.core.errors import ClaudeError
from claude_magic.core.history import STORE
from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.emulator import Emulator
from claude_magic.surfaces.history_view import HistoryView
from claude_magic.surfaces.magic import split_options

SCRIPT = {
    "turns": [
        {"match": "capital of France", "content": [{"type": "text", "text": "Paris is the capital."}],
         "usage": {"input_tokens": 11, "output_tokens": 5}},
        {"match": "and Italy", "content": [{"type": "text", "text": "Rome."}]},
    ]
}


def run(shell: Any, cell: str) -> Any:
    result = shell.run_cell(cell)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


def test_terminal_streams_text_then_footer(shell: Any, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator.set_script(SCRIPT)
    run(shell, "%%claude\nWhat is the capital of France?")
    out = capsys.readouterr().out
    # The default model thinks first; its (summarized) thinking is printed before the answer.
    assert out.startswith("[thinking]\n") and "[/thinking]\nParis is the capital.\n\n" in out
    assert "11 in / 5 out · stop_reason: end_turn" in out


def test_follow_up_carries_the_first_exchange(shell: Any, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    run(shell, "%%claude\nWhat is the capital of France?")
    run(shell, "%claude and Italy")
    messages = emulator.requests[-1].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "What is the capital of France?"
    thinking, *answer = messages[1]["content"]  # sent back exactly as received: thinking first
    assert thinking["type"] == "thinking" and thinking["signature"]
    assert answer == [{"type": "text", "text": "Paris is the capital."}]
    assert messages[2]["content"] == "and Italy"


def test_new_flag_and_reset_start_over(shell: Any, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator.set_script(SCRIPT)
    run(shell, "%%claude\nWhat is the capital of France?")
    run(shell, "%%claude --new\nand Italy")
    assert len(emulator.requests[-1].messages) == 1
    run(shell, "%claude reset")
    assert "cleared (1 turn removed)" in capsys.readouterr().out
    run(shell, "%claude and Italy")
    assert len(emulator.requests[-1].messages) == 1


def test_named_conversations_are_separate(shell: Any, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    run(shell, "%%claude -c geo\nWhat is the capital of France?")
    run(shell, "%%claude\nand Italy")
    assert len(emulator.requests[-1].messages) == 1
    run(shell, "%%claude --conversation geo\nand Italy")
    assert len(emulator.requests[-1].messages) == 3


def test_history_view_shows_both_roles(shell: Any, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator.set_script(SCRIPT)
    run(shell, "%%claude\nWhat is the capital of France?")
    capsys.readouterr()
    # Outside a kernel (a terminal) the history is printed, rendered, and the magic's value is None.
    assert run(shell, "%claude history") is None
    printed = capsys.readouterr().out
    bundle = HistoryView(STORE.get())._repr_mimebundle_()
    assert bundle["text/plain"] == (
        "Conversation 'default' · 1 turn · 11 in / 5 out\n\n"
        "── Turn 1 · terminal · claude-sonnet-5-5 · 11 in / 5 out\n\n"
        "user:\nWhat is the capital of France?\n\nassistant:\nParis is the capital.")
    assert printed.startswith("Conversation 'default' · 1 turn · 11 in / 5 out\n")  # the notebook's header
    assert "Turn 1 · terminal · claude-sonnet-5-5" in printed and "Paris is the capital." in printed


def test_flags_and_config_reach_the_request(shell: Any, emulator: Emulator) -> None:
    run(shell, "%config ClaudeMagic.max_tokens = 77")
    run(shell, "%config ClaudeMagic.system = 'Be brief.'")
    run(shell, "%%claude\nhello")
    body = emulator.requests[-1].body
    assert (body["max_tokens"], body["system"], body["model"]) == (77, "Be brief.", DEFAULT_MODEL)
    assert "temperature" not in body
    run(shell, '%%claude -m claude-opus-4-5 --max-tokens 12 --temperature 0.5 --system "Be long."\nhello')
    body = emulator.requests[-1].body
    assert (body["max_tokens"], body["system"], body["model"], body["temperature"]) == (
        12, "Be long.", "claude-opus-4-5", 0.5)


def test_model_default_comes_from_the_environment(shell: Any, emulator: Emulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_magic.settings import ClaudeMagic

    monkeypatch.setenv("CLAUDE_MAGIC_MODEL", "claude-haiku-4-5")
    assert ClaudeMagic().model == "claude-haiku-4-5"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%claude --bogus\nhi", "unrecognized arguments: --bogus"),
        ("%%claude --max-tokens 0\nhi", "max_tokens must be at least 1"),
        ("%%claude --max-tokens -5\nhi", "max_tokens must be at least 1"),
        ("%%claude --temperature 3\nhi", "temperature must be between 0 and 1"),
        # Claude 4.7 and later (the default model) choose their own sampling: the API would answer 400.
        ("%%claude --temperature 0.5\nhi", "does not take a temperature .* drop --temperature"),
        ("%%claude --max-tokens many\nhi", "invalid int value"),
        ("%%claude\n   \n", "Empty prompt"),
        ("%%claude stray words\nhi", "Put the prompt in the cell body"),
        ("%claude", "Empty prompt"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(shell: Any, emulator: Emulator, cell: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run(shell, cell)
    assert emulator.requests == []  # nothing was sent


def test_bad_config_value_is_refused(shell: Any) -> None:
    from traitlets import TraitError

    settings = shell.magics_manager.registry["ClaudeMagics"].settings
    with pytest.raises(TraitError, match="temperature"):
        settings.temperature = 1.5
    with pytest.raises(TraitError):
        settings.display_mode = "sideways"


def test_help_is_generated_from_the_arguments(shell: Any) -> None:
    doc = shell.magics_manager.registry["ClaudeMagics"].claude.__doc__
    for flag in ("--model", "--max-tokens", "--system", "--temperature", "--new", "--conversation"):
        assert flag in doc


def test_no_key_is_one_clear_line(shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_magic.core import client as _client

    _client.reset_clients()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ClaudeError, match="set ANTHROPIC_API_KEY") as caught:
        run(shell, "%%claude\nhi")
    assert "\n" not in str(caught.value)
    assert "CLAUDE_MAGIC_OFFLINE=1" in str(caught.value)


def test_offline_mode_answers_from_the_bundled_emulator(shell: Any, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("CLAUDE_MAGIC_EMULATOR_TPS", "0")
    run(shell, "%config ClaudeMagic.offline = True")
    run(shell, "%%claude\nExplain HTTP caching in three bullet points.")
    out = capsys.readouterr().out
    assert "**Freshness:**" in out
    assert "offline emulator, not Claude" in out


@pytest.mark.parametrize(
    ("line", "options", "prompt"),
    [
        ("what's a ZIP file", [], "what's a ZIP file"),
        ("-m claude-opus-5-5 what's up", ["-m", "claude-opus-5-5"], "what's up"),
        ('--system "Be terse." --new explain  spacing', ["--system", "Be terse.", "--new"], "explain  spacing"),
        ("--max-tokens=5 hi", ["--max-tokens=5"], "hi"),
        ("-5 degrees is cold", [], "-5 degrees is cold"),
        ("", [], ""),
    ],
)
def test_split_options_keeps_the_prompt_verbatim(shell: Any, line: str, options: list[str], prompt: str) -> None:
    parser = shell.magics_manager.registry["ClaudeMagics"].claude.parser
    assert split_options(line, parser) == (options, prompt)


def test_prompt_that_is_not_valid_unicode_is_refused_before_sending(shell: Any, emulator: Emulator) -> None:
    shell.user_ns["raw"] = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(UsageError, match="not valid Unicode at position 13"):
        run(shell, "%claude -i summarize {raw}")  # interpolation is opt-in (-i): without it {raw} is sent as typed
    assert emulator.requests == []


def test_bytes_variables_interpolate_as_their_repr(shell: Any, emulator: Emulator) -> None:
    shell.user_ns["blob"] = b"\xff\xfe"
    run(shell, "%claude -i what is {blob}")
    assert emulator.requests[-1].messages[-1]["content"] == "what is b'\\xff\\xfe'"


def test_two_megabyte_cell_is_sent_whole_and_history_stays_valid(shell: Any, emulator: Emulator) -> None:
    big = "word " * 400_000  # 2 MB
    run(shell, f"%%claude\n{big}")
    run(shell, "%claude and now")
    request = emulator.requests[-1]
    assert request.status == 200
    assert [m["role"] for m in request.messages] == ["user", "assistant", "user"]
    assert len(request.messages[0]["content"]) == len(big.rstrip())


def test_debug_mode_raises_the_original_exception(shell: Any, emulator: Emulator) -> None:
    import anthropic

    emulator.set_script({"turns": [{"fault": {"kind": "http", "status": 400, "message": "nope"}}]})
    with pytest.raises(ClaudeError, match="Bad request"):
        run(shell, "%%claude\nhi")
    run(shell, "%config ClaudeMagic.debug = True")
    with pytest.raises(anthropic.APIStatusError) as raised:  # the SDK's own exception, not the one line
        run(shell, "%%claude\nhi")
    assert raised.value.status_code == 400 and "nope" in raised.value.message


def test_no_raise_keeps_going(shell: Any, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator.set_script({"turns": [{"fault": {"kind": "http", "status": 500}}]})
    run(shell, "%config ClaudeMagic.max_retries = 0")
    run(shell, "%%claude --no-raise\nhi")
    assert "⚠ API error (500)" in capsys.readouterr().out
