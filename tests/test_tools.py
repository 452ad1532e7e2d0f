"""Tools without a kernel: schemas from the SDK's beta_tool, result conversion, the loop's bookkeeping with a
fake clock, the emulator's tool rules, and the SDK's own recorded cut-off transcript replayed."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import pytest
from support import FAKE_API_KEY, run_coroutine

from claude_magic.core.engine import prepare_turn, run_exchange, run_exchange_async
from claude_magic.core.frames import NoFrames
from claude_magic.core.history import STORE
from claude_magic.core.tool_loop import ToolLoop, api_valid_prefix
from claude_magic.core.tools import (
    ToolSetupError,
    convert_result,
    describe_call,
    error_outcome,
    make_tool,
    make_toolset,
    resolve_names,
    tool_choice_param,
)
from claude_magic.core.turn import Block, TurnState, Usage
from claude_magic.emulator import Emulator
from claude_magic.emulator._errors import ApiError
from claude_magic.emulator._replies import example_input
from claude_magic.emulator._validate import sdk_models, validate_request
from claude_magic.render.view import answer_bundle
from claude_magic.settings import ClaudeMagic
from claude_magic.surfaces.terminal import TerminalSink

FIXTURES = Path(__file__).parent / "fixtures"
CUT_OFF_TRANSCRIPT = FIXTURES / "incomplete_partial_json_response.txt"  # anthropic-sdk-python's own recording


def get_weather(city: str, unit: str = "c") -> str:
    """Current weather for a city.

    Args:
        city: city name
        unit: "c" or "f"
    """
    return f"{city}: 21 {unit}"


# -- schemas ---------------------------------------------------------------------------------------------


def test_schema_comes_from_the_signature_and_docstring() -> None:
    tool = make_tool(get_weather)
    assert tool.definition["name"] == "get_weather"
    assert tool.definition["description"] == "Current weather for a city."
    schema = tool.definition["input_schema"]
    assert schema["required"] == ["city"]
    assert schema["properties"]["city"]["description"] == "city name"
    assert schema["properties"]["unit"]["default"] == "c"
    assert not tool.is_async


def test_async_functions_and_ready_dicts_are_tools() -> None:
    async def lookup(term: str) -> str:
        """Look a term up."""
        return term

    assert make_tool(lookup).is_async
    ready = make_tool({"name": "search", "description": "d", "input_schema": {"type": "object"}})
    assert ready.runner is None and ready.definition["name"] == "search"


def test_unusable_signatures_and_unknown_names_are_one_line() -> None:
    class Opaque:
        pass

    def bad(thing: Opaque) -> str:
        return ""

    with pytest.raises(ToolSetupError, match="'bad': its signature cannot become a JSON schema") as error:
        make_tool(bad)
    assert "\n" not in str(error.value)
    with pytest.raises(ToolSetupError, match="no function named 'nope'"):
        resolve_names("get_weather, nope", {"get_weather": get_weather})
    with pytest.raises(ToolSetupError, match="unique"):
        make_toolset([get_weather, get_weather])
    assert resolve_names("get_weather", {"get_weather": get_weather, "other": print}) == [get_weather]


def test_tool_choice() -> None:
    tools = make_toolset([get_weather])
    assert tool_choice_param("any", tools) == {"type": "any"}
    assert tool_choice_param("get_weather", tools) == {"type": "tool", "name": "get_weather"}
    with pytest.raises(ToolSetupError, match="no such tool"):
        tool_choice_param("lookup", tools)


# -- results ---------------------------------------------------------------------------------------------


class FakeFrame:
    """Duck-typed like a pandas DataFrame (the package never imports pandas)."""

    shape = (2, 2)
    columns = ("a", "b")
    iloc = None

    def to_string(self, **_: Any) -> str:
        return "   a  b\n0  1  2\n1  3  4"


class FakeImage:
    """Duck-typed like a PIL image."""

    mode = "RGB"
    size = (1, 1)

    def save(self, buffer: io.BytesIO, format: str) -> None:  # noqa: A002 - PIL's name
        buffer.write(b"\x89PNG\r\n\x1a\nfake")


def test_results_are_converted_by_kind() -> None:
    assert convert_result("sunny").content == "sunny"
    assert convert_result({"t": 21, "sky": "clear"}).content == '{"t": 21, "sky": "clear"}'
    table = convert_result(FakeFrame())
    assert table.kind == "table" and table.content.startswith("DataFrame, 2 rows × 2 columns")
    for image in (b"\x89PNG\r\n\x1a\n" + b"0" * 10, FakeImage()):
        outcome = convert_result(image)
        block = outcome.content[0]
        assert outcome.kind == "image" and block["type"] == "image"
        assert base64.b64decode(block["source"]["data"]).startswith(b"\x89PNG")
    assert convert_result(3 + 4j).content == "(3+4j)"


def test_long_results_are_cut_with_a_note_to_claude() -> None:
    outcome = convert_result("x" * 50, limit=10)
    assert outcome.content.startswith("x" * 10) and "the first 10 of 50 characters" in outcome.content
    assert outcome.truncated_for_claude and outcome.size == "50 characters"


def test_errors_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_API_KEY)
    outcome = error_outcome(ValueError(f"no such city (key {FAKE_API_KEY})"))
    assert outcome.is_error and outcome.content.startswith("ValueError: no such city")
    assert FAKE_API_KEY not in outcome.content and FAKE_API_KEY not in outcome.preview
    assert FAKE_API_KEY not in convert_result(f"env: {FAKE_API_KEY}").preview
    assert describe_call("get_weather", {"city": "Tokyo"}) == "get_weather(city='Tokyo')"


# -- the loop's bookkeeping ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def _tool_message(state: TurnState, calls: list[tuple[str, str, str]], *, stop: str = "tool_use") -> None:
    """Fold a finished assistant message with these (id, name, input JSON) calls into `state`."""
    state.blocks.append(Block("text", parts=["Checking."], complete=True))
    for tool_id, name, raw in calls:
        state.blocks.append(Block("tool_use", parts=[raw], tool_id=tool_id, tool_name=name, complete=True))
    state.stop_reason = stop
    state.status = "complete"
    state.usage = Usage(10, 5)


def test_a_round_runs_every_call_and_sends_all_results_in_one_message() -> None:
    calls: list[str] = []

    def record(city: str) -> str:
        """Record a city."""
        calls.append(city)
        if city == "Atlantis":
            raise LookupError("no such city")
        return city.upper()

    clock = FakeClock()
    request = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "q"}]}
    loop = ToolLoop(make_toolset([record]), request, max_rounds=2, clock=clock)
    state = TurnState(model="m", prompt="q", started_at=0.0)
    _tool_message(state, [("t1", "record", '{"city": "Oslo"}'), ("t2", "record", '{"city": "Atlantis"}'),
                          ("t3", "missing", "{}")])
    follow_up = loop.after_round(state, NoFrames())
    assert calls == ["Oslo", "Atlantis"]
    assert follow_up is not None
    results = follow_up["messages"][-1]
    assert results["role"] == "user"
    assert [r["tool_use_id"] for r in results["content"]] == ["t1", "t2", "t3"]
    assert results["content"][0] == {"type": "tool_result", "tool_use_id": "t1", "content": "OSLO"}
    assert results["content"][1]["is_error"] and "LookupError: no such city" in results["content"][1]["content"]
    assert "not available" in results["content"][2]["content"]
    views = [block.call for block in state.blocks if block.kind == "tool_result"]
    assert [view.status for view in views] == ["done", "error", "error"]
    assert views[0].elapsed == pytest.approx(0.5)  # one tick of the fake clock from start to finish
    # The next message streams into the same state: usage is summed, earlier blocks stay.
    assert state.tool_rounds == 1 and state.prior_usage == Usage(10, 5) and state.round_start == len(state.blocks)
    text = answer_bundle(state)["text/plain"]
    assert "record(city='Atlantis') raised LookupError: no such city" in text

    # Round two ends without tools: the whole exchange is committable, every tool_use answered.
    state.blocks.append(Block("text", parts=["Done."], complete=True))
    state.stop_reason, state.status, state.usage = "end_turn", "complete", Usage(20, 3)
    assert loop.after_round(state, NoFrames()) is None
    exchange = loop.committable("q")
    assert [m["role"] for m in exchange] == ["user", "assistant", "user", "assistant"]
    assert state.total_usage == Usage(30, 8)


def test_the_round_limit_ends_the_turn_with_one_line() -> None:
    request = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "q"}]}
    loop = ToolLoop(make_toolset([get_weather]), request, max_rounds=1, clock=FakeClock())
    state = TurnState(model="m", prompt="q", started_at=0.0)
    _tool_message(state, [("t1", "get_weather", '{"city": "Oslo"}')])
    assert loop.after_round(state, NoFrames()) is not None
    _tool_message(state, [("t2", "get_weather", '{"city": "Rome"}')])
    assert loop.after_round(state, NoFrames()) is None
    assert state.status == "error" and state.error is not None
    assert "Stopped after 1 tool round (max_tool_rounds)" in state.error.message
    assert "max_tool_rounds = 2" in state.error.message and "\n" not in state.error.message
    assert loop.committable("q") is None or loop.committable("q")[-1]["role"] == "assistant"


def test_api_valid_prefix_drops_unanswered_calls() -> None:
    use = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    text = {"type": "text", "text": "hi"}
    prompt = {"role": "user", "content": "q"}
    assert api_valid_prefix([prompt, {"role": "assistant", "content": [text, use]}]) == [
        prompt, {"role": "assistant", "content": [text]}]
    assert api_valid_prefix([prompt, {"role": "assistant", "content": [use]}]) is None
    results = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]}
    assert api_valid_prefix([prompt, {"role": "assistant", "content": [text, use]}, results,
                             {"role": "assistant", "content": [use]}]) == [prompt, {"role": "assistant",
                                                                                    "content": [text]}]


# -- the emulator's rules ----------------------------------------------------------------------------------

TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}


def _body(messages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"model": sdk_models()[0], "max_tokens": 10, "messages": messages, **extra}


@pytest.mark.parametrize(("body", "message"), [
    (_body([{"role": "user", "content": "q"}, {"role": "assistant", "content": [USE]},
            {"role": "user", "content": [RESULT]}]), "must define tools"),
    (_body([{"role": "user", "content": "q"}], tool_choice={"type": "any"}), "only be specified while providing"),
    (_body([{"role": "user", "content": "q"}], tools=[TOOL], tool_choice={"type": "tool", "name": "x"}),
     "not found"),
    (_body([{"role": "user", "content": "q"}], tools=[TOOL, TOOL]), "unique"),
    (_body([{"role": "user", "content": "q"}], tools=[{**TOOL, "name": "bad name<img>"}]), "pattern"),
    (_body([{"role": "user", "content": "q"}, {"role": "assistant", "content": [USE]},
            {"role": "user", "content": [{"type": "text", "text": "x"}, RESULT]}], tools=[TOOL]), "come first"),
    (_body([{"role": "user", "content": "q"}, {"role": "assistant", "content": [USE]},
            {"role": "user", "content": "no results"}], tools=[TOOL]), "without `tool_result`"),
    (_body([{"role": "user", "content": "q"}, {"role": "assistant", "content": [{**USE, "name": "other"}]},
            {"role": "user", "content": [RESULT]}], tools=[TOOL]), "not defined in tools"),
])
def test_emulator_rejects_what_the_api_rejects(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError, match=message) as error:
        validate_request(body, sdk_models())
    assert error.value.status == 400


def test_emulator_accepts_a_valid_tool_exchange() -> None:
    body = _body([{"role": "user", "content": "q"}, {"role": "assistant", "content": [USE]},
                  {"role": "user", "content": [RESULT, {"type": "text", "text": "and?"}]}], tools=[TOOL],
                 tool_choice={"type": "none"})
    assert validate_request(body, sdk_models()) is body


def test_default_reply_arguments_fit_the_schema() -> None:
    schema = make_tool(get_weather).definition["input_schema"]
    assert example_input(schema) == {"city": "Paris"}
    assert example_input({"type": "object", "required": ["n", "tags", "mode"], "properties": {
        "n": {"type": "integer", "minimum": 3}, "tags": {"type": "array", "items": {"type": "string"}},
        "mode": {"enum": ["fast", "slow"]}}}) == {"n": 3, "tags": [], "mode": "fast"}


# -- through the real SDK and the emulator -----------------------------------------------------------------


@pytest.fixture
def sdk_env(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    yield emulator
    for name in STORE.names():
        STORE.get(name).reset()


def test_recorded_cut_off_tool_call_is_shown_never_run_and_history_stays_valid(sdk_env: Emulator) -> None:
    """anthropic-sdk-python's own transcript: a tool call whose JSON max_tokens cut off (no
    content_block_stop). Before tools existed here, committing it raised JSONDecodeError."""
    ran: list[Any] = []

    def make_file(filename: str, lines_of_text: list[str]) -> str:
        """Write a file."""
        ran.append(filename)
        return "ok"

    sdk_env.set_script({"turns": [{"match": "tax guide", "replay": str(CUT_OFF_TRANSCRIPT)}],
                        "models": ["claude-3-7-sonnet-20250219"]})
    out = io.StringIO()
    for tools in (None, [make_file]):
        STORE.get().reset()
        turn = prepare_turn("Write a tax guide", ClaudeMagic(), tools=tools)
        state = run_exchange(turn, TerminalSink(out))
        assert state.status == "complete" and state.stop_reason == "max_tokens"
        assert ran == []
        assert "cut off by max_tokens: incomplete input, not run" in out.getvalue()
        assert STORE.get().messages[-1]["content"] == [{"type": "text", "text": (
            "I'll create a comprehensive tax guide for someone with multiple W2s and save it in a file "
            "called taxes.txt. Let me do that for you now.")}]
    # The turn can be continued: the next request is one the emulator (like the API) accepts.
    sdk_env.set_script({"turns": [{"content": "Continuing."}]})
    state = run_exchange(prepare_turn("Go on", ClaudeMagic()), None)
    assert state.status == "complete", state.error


def test_a_plain_turn_after_a_tool_turn_is_accepted(sdk_env: Emulator) -> None:
    state = run_exchange(prepare_turn("Weather?", ClaudeMagic(), tools=[get_weather]), None)
    assert state.status == "complete" and state.tool_rounds == 1
    turn = prepare_turn("Thanks. Anything else?", ClaudeMagic())
    assert turn.request["tool_choice"] == {"type": "none"}
    assert [t["name"] for t in turn.request["tools"]] == ["get_weather"]
    state = run_exchange(turn, None)
    assert state.status == "complete", state.error
    assert os.environ["ANTHROPIC_API_KEY"] not in answer_bundle(state)["text/html"]


@pytest.mark.parametrize("streaming", ["sync", "async"])
def test_a_paused_tool_turn_goes_on_and_history_keeps_one_assistant_message(sdk_env: Emulator, streaming: str) -> None:
    """stop_reason pause_turn after a tool round: the exchange so far goes back, ending with the paused
    message, and what the API sends next joins that message, in the request and in history."""
    call = {"type": "tool_use", "id": "toolu_p", "name": "get_weather", "input": {"city": "Oslo"}}
    sdk_env.set_script({"turns": [
        {"match": "Archive weather", "content": [call]},
        {"match": "Oslo: 21 c", "content": "Searching the archive…", "stop_reason": "pause_turn", "times": 1},
        {"match": "Oslo: 21 c", "content": "Oslo was 21 °C in 1887 too."},
    ]})
    turn = prepare_turn("Archive weather for Oslo?", ClaudeMagic(), tools=[get_weather])
    state = run_exchange(turn, None) if streaming == "sync" else run_coroutine(run_exchange_async(turn, None))

    assert state.status == "complete" and state.stop_reason == "end_turn", state.error
    assert state.tool_rounds == 1
    resumed = sdk_env.requests[-1]
    assert [r.status for r in sdk_env.requests] == [200, 200, 200]
    assert [m["role"] for m in resumed.messages] == ["user", "assistant", "user", "assistant"]
    # The paused message goes back as received: the default model's thinking first (signature only), then text.
    paused = resumed.messages[-1]
    assert paused["role"] == "assistant" and [b["type"] for b in paused["content"]] == ["thinking", "text"]
    assert paused["content"][1] == {"type": "text", "text": "Searching the archive…"}
    stored = STORE.get().messages
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert [b["text"] for b in stored[-1]["content"] if b["type"] == "text"] == [
        "Searching the archive…", "Oslo was 21 °C in 1887 too."]
    assert stored[-1]["content"][0]["type"] == "thinking"
    # The API accepts that history back.
    assert run_exchange(prepare_turn("Thanks.", ClaudeMagic()), None).status == "complete"
    assert sdk_env.requests[-1].status == 200


def test_content_blocks_are_sent_as_blocks_and_cut_to_the_limit() -> None:
    """An MCP tool's result (core.mcp): already content blocks; text within the limit, other blocks as they are."""
    from claude_magic.core.tools import ContentBlocks

    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    outcome = convert_result(ContentBlocks([{"type": "text", "text": "a" * 30}, image,
                                            {"type": "text", "text": "b" * 30}]), limit=40)
    assert outcome.content[1] == image and outcome.content[0] == {"type": "text", "text": "a" * 30}
    assert outcome.content[2]["text"].startswith("b" * 10 + "\n[truncated by claude_magic: the first 10 of 30")
    assert outcome.truncated_for_claude and not outcome.is_error
    assert outcome.size == "60 characters and 1 image block" and outcome.preview == "a" * 30 + "\n" + "b" * 30


def test_the_sdks_tool_error_sends_its_content() -> None:
    """`anthropic.lib.tools.ToolError` (an MCP tool's isError result, or a function's own): its content goes to
    Claude as it is, with is_error, as the SDK's tool runner sends it; no exception name in front."""
    from anthropic.lib.tools import ToolError

    outcome = error_outcome(ToolError([{"type": "text", "text": "quota exceeded"}]))
    assert outcome.is_error and outcome.content == [{"type": "text", "text": "quota exceeded"}]
    assert outcome.preview == "quota exceeded" and outcome.traceback == ""
    assert error_outcome(ToolError("plain text")).content == [{"type": "text", "text": "plain text"}]
