"""The client never walks into the API's 400s on today's models, on every in-process surface (magic, `ask`,
`ask_async`, `map`, the panel): thinking an edit invalidated is left out and the rest kept, `%claude continue`
works with and without prefill, thinking/effort/tool-choice values a model rejects are one line before sending,
and thinking is shown as people expect. Real SDK against the emulator, on the default model and a 4.5 model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import claude_magic
from claude_magic._model_facts import contract, known_contracts
from claude_magic.core.engine import CONTINUE_PROMPT
from claude_magic.core.history import STORE
from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.core.request import DEFAULT_MAX_TOKENS
from claude_magic.emulator import Emulator

OLDER = "claude-haiku-4-5"  # a 4.5 model: thinking off unless asked, prefill and forced tools accepted
LONG = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen."
SCRIPT = {"turns": [{"match": "count", "content": LONG}]}
MODELS = [DEFAULT_MODEL, OLDER]


def run(shell: Any, line: str, cell: str | None = None) -> Any:
    if cell is None:
        return shell.run_line_magic("claude", line)
    return shell.run_cell_magic("claude", line, cell)


@pytest.fixture
def emu(emulator: Emulator, shell: Any) -> Emulator:
    emulator.set_script(SCRIPT)
    shell.run_line_magic("config", "ClaudeMagic.display_mode = 'final'")
    return emulator


def thinking_flag(model: str) -> str:
    """What makes `model` think: the default model thinks by default; the 4.5 model needs a budget."""
    return "" if model == DEFAULT_MODEL else "--thinking 2048"


def thinking_per_answer(messages: list[dict[str, Any]]) -> list[bool]:
    """For each assistant message sent, whether it carried a thinking block."""
    return [any(block.get("type") == "thinking" for block in message["content"])
            for message in messages if message["role"] == "assistant" and isinstance(message["content"], list)]


def ask_cell(shell: Any, model: str, key: str, prompt: str, extra: str = "") -> Any:
    return run(shell, f"--model {model} {thinking_flag(model)} --key {key} {extra} --out r", prompt)


def history_sent(emu: Emulator, prompt: str) -> list[dict[str, Any]]:
    """The history the first request for `prompt` carried before it (later rounds repeat it)."""
    body = next(r.body for r in emu.requests if r.messages and r.messages[-1].get("content") == prompt)
    return body["messages"][:-1]


def last_ok(emu: Emulator) -> dict[str, Any]:
    request = emu.requests[-1]
    assert request.status == 200, request.body
    return request.body


# -- editing history -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_rerun_cell_keeps_the_thinking_before_and_after_it(shell: Any, emu: Emulator, model: str) -> None:
    for key in "abc":
        ask_cell(shell, model, key, f"question {key}")
    assert thinking_per_answer(last_ok(emu)["messages"]) == [True, True]  # append-only: everything carried
    ask_cell(shell, model, "b", "question b, asked again")  # replaces turn 2 in place
    assert thinking_per_answer(last_ok(emu)["messages"]) == [True]  # turn 1 only: its prefix is unchanged
    ask_cell(shell, model, "d", "question d")
    sent = last_ok(emu)["messages"]
    facts = contract(model)
    if facts is not None and facts.preserved_thinking:
        # Turn 3's thinking was written after the old turn 2: invalid now. Turn 2's new thinking is valid.
        assert thinking_per_answer(sent) == [True, True, False]
        assert "earlier thinking of 1 turn left out" in shell.user_ns["r"]._repr_mimebundle_()["text/plain"]
    else:
        assert thinking_per_answer(sent) == [True, True, True]  # no prefix binding: nothing to leave out
    # History itself keeps every block (a later model that can use them still may).
    assert all(thinking_per_answer(turn.messages) == [True] for turn in STORE.get().turns)


@pytest.mark.parametrize("model", MODELS)
def test_a_cell_with_its_own_system_prompt_carries_no_earlier_thinking(shell: Any, emu: Emulator, model: str) -> None:
    ask_cell(shell, model, "a", "question a")
    ask_cell(shell, model, "b", "question b")
    ask_cell(shell, model, "c", "question c", extra='--system "Answer in French."')
    expected = [False, False] if contract(model).preserved_thinking else [True, True]
    assert thinking_per_answer(last_ok(emu)["messages"]) == expected
    ask_cell(shell, model, "d", "question d")  # back to no system prompt: the turns before c were made without
    body = last_ok(emu)
    assert "system" not in body


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def offer(name: str) -> Any:
    def tool(city: str) -> str:
        """Look the weather up.

        Args:
            city: the city
        """
        return f"sunny in {city}"

    tool.__name__ = name
    return tool


def test_tools_offered_later_invalidate_earlier_thinking_and_then_stay_put(shell: Any, emu: Emulator) -> None:
    shell.user_ns["weather"] = offer("weather")
    ask_cell(shell, DEFAULT_MODEL, "a", "question a")
    ask_cell(shell, DEFAULT_MODEL, "b", "question b", extra="--tools weather")
    body = last_ok(emu)
    assert [tool["name"] for tool in body["tools"]] == ["weather"]
    # `tools` changed: turn 1's block is invalid.
    assert thinking_per_answer(history_sent(emu, "question b")) == [False]
    ask_cell(shell, DEFAULT_MODEL, "c", "question c")  # no tools of its own: the same `tools` go along
    body = last_ok(emu)
    assert [tool["name"] for tool in body["tools"]] == ["weather"] and body["tool_choice"] == {"type": "none"}
    # Turn 2's blocks (of every round that has one) were made with these tools: all carried.
    rounds = thinking_per_answer(STORE.get().turns[1].messages)
    assert rounds[0] and thinking_per_answer(history_sent(emu, "question c")) == [False, *rounds]
    ask_cell(shell, DEFAULT_MODEL, "d", "question d", extra="--tools weather")  # the same tools again
    assert thinking_per_answer(history_sent(emu, "question d")) == [False, *rounds, True]


def test_a_deleted_cell_invalidates_only_what_came_after_it(shell: Any, emu: Emulator) -> None:
    for key in "abc":
        ask_cell(shell, DEFAULT_MODEL, key, f"question {key}")
    STORE.get().drop_owned_by(["key:b"])  # what the magic does for a cell JupyterLab reports deleted
    ask_cell(shell, DEFAULT_MODEL, "d", "question d")
    assert thinking_per_answer(last_ok(emu)["messages"]) == [True, False]


def test_history_images_off_leaves_out_the_thinking_after_an_image(shell: Any, emu: Emulator, tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(tiny_png())
    ask_cell(shell, DEFAULT_MODEL, "a", "question a")
    ask_cell(shell, DEFAULT_MODEL, "b", "what is this", extra=f"-a {image}")
    shell.run_line_magic("config", "ClaudeMagic.history_images = False")
    ask_cell(shell, DEFAULT_MODEL, "c", "question c")
    # Turn 2 is sent without its image now: its thinking was made with it. Turn 1's block is untouched.
    assert thinking_per_answer(last_ok(emu)["messages"]) == [True, False]
    ask_cell(shell, DEFAULT_MODEL, "d", "question d")
    # Turn 3's thinking was made under the image-less history: it is kept from now on.
    assert thinking_per_answer(last_ok(emu)["messages"]) == [True, False, True]


def test_an_edited_import_keeps_the_thinking_before_the_edit(shell: Any, emu: Emulator, tmp_path: Path) -> None:
    for key in "abc":
        ask_cell(shell, DEFAULT_MODEL, key, f"question {key}")
    saved = tmp_path / "conversation.json"
    run(shell, f"export {saved}")
    data = json.loads(saved.read_text())
    turns = data["turns"] if isinstance(data, dict) else data
    turns[1]["messages"][0]["content"] = "question b, edited by hand"
    saved.write_text(json.dumps(data))
    run(shell, "reset")
    run(shell, f"import {saved}")
    ask_cell(shell, DEFAULT_MODEL, "d", "question d")
    assert thinking_per_answer(last_ok(emu)["messages"]) == [True, False, False]


def test_switching_to_a_model_that_cannot_read_the_blocks_says_so(shell: Any, emu: Emulator) -> None:
    pairs = [(a.model, b.model) for a in known_contracts() for b in known_contracts()
             if a.preserved_thinking and b.preserved_thinking and a.model not in b.reads_thinking_from
             and "adaptive" in a.thinking_types and "adaptive" in b.thinking_types]
    if not pairs:
        pytest.skip("the contract table lists no such pair")
    writer, reader = pairs[0]
    run(shell, f"--model {writer} --key a", "question a")
    reply = run(shell, f"--model {reader} --key b --out r", "question b")
    reply = shell.user_ns["r"]
    assert emu.requests[-1].status == 200
    assert f"thinking block of {writer} not read by {reader}" in reply._repr_mimebundle_()["text/plain"]


# -- continue --------------------------------------------------------------------------------------------


def test_continue_without_prefill_asks_in_a_user_message_and_draws_only_the_rest(shell: Any,
                                                                                 emu: Emulator) -> None:
    # No up-front thinking, so max_tokens cuts the answer's text (an answer cut off while thinking keeps
    # no unfinished thinking block: nothing to continue).
    run(shell, f"--model {DEFAULT_MODEL} --thinking off --max-tokens 5 --out first", "count for me")
    first = shell.user_ns["first"]
    assert first.stop_reason == "max_tokens"
    assert "%claude continue" in first._repr_mimebundle_()["text/plain"]
    reply = run(shell, "--out rest continue")
    reply = shell.user_ns["rest"]
    body = last_ok(emu)
    assert body["messages"][-1] == {"role": "user", "content": CONTINUE_PROMPT}  # no prefill: a 400 on 4.6+
    turns = STORE.get().turns
    assert len(turns) == 1 and [m["role"] for m in turns[0].messages] == ["user", "assistant", "user", "assistant"]
    # The second cell shows what follows, not the answer from its start; the first cell's warning is resolved.
    shown = reply._repr_mimebundle_()["text/plain"]
    first_text = first.text.strip()
    if first_text:
        assert first_text not in shown
    assert "continued below" in first._repr_mimebundle_()["text/plain"]
    assert "%claude continue (the panel" not in first._repr_mimebundle_()["text/plain"]
    run(shell, "--key next", "and now?")  # the one turn is history the API accepts
    assert emu.requests[-1].status == 200


def test_continue_with_prefill_on_a_model_that_takes_it(shell: Any, emu: Emulator) -> None:
    run(shell, f"--model {OLDER} --max-tokens 5", "count for me")
    reply = run(shell, "--out rest continue")
    reply = shell.user_ns["rest"]
    body = last_ok(emu)
    prefill = {"role": "assistant", "content": [{"type": "text", "text": "One two three four five"}]}
    assert body["messages"][-1] == prefill
    assert reply.text == LONG  # the reply is the whole answer
    turns = STORE.get().turns
    assert len(turns) == 1 and turns[0].messages[-1]["content"] == [{"type": "text", "text": LONG}]
    assert not reply._repr_mimebundle_()["text/plain"].startswith("One two three four five")  # drawn: the rest


# -- thinking, effort, tool choice ---------------------------------------------------------------------------


def test_the_default_request_asks_for_summarized_thinking_where_the_model_thinks(shell: Any, emu: Emulator) -> None:
    run(shell, f"--model {DEFAULT_MODEL}", "hello")
    body = last_ok(emu)
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["max_tokens"] == min(DEFAULT_MAX_TOKENS, contract(DEFAULT_MODEL).max_output)
    run(shell, f"--model {DEFAULT_MODEL} --thinking-display omitted", "hello")
    assert last_ok(emu)["thinking"] == {"type": "adaptive"}  # omitted is the model's default: not sent
    run(shell, f"--model {OLDER}", "hello")
    assert "thinking" not in last_ok(emu)  # off unless asked


@pytest.mark.parametrize("model", sorted({c.model for c in known_contracts()} & {DEFAULT_MODEL, OLDER,
                                                                                 "claude-opus-5-5"}))
def test_thinking_off_means_what_the_model_allows(shell: Any, emu: Emulator, model: str) -> None:
    facts = contract(model)
    count = len(emu.requests)
    if facts.thinking_when_omitted == "off":
        run(shell, f"--model {model} --thinking off", "hello")
        assert "thinking" not in last_ok(emu)  # off already: nothing to send
    elif "disabled" in facts.thinking_types:
        run(shell, f"--model {model} --thinking off", "hello")
        assert last_ok(emu)["thinking"] == {"type": "disabled"}
    elif "between_tools" in facts.thinking_types:
        run(shell, f"--model {model} --thinking off", "hello")
        assert last_ok(emu)["thinking"]["type"] == "between_tools"
    else:
        with pytest.raises(UsageError, match=f"{model} cannot turn thinking off"):
            run(shell, f"--model {model} --thinking off", "hello")
        assert len(emu.requests) == count  # nothing sent


def test_values_a_model_rejects_are_one_line_naming_what_it_takes(shell: Any, emu: Emulator) -> None:
    count = len(emu.requests)
    facts = contract(DEFAULT_MODEL)
    if "enabled" not in facts.thinking_types:
        with pytest.raises(UsageError, match="does not take a thinking budget: it accepts --thinking"):
            run(shell, f"--model {DEFAULT_MODEL} --thinking 2048", "hello")
    older = contract(OLDER)
    if not older.efforts:
        with pytest.raises(UsageError, match=f"{OLDER} does not take --effort high: it has no effort setting"):
            run(shell, f"--model {OLDER} --effort high", "hello")
    if "adaptive" not in older.thinking_types:
        with pytest.raises(UsageError, match=f"{OLDER} does not take --thinking adaptive"):
            run(shell, f"--model {OLDER} --thinking adaptive", "hello")
    assert len(emu.requests) == count


def test_effort_reaches_the_request_from_flag_setting_and_ask(shell: Any, emu: Emulator) -> None:
    efforts = contract(DEFAULT_MODEL).efforts
    run(shell, f"--model {DEFAULT_MODEL} --effort {efforts[0]}", "hello")
    assert last_ok(emu)["output_config"] == {"effort": efforts[0]}
    shell.run_line_magic("config", f"ClaudeMagic.effort = '{efforts[-1]}'")
    run(shell, f"--model {DEFAULT_MODEL}", "hello")
    assert last_ok(emu)["output_config"] == {"effort": efforts[-1]}
    claude_magic.ask("hello", model=DEFAULT_MODEL, effort=efforts[0], thinking_display="omitted")
    body = last_ok(emu)
    assert body["output_config"] == {"effort": efforts[0]} and "display" not in body["thinking"]
    from traitlets import TraitError

    with pytest.raises(TraitError, match="effort must be one of low, medium, high, xhigh, max"):
        shell.magics_manager.registry["ClaudeMagics"].settings.effort = "extreme"


def test_map_and_ask_async_take_the_same_options(shell: Any, emu: Emulator) -> None:
    from support import run_coroutine

    efforts = contract(DEFAULT_MODEL).efforts
    claude_magic.map(["a", "b"], model=DEFAULT_MODEL, effort=efforts[0], thinking_display="omitted", display="none")
    assert all(r.body["output_config"] == {"effort": efforts[0]} for r in emu.requests[-2:])
    run_coroutine(claude_magic.ask_async("hello", model=DEFAULT_MODEL, effort=efforts[-1], display="none"))
    assert last_ok(emu)["output_config"] == {"effort": efforts[-1]}
    with pytest.raises(ValueError, match="does not take --effort"):
        claude_magic.ask("hello", model=OLDER, effort="high", display="none")


def test_a_forced_tool_choice_is_one_line_where_the_model_rejects_it(shell: Any, emu: Emulator) -> None:
    shell.user_ns["weather"] = offer("weather")
    count = len(emu.requests)
    if not contract(DEFAULT_MODEL).forced_tool_choice:
        with pytest.raises(UsageError, match=f"{DEFAULT_MODEL} does not take a forced tool choice"):
            run(shell, f"--model {DEFAULT_MODEL} --tools weather --tool-choice any", "weather in Paris?")
    with pytest.raises(UsageError, match="forces a tool call, which the API does not allow while"):
        run(shell, f"--model {OLDER} --thinking 2048 --tools weather --tool-choice weather", "weather in Paris?")
    assert len(emu.requests) == count
    run(shell, f"--model {OLDER} --tools weather --tool-choice weather", "weather in Paris?")  # no thinking: fine
    assert emu.requests[-2].body["tool_choice"] == {"type": "tool", "name": "weather"}


# -- what a person sees ----------------------------------------------------------------------------------------


def test_omitted_thinking_is_never_an_empty_fold(shell: Any, emu: Emulator) -> None:
    run(shell, f"--model {DEFAULT_MODEL} --thinking-display omitted --out r", "hello")
    html = shell.user_ns["r"]._repr_mimebundle_()["text/html"]
    assert "Thinking (0 characters)" not in html and "<details" not in html
    run(shell, f"--model {DEFAULT_MODEL} --out r", "hello")  # summarized: the reasoning is there to read
    reply = shell.user_ns["r"]
    blocks = [b for b in reply.state.blocks if b.kind == "thinking"]
    if blocks and blocks[0].text:
        assert "<details><summary>Thinking (" in reply._repr_mimebundle_()["text/html"]


def test_the_panel_sends_its_effort_and_display_and_continues_without_prefill(shell: Any, emu: Emulator) -> None:
    efforts = contract(DEFAULT_MODEL).efforts
    panel = claude_magic.ChatPanel(model=DEFAULT_MODEL, effort=efforts[0], thinking_display="omitted")
    panel.send("hello")
    assert panel.wait(30) is not None
    body = last_ok(emu)
    assert body["output_config"] == {"effort": efforts[0]} and "display" not in body["thinking"]
    panel.model_picker.value = OLDER
    panel.effort_picker.value = "high" if "high" in contract(OLDER).efforts else ""
    panel.send("hello again")
    assert panel.wait(30) is not None
    if not contract(OLDER).efforts:
        assert "output_config" not in last_ok(emu)
    panel.model_picker.value = DEFAULT_MODEL
    panel.effort_picker.value = ""
    shell.run_line_magic("config", "ClaudeMagic.max_tokens = 5")
    shell.run_line_magic("config", "ClaudeMagic.thinking = 'off'")  # max_tokens cuts the text, not thinking
    panel.send("count for me")
    state = panel.wait(30)
    assert state is not None and state.stop_reason == "max_tokens"
    shell.run_line_magic("config", "ClaudeMagic.max_tokens = None")
    shell.run_line_magic("config", "ClaudeMagic.thinking = ''")
    assert panel.continue_answer()
    state = panel.wait(30)
    assert state is not None and state.error is None, state.error
    assert last_ok(emu)["messages"][-1] == {"role": "user", "content": CONTINUE_PROMPT}


def test_a_terminal_continuation_prints_only_the_rest(shell: Any, emu: Emulator,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, f"--model {OLDER} --max-tokens 5 --display terminal", "count for me")
    capsys.readouterr()
    run(shell, "--display terminal continue")
    out = capsys.readouterr().out
    assert out.startswith(" six seven") and "One two three" not in out


def test_how_thinking_blocks_are_drawn() -> None:
    from claude_magic.core.turn import Block, TurnState
    from claude_magic.render.view import answer_bundle, block_html

    streaming = Block("thinking", signature="")
    assert "Thinking…" in block_html(streaming, live=True) and "<details" not in block_html(streaming, live=True)
    done = Block("thinking", signature="sig", complete=True)
    assert block_html(done) == "" and block_html(done, live=True) == ""  # omitted: nothing once finished
    assert "redacted" in block_html(Block("redacted_thinking", data="x", complete=True))
    summary = Block("thinking", parts=["Weighing the options."], signature="sig", complete=True)
    assert "<details><summary>Thinking (21 characters)</summary>" in block_html(summary)
    # Between tool calls on the 5.5 models: the narration in its place, not a fold.
    state = TurnState(model=DEFAULT_MODEL, prompt="q", started_at=0.0, narrates_in_thinking=True, status="complete")
    state.blocks = [Block("tool_use", parts=["{}"], tool_id="t1", tool_name="lookup", complete=True),
                    Block("thinking", parts=["Now I compare the two."], signature="s", complete=True,
                          between_tools=True)]
    bundle = answer_bundle(state)
    assert "Now I compare the two." in bundle["text/html"] and "<details><summary>Thinking" not in bundle["text/html"]
    assert "[thinking]" not in bundle["text/plain"]


def test_between_tools_thinking_is_drawn_in_the_tool_flow(shell: Any, emu: Emulator) -> None:
    shell.user_ns["weather"] = offer("weather")
    run(shell, f"--model {DEFAULT_MODEL} --tools weather --out r", "weather in Paris?")
    state = shell.user_ns["r"].state
    kinds = [block.kind for block in state.blocks]
    call = kinds.index("tool_use")
    # The text before the call arrives as a thinking block after the message's up-front thinking.
    narration = [b for b in state.blocks[1:call] if b.kind == "thinking"]
    assert narration and all(block.between_tools and block.text for block in narration)
    assert not state.blocks[0].between_tools  # the up-front reasoning stays a fold
    html = shell.user_ns["r"]._repr_mimebundle_()["text/html"]
    for block in narration:
        assert f"Thinking ({len(block.text):,} characters)" not in html
    assert f"Thinking ({len(state.blocks[0].text):,} characters)" in html
