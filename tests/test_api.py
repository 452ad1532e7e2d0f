"""The engine with each sink and the Python API (ask, ask_async, map, Reply) in this process, against
the emulator through the real SDK."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import pytest
from support import after_thinking, run_coroutine

import claude_magic
from claude_magic.core import engine as _engine
from claude_magic.core.history import STORE
from claude_magic.emulator import Emulator
from claude_magic.settings import ClaudeMagic, current_settings
from claude_magic.surfaces.panel import _TurnView
from claude_magic.surfaces.sinks import FinalCellSink, LiveCellSink, TerminalSink

CODE_ANSWER = (
    "Here is how:\n\n```python\nprint('hi')\n```\n\nand in a shell:\n\n```bash\necho hi\n```\n\n"
    "    indented block\n\nDone. Not code: `inline`."
)
SCRIPT = {
    "turns": [
        {"match": "capital of France", "content": "Paris is the capital.", "usage": {"input_tokens": 11,
                                                                                     "output_tokens": 5}},
        {"match": "show code", "content": CODE_ANSWER},
        {"match": "break with 400", "fault": {"kind": "http", "status": 400, "message": "bad input"}},
        {"match": "rate limited", "times": 1, "fault": {"kind": "http", "status": 429, "retry_after": 1}},
        {"match": "long answer", "generate": {"tokens": 300, "seed": 4}},
        {"match": "item", "content": "An item answer."},
    ]
}


class RecordingPublisher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None:
        self.calls.append(("display", bundle))

    def update(self, bundle: dict[str, str], display_id: str) -> None:
        self.calls.append(("update", bundle))

    def clear(self) -> None:
        self.calls.append(("clear", None))

    def flush(self) -> None:
        pass


@pytest.fixture
def emu(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    return emulator


@pytest.fixture(autouse=True)
def fresh_history() -> Any:
    yield
    for name in STORE.names():
        STORE.get(name).reset()


# -- the engine, with each sink ---------------------------------------------------------------------------


def _turn(prompt: str, **kwargs: Any) -> _engine.PreparedTurn:
    return _engine.prepare_turn(prompt, ClaudeMagic(), **kwargs)


@pytest.mark.parametrize("kind", ["final", "live", "terminal", "panel", "none"])
def test_engine_runs_one_exchange_on_every_sink(emu: Emulator, kind: str) -> None:
    publisher = RecordingPublisher()
    out = io.StringIO()
    sink: Any = {"final": lambda: FinalCellSink(publisher), "live": lambda: LiveCellSink(publisher, "t"),
                 "terminal": lambda: TerminalSink(out), "panel": _TurnView, "none": lambda: None}[kind]()
    # The default model starts its answer with a thinking block; under display omitted (the model's own
    # default) it carries only a signature, and every sink shows nothing of it.
    turn = _turn("What is the capital of France?", conversation=f"engine-{kind}", thinking_display="omitted")
    state = _engine.run_exchange(turn, sink)
    assert state.status == "complete" and turn.committed
    assert state.final_message is not None and state.final_message.content[-1].text == "Paris is the capital."
    thinking, *answer = STORE.get(f"engine-{kind}").messages[-1]["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "" and thinking["signature"]
    assert answer == [{"type": "text", "text": "Paris is the capital."}]
    if kind in ("final", "live"):
        assert publisher.calls[-1][1]["text/plain"].startswith("Paris is the capital.")
        assert "Thinking" not in publisher.calls[-1][1]["text/html"]
    elif kind == "terminal":
        assert out.getvalue().startswith("Paris is the capital.")
    elif kind == "panel":
        assert "Paris is the capital." in sink.box.children[0].value


def test_engine_failure_is_a_state_and_history_stays_unchanged(emu: Emulator) -> None:
    turn = _turn("please break with 400", conversation="engine-fail")
    state = _engine.run_exchange(turn, None)
    assert state.status == "error" and "Bad request (400): bad input" in state.error.message
    assert not turn.committed and STORE.get("engine-fail").messages == []


def test_engine_missing_key_is_a_setup_error_not_an_exception(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_magic.core import client as _client

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    _client.reset_clients()
    state = run_coroutine(_engine.run_exchange_async(_turn("hi"), None))
    assert state.error.kind == "setup" and "set ANTHROPIC_API_KEY" in state.error.message
    assert emu.requests == []


def test_one_off_turns_use_no_history(emu: Emulator) -> None:
    STORE.get().commit("earlier", [{"type": "text", "text": "answer"}])
    turn = _turn("What is the capital of France?", conversation=_engine.ONE_OFF)
    _engine.run_exchange(turn, None)
    assert emu.requests[-1].messages == [{"role": "user", "content": "What is the capital of France?"}]
    assert len(STORE.get()) == 1


def test_async_engine_retries_a_429_honouring_retry_after(emu: Emulator) -> None:
    started = time.monotonic()
    state = run_coroutine(_engine.run_exchange_async(_turn("rate limited"), None))
    assert state.status == "complete"
    assert time.monotonic() - started >= 0.9
    assert [r.status for r in emu.requests] == [429, 200]


def test_cancelling_an_async_turn_keeps_the_partial_marked(emu: Emulator) -> None:
    emu.set_pace(tokens_per_second=100)
    turn = _turn("Please write a long answer.", conversation="cancelled")

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(_engine.run_exchange_async(turn, None))
        while turn.state.tokens_so_far < 10:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_coroutine(cancel_midway())
    state = turn.state
    assert state.status == "interrupted" and state.has_content
    assert "Cancelled after" in state.error.message and "partial answer kept" in state.error.message
    assert STORE.get("cancelled").messages == []


# -- the Reply ---------------------------------------------------------------------------------------------


def test_reply_fields_and_code_blocks(emu: Emulator) -> None:
    reply = claude_magic.ask("show code", display="none", thinking_display="omitted")
    assert isinstance(reply, claude_magic.Reply)
    assert reply.text == CODE_ANSWER and reply.error is None and reply.ok
    assert reply.stop_reason == "end_turn" and reply.message.stop_reason == "end_turn"
    assert reply.usage.output_tokens == reply.message.usage.output_tokens > 0
    assert reply.code_blocks == [("python", "print('hi')\n"), ("bash", "echo hi\n"), ("", "indented block\n")]
    bundle = reply._repr_mimebundle_()
    assert after_thinking(bundle["text/plain"]).startswith(CODE_ANSWER) and "<pre" in bundle["text/html"]
    assert not hasattr(reply, "_repr_markdown_")  # unsanitized Markdown would reach a trusted renderer


def test_ask_raises_claude_error_with_the_reply_unless_told_not_to(emu: Emulator) -> None:
    with pytest.raises(claude_magic.ClaudeError, match=r"Bad request \(400\)") as caught:
        claude_magic.ask("please break with 400", display="none")
    assert caught.value.reply.error == str(caught.value)
    assert caught.value.__cause__ is None  # one line, not the SDK's traceback
    reply = claude_magic.ask("please break with 400", display="none", raise_on_error=False)
    assert reply.error is not None and reply.message is None and not reply.ok


def test_ask_continues_the_magics_conversation(shell: Any, emu: Emulator) -> None:
    shell.run_cell("%%claude\nWhat is the capital of France?")
    claude_magic.ask("and show code", display="none")
    assert [m["role"] for m in emu.requests[-1].messages] == ["user", "assistant", "user"]
    assert len(STORE.get()) == 2


def test_ask_reads_config_set_with_percent_config(shell: Any, emu: Emulator) -> None:
    shell.run_cell("%config ClaudeMagic.max_tokens = 33")
    assert current_settings().max_tokens == 33
    claude_magic.ask("What is the capital of France?", display="none")
    assert emu.requests[-1].body["max_tokens"] == 33


def test_config_lists_the_settings(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell("%config")
    assert "ClaudeMagic" in capsys.readouterr().out
    shell.run_cell("%config ClaudeMagic")
    listed = capsys.readouterr().out
    for name in ("model", "max_tokens", "display_mode", "emulator_script", "raise_on_error"):
        assert f"ClaudeMagic.{name}" in listed


def test_ask_async_returns_the_same_reply(emu: Emulator) -> None:
    reply = run_coroutine(claude_magic.ask_async("What is the capital of France?", display="none"))
    assert reply.text == "Paris is the capital." and reply.usage.input_tokens == 11


# -- map -----------------------------------------------------------------------------------------------


def test_map_keeps_order_bounds_concurrency_and_survives_failures(emu: Emulator,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    emu.set_pace(tokens_per_second=200)
    prompts = [f"item {i}: a long answer" if i % 3 else f"item {i}" for i in range(9)]
    prompts[4] = "please break with 400"
    emu.reset_peak_streams()
    replies = claude_magic.map(prompts, concurrency=3, max_tokens=60)
    assert len(replies) == 9
    assert emu.peak_streams == 3
    assert replies[4].error is not None and "Bad request" in replies[4].error
    assert all(r.ok for i, r in enumerate(replies) if i != 4)
    by_prompt = {r.messages[0]["content"]: r for r in emu.requests if r.status == 200}
    for prompt, reply in zip(prompts, replies, strict=True):
        if prompt in by_prompt:
            assert reply.state.prompt == prompt
    assert replies[0].text == "An item answer."
    assert "9 prompts · 8 done · 1 failed" in capsys.readouterr().out
    assert STORE.names() == [] or all(len(STORE.get(n)) == 0 for n in STORE.names())


def test_map_inside_a_running_event_loop_uses_a_private_one(emu: Emulator) -> None:
    async def in_a_cell() -> list[claude_magic.Reply]:
        return claude_magic.map(("item a", "item b"), display="none")  # a tuple: any iterable of strings

    replies = run_coroutine(in_a_cell())
    assert [r.text for r in replies] == ["An item answer.", "An item answer."]


def test_map_rate_limit_holds_the_batch_then_succeeds(emu: Emulator) -> None:
    replies = claude_magic.map(["rate limited", "item 1", "item 2"], concurrency=1, display="none")
    assert all(r.ok for r in replies)
    assert [r.status for r in emu.requests] == [429, 200, 200, 200]


def test_map_rejects_what_is_not_a_string(emu: Emulator) -> None:
    with pytest.raises(TypeError, match="item 1 is int"):
        claude_magic.map(["item", 3], display="none")  # type: ignore[list-item]
    assert emu.requests == []


def test_map_async_on_the_callers_loop(emu: Emulator) -> None:
    replies = run_coroutine(claude_magic.map_async(["item x"], display="none"))
    assert replies[0].text == "An item answer."
