"""Conversations through the magic (in-process shell, real SDK, emulator): thinking, continuing a cut-off
answer, stop reasons, saving and resuming, export and import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest
from IPython.core.error import UsageError
from support import FAKE_API_KEY

from claude_magic.core import persist
from claude_magic.core.history import STORE
from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.emulator import Emulator, known_models
from claude_magic.surfaces.history_view import HistoryView

LONG = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen."
SCRIPT = {
    "turns": [
        {"match": "count", "content": LONG},
        {"match": "refuse", "content": "I can't help with that.", "stop_reason": "refusal"},
        {"match": "look it up", "content": "Searching the archive…", "stop_reason": "pause_turn", "times": 1},
        {"match": "look it up", "content": "Found it: 1887."},
        {"match": "window", "content": "This conversation is long", "stop_reason": "model_context_window_exceeded"},
        {"match": "ponder", "content": [{"type": "thinking", "thinking": "Tea or coffee? Tea."},
                                        {"type": "text", "text": "Tea."}]},
    ]
}


def run(shell: Any, line: str, cell: str | None = None) -> Any:
    if cell is None:
        return shell.run_line_magic("claude", line)
    return shell.run_cell_magic("claude", line, cell)


@pytest.fixture
def emu(emulator: Emulator, shell: Any) -> Emulator:
    emulator.set_script(SCRIPT)
    shell.run_line_magic("config", "ClaudeMagic.display_mode = 'final'")
    return emulator


def answers() -> list[str]:
    return [turn.answer_text for turn in STORE.get().turns]


# -- thinking ------------------------------------------------------------------------------------------


def test_thinking_is_requested_shown_folded_and_kept_with_its_signature(shell: Any, emu: Emulator,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # A budget, on a model that takes one; then adaptive thinking on the default model.
    reply = run(shell, "--model claude-opus-4-5 --thinking 2048 --out r", "ponder this")
    reply = shell.user_ns["r"]
    assert emu.requests[-1].body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    html = reply._repr_mimebundle_()["text/html"]
    assert "<details><summary>Thinking (19 characters)</summary>" in html  # folded once the answer came
    stored = STORE.get().turns[-1].messages[-1]["content"]
    assert stored[0]["type"] == "thinking" and stored[0]["signature"]  # exactly as received
    run(shell, "--thinking adaptive", "and now?")
    assert emu.requests[-1].status == 200  # the API accepts the history back: the signature verifies
    # Summarized, so a person watches the model think (the default model's own default is omitted).
    assert emu.requests[-1].body["thinking"] == {"type": "adaptive", "display": "summarized"}


def test_default_replies_think_when_thinking_is_asked_for(shell: Any, emu: Emulator) -> None:
    run(shell, "--thinking adaptive --out r", "What is a monad?")
    content = STORE.get().turns[-1].messages[-1]["content"]
    assert [block["type"] for block in content] == ["thinking", "text"] and content[0]["signature"]
    # Its text comes back only where the request asked for display "summarized": the default model's own
    # default is "omitted" (a signature-only block).
    if emu.requests[-1].body["thinking"].get("display") == "summarized":
        assert "offline emulator" in content[0]["thinking"]
    else:
        assert content[0]["thinking"] == ""


def test_a_changed_thinking_block_is_rejected_like_the_api_does(emu: Emulator) -> None:
    client = anthropic.Anthropic(base_url=emu.base_url, api_key=FAKE_API_KEY, max_retries=0)
    messages: list[Any] = [
        {"role": "user", "content": "ponder this"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "Edited afterwards.",
                                           "signature": "c2lnbmF0dXJl"}, {"type": "text", "text": "Tea."}]},
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(anthropic.APIStatusError, match="Invalid `signature` in `thinking` block"):
        client.messages.create(model=known_models()[0], max_tokens=50, messages=messages)


@pytest.mark.parametrize(("flags", "message"), [
    ("--thinking 100", "at least 1024"),
    ("--thinking 4096 --max-tokens 2000", "must be less than max_tokens"),
    ("--model claude-opus-4-6 --thinking adaptive --temperature 0.5", "temperature cannot be set with thinking"),
    ("--thinking lots", "a token budget"),
    # The default model (Sonnet 5.5) thinks adaptively; Claude 4.5 takes only a budget. The line names what
    # the model takes (from the contract table).
    ("--thinking 2048", "claude-sonnet-5-5 does not take a thinking budget: it accepts --thinking adaptive, "
                        "between_tools"),
    ("--model claude-haiku-4-5 --thinking adaptive", "claude-haiku-4-5 does not take --thinking adaptive: it "
                                                     r"accepts --thinking N \(a budget\), off"),
    ("--model claude-opus-5-5 --thinking off", "claude-opus-5-5 cannot turn thinking off"),
    ("--effort xhigh --thinking off", "turns thinking off .* only at --effort low, medium, high; got xhigh"),
])
def test_invalid_thinking_is_one_line_and_nothing_is_sent(shell: Any, emu: Emulator, flags: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run(shell, flags, "ponder this")
    assert emu.requests == []


def test_thinking_with_forced_tool_use_is_refused_before_sending(shell: Any, emu: Emulator) -> None:
    def clock() -> str:
        """The time."""
        return "noon"

    shell.user_ns["clock"] = clock
    # A model that takes a forced tool choice, but not while it thinks; the default model takes none at all.
    with pytest.raises(UsageError, match="forces a tool call, which the API does not allow while claude-opus-4-6 "
                                         "thinks"):
        run(shell, "--model claude-opus-4-6 --thinking adaptive --tools clock --tool-choice any", "What time is it?")
    with pytest.raises(UsageError, match="claude-sonnet-5-5 does not take a forced tool choice"):
        run(shell, "--tools clock --tool-choice clock", "What time is it?")
    assert emu.requests == []


@pytest.mark.parametrize(("body", "message"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 1000, "model": "claude-opus-4-5"},
     "must be greater than"),
    # Claude 4.7 and later take no budget; Claude 4.5 and earlier no adaptive thinking (the API's messages).
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}, "model": "claude-opus-4-7"},
     '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive"'),
    ({"thinking": {"type": "adaptive"}, "model": "claude-haiku-4-5"},
     "adaptive thinking is not supported on this model"),
    # Temperature and forced tools with thinking on, on a model that takes both without thinking.
    ({"thinking": {"type": "adaptive"}, "temperature": 0.3, "model": "claude-opus-4-6"}, "may only be set to 1"),
    ({"thinking": {"type": "sometimes"}}, "does not match any of the expected tags"),
    ({"thinking": {"type": "adaptive"}, "tools": [{"name": "t", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "any"}, "model": "claude-opus-4-6"}, "forces tool use"),
    # From Claude 4.7 on sampling is refused outright; the 5.5 and Fable 5.1+ models refuse forced tools.
    ({"temperature": 0.3}, "`temperature` is deprecated for this model."),
    ({"tools": [{"name": "t", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}},
     "forced tool use is not available"),
    ({"thinking": {"type": "disabled"}, "model": "claude-sonnet-5-5"}, "between_tools"),
])
def test_the_emulator_checks_thinking_parameters_like_the_api(emu: Emulator, body: dict[str, Any],
                                                               message: str) -> None:
    request = {"model": DEFAULT_MODEL, "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}],
               **body}
    client = anthropic.Anthropic(base_url=emu.base_url, api_key=FAKE_API_KEY, max_retries=0)
    with pytest.raises(anthropic.APIStatusError, match=message):
        client.post("/v1/messages", body=request, cast_to=object)


@pytest.mark.parametrize(("model", "thinking"), [
    ("claude-opus-4-6", {"type": "enabled", "budget_tokens": 1024}),  # deprecated on 4.6, still accepted
    ("claude-opus-4-6", {"type": "adaptive"}),
    ("claude-opus-4-5", {"type": "enabled", "budget_tokens": 1024}),
    ("claude-mythos-preview", {"type": "enabled", "budget_tokens": 1024}),
    ("claude-sonnet-5-5", {"type": "adaptive"}),
    ("claude-sonnet-5-5", {"type": "between_tools"}),  # its lowest setting: disabled is a 400 on Sonnet 5.5
    ("claude-haiku-5-5", {"type": "disabled"}),
    ("claude-opus-4-6", {"type": "disabled"}),
])
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # the SDK's, for 4.6 budgets
def test_the_emulator_accepts_the_thinking_each_model_supports(emu: Emulator, model: str,
                                                                thinking: dict[str, Any]) -> None:
    client = anthropic.Anthropic(base_url=emu.base_url, api_key=FAKE_API_KEY, max_retries=0)
    message = client.messages.create(model=model, max_tokens=4096, thinking=thinking,  # type: ignore[arg-type]
                                     messages=[{"role": "user", "content": "What is a monad?"}])
    assert emu.requests[-1].status == 200
    kinds = [block.type for block in message.content]
    assert kinds == (["text"] if thinking["type"] in ("disabled", "between_tools") else ["thinking", "text"])


def test_with_thinking_on_a_tool_loop_must_send_the_thinking_back_first(emu: Emulator) -> None:
    client = anthropic.Anthropic(base_url=emu.base_url, api_key=FAKE_API_KEY, max_retries=0)
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
    ]
    with pytest.raises(anthropic.APIStatusError, match="must start with a thinking block"):
        client.messages.create(model=known_models()[0], max_tokens=4096, messages=messages,
                               thinking={"type": "adaptive"},
                               tools=[{"name": "w", "input_schema": {"type": "object"}}])


# -- stop reasons ----------------------------------------------------------------------------------------


def test_continue_finishes_a_cut_off_answer_as_one_turn(shell: Any, emu: Emulator) -> None:
    # A model that takes a prefill (the later ones: tests/test_thinking_client.py).
    first = run(shell, "--model claude-haiku-4-5 --max-tokens 5 --out first", "count for me")
    first = shell.user_ns["first"]
    assert first.stop_reason == "max_tokens" and "%claude continue" in first._repr_mimebundle_()["text/plain"]
    reply = run(shell, "continue")
    sent = emu.requests[-1].messages
    assert sent[-1] == {"role": "assistant", "content": [{"type": "text", "text": "One two three four five"}]}
    assert "thinking" not in emu.requests[-1].body
    assert reply.text == LONG and reply.stop_reason == "end_turn"
    turns = STORE.get().turns
    assert len(turns) == 1 and turns[0].messages[-1]["content"] == [{"type": "text", "text": LONG}]
    assert turns[0].stop_reason == "end_turn" and turns[0].usage["output_tokens"] > 5  # both parts counted
    with pytest.raises(UsageError, match="Nothing to continue: the last answer ended with stop_reason end_turn"):
        run(shell, "continue")


def test_continue_can_be_cut_off_again_and_continued_again(shell: Any, emu: Emulator) -> None:
    run(shell, "--model claude-haiku-4-5 --max-tokens 4", "count for me")
    run(shell, "--max-tokens 4 continue")
    assert STORE.get().turns[-1].stop_reason == "max_tokens"
    assert answers() == ["One two three four five six seven eight"]
    run(shell, "continue")
    assert answers() == [LONG]


def test_a_refusal_is_one_line_and_not_committed(shell: Any, emu: Emulator) -> None:
    reply = run(shell, "--no-raise --out r", "refuse this")
    reply = shell.user_ns["r"]
    text = reply._repr_mimebundle_()["text/plain"]
    assert "⚠ Claude declined to answer: the turn was not added to history" in text
    assert len(STORE.get()) == 0


def test_a_paused_turn_goes_on_by_itself(shell: Any, emu: Emulator) -> None:
    reply = run(shell, "--out r", "look it up")
    reply = shell.user_ns["r"]
    assert [r.status for r in emu.requests] == [200, 200]
    # The paused answer goes back as received (the default model's thinking block first) and goes on.
    paused = emu.requests[-1].messages[-1]
    assert paused["role"] == "assistant" and [b["type"] for b in paused["content"]] == ["thinking", "text"]
    assert paused["content"][1] == {"type": "text", "text": "Searching the archive…"}
    assert reply.stop_reason == "end_turn" and "1 tool round" not in reply._repr_mimebundle_()["text/plain"]
    assert [b["text"] for b in STORE.get().turns[-1].messages[-1]["content"] if b["type"] == "text"] == [
        "Searching the archive…", "Found it: 1887."]


def test_a_full_context_window_suggests_the_fix(shell: Any, emu: Emulator) -> None:
    run(shell, "--out r", "window")
    text = shell.user_ns["r"]._repr_mimebundle_()["text/plain"]
    assert "filled the model's context window. Start over with %claude reset, or attach less" in text


# -- saved conversations -----------------------------------------------------------------------------------


def restart(shell: Any) -> None:
    """What a kernel restart does to this process's state: history gone, the saver's ownership forgotten."""
    for name in STORE.names():
        STORE.get(name)._turns.clear()
    if persist._SAVER is not None:
        persist._SAVER._saves.clear()


def test_resume_after_a_restart_loads_the_saved_turns(shell: Any, emu: Emulator,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "", "count for me")
    run(shell, "", "ponder this")
    saved = STORE.get().turns
    restart(shell)
    assert len(STORE.get()) == 0  # a restarted kernel starts clean
    run(shell, "resume")
    assert [t.to_dict() for t in STORE.get().turns] == [t.to_dict() for t in saved]
    (save,) = [entry.name for entry in persist._SAVER.saved()]
    assert f"Loaded 2 turns from saved conversation {save!r}" in capsys.readouterr().out
    run(shell, "", "and one more")  # goes on in the same save: the kernel that wrote it no longer does
    assert [(entry.name, entry.turns, entry.ours) for entry in persist._SAVER.saved()] == [(save, 3, True)]
    run(shell, "conversations")
    out = capsys.readouterr().out
    live = next(line for line in out.splitlines() if line.startswith("  default "))
    assert "3 turns" in live and live.endswith(f"saved as {save}")
    assert next(line for line in out.splitlines() if line.strip().startswith(save)).endswith("this kernel")


def test_resume_refuses_to_overwrite_turns_of_this_kernel(shell: Any, emu: Emulator) -> None:
    run(shell, "", "count for me")
    with pytest.raises(UsageError, match="already has 1 turns in this kernel: %claude reset it first"):
        run(shell, "resume")
    with pytest.raises(UsageError, match="No saved conversation 'nothing'"):
        run(shell, "resume nothing")


def test_export_then_import_into_another_conversation(shell: Any, emu: Emulator, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "", "count for me")
    run(shell, f"export {tmp_path / 'talk.json'}")
    run(shell, f"export {tmp_path / 'talk.md'}")
    assert "Exported conversation 'default' (1 turn)" in capsys.readouterr().out
    assert "# Conversation default" in (tmp_path / "talk.md").read_text()
    run(shell, f"-c copy import {tmp_path / 'talk.json'}")
    assert [t.messages for t in STORE.get("copy").turns] == [t.messages for t in STORE.get().turns]
    assert STORE.get("copy").turns[0].source == "import"


def test_a_bad_import_is_one_line_and_loads_nothing(shell: Any, emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "claude_magic.conversation", "version": 1, "name": "x", "turns": [
        {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a"}]}]}))
    with pytest.raises(UsageError, match="the API would reject this history: .*alternate"):
        run(shell, f"import {path}")
    assert len(STORE.get()) == 0


def test_a_question_that_starts_like_a_subcommand_goes_through_after_two_dashes(shell: Any, emu: Emulator) -> None:
    with pytest.raises(UsageError, match="takes a FILE.json or FILE.md file, got 'tariffs'"):
        run(shell, "export tariffs")  # a subcommand with a wrong argument, not a question
    run(shell, "-- export tariffs")
    run(shell, "-- resume writing tips?")
    assert [r.messages[-1]["content"] for r in emu.requests] == ["export tariffs", "resume writing tips?"]


def test_history_lists_numbered_turns_with_their_source(shell: Any, emu: Emulator) -> None:
    import claude_magic

    run(shell, "", "count for me")
    claude_magic.ask("ponder this", display="none")
    assert run(shell, "history") is None  # this shell is a terminal's: the history is printed
    text = HistoryView(STORE.get())._repr_mimebundle_()["text/plain"]
    assert "Conversation 'default' · 2 turns" in text
    assert "── Turn 1 · terminal · claude-sonnet-5-5" in text and "── Turn 2 · code · claude-sonnet-5-5" in text


def test_saving_can_be_turned_off(shell: Any, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("config", "ClaudeMagic.history_dir = ''")
    run(shell, "", "count for me")
    run(shell, "conversations")
    assert "Saving is off" in capsys.readouterr().out
    with pytest.raises(UsageError, match="Saving history is off"):
        run(shell, "-c other resume")


def test_key_names_a_turn_where_the_frontend_sends_no_cell_id(shell: Any, emu: Emulator) -> None:
    run(shell, "--key plan", "count for me")
    run(shell, "", "ponder this")
    run(shell, "--key plan --out r", "count again")
    assert [m["content"] for m in emu.requests[-1].messages] == ["count again"]
    assert "replaced turn 1 of 2" in shell.user_ns["r"]._repr_mimebundle_()["text/plain"]
    assert [turn.prompt_text for turn in STORE.get().turns] == ["count again", "ponder this"]


def test_an_exported_offline_turn_says_it_was_not_claude(shell: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("CLAUDE_MAGIC_EMULATOR_TPS", "0")
    shell.run_line_magic("config", "ClaudeMagic.offline = True")
    run(shell, "", "Explain HTTP caching in three bullet points.")
    run(shell, f"export {tmp_path / 'offline.md'}")
    footer = [line for line in (tmp_path / "offline.md").read_text().splitlines() if line.startswith("*claude")]
    assert len(footer) == 1 and "· offline emulator, not Claude ·" in footer[0]
