"""The raw view (`%%claude --raw`, `ask(display="events")`) in this process: one line per event as it came
over the wire, pings included, checked against the events the emulator actually sends."""

from __future__ import annotations

import io
import json
import re
import time
import urllib.request
from typing import Any

import anthropic
import pytest
from IPython.core.error import UsageError
from support import FAKE_API_KEY, run_coroutine

import claude_magic
from claude_magic.core.client import ClientSettings, get_client
from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.core.stream import run_turn
from claude_magic.core.throttle import Throttle
from claude_magic.core.turn import TurnState
from claude_magic.core.wire_events import LINE_CHARS, PAYLOAD_CHARS, event_line
from claude_magic.emulator import Emulator
from claude_magic.render.events_view import EventsView, events_bundle
from claude_magic.surfaces.sinks import FinalCellSink, LiveCellSink
from claude_magic.surfaces.terminal import TerminalEventsSink


@pytest.fixture(autouse=True)
def thinking_as_the_model_sends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare the client's stream with the model's own defaults: thinking display omitted (a
    signature-only thinking block), not the summarized reasoning claude_magic asks for by default. Kernels
    started by the tests inherit it."""
    monkeypatch.setenv("CLAUDE_MAGIC_THINKING_DISPLAY", "omitted")


WORDS = " ".join(f"w{i}" for i in range(120))  # 120 tokens: 120 deltas, so pings come after 50 and 100
HOSTILE = "Hi \x1b]52;c;cHduZWQ=\x07 <img src=x onerror=alert(1)> \u202eevil"
SCRIPT = {
    "turns": [
        {"match": "count words", "content": WORDS},
        {"match": "hostile", "content": HOSTILE},
        {"match": "rate limited", "times": 1, "fault": {"kind": "http", "status": 429, "retry_after": 0}},
        {"match": "rate limited", "content": "Finally."},
        {"match": "breaks off", "content": WORDS,
         "fault": {"kind": "error_event", "after_tokens": 5, "error_type": "overloaded_error",
                   "message": "Overloaded"}},
        {"match": "echo key", "fault": {"kind": "http", "status": 400, "echo_api_key": True,
                                        "message": "bad header"}},
        {"match": "weather in Oslo", "content": [
            {"type": "tool_use", "id": "toolu_oslo", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"match": "Oslo: sunny", "content": "It is sunny in Oslo."},
    ]
}
LINE = re.compile(r"^ *\+\d+\.\d{3}s  (?P<name>HTTP \d{3}|no response|\S+)(?: +(?P<detail>.*))?$")


def names(lines: list[str]) -> list[str]:
    """The event-type column of each line."""
    found = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"not an event line: {line!r}"
        found.append(match["name"])
    return found


def wire_event_names(emulator: Emulator, prompt: str) -> list[str]:
    """What the emulator sends for `prompt`, read straight off the socket: the `event:` field of each SSE."""
    body = json.dumps({"model": DEFAULT_MODEL, "max_tokens": 4096, "stream": True,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    request = urllib.request.Request(f"{emulator.base_url}/v1/messages", data=body, method="POST", headers={
        "content-type": "application/json", "x-api-key": FAKE_API_KEY, "anthropic-version": "2023-06-01"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return [line[len("event: "):] for line in text.splitlines() if line.startswith("event: ")]


def run(shell: Any, cell: str) -> None:
    result = shell.run_cell(cell)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec


@pytest.fixture
def emu(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=0, chunk_tokens=1)
    return emulator


# -- one line per event -------------------------------------------------------------------------------


def test_each_event_kind_gets_a_compact_line() -> None:
    def line(name: str, data: dict[str, Any]) -> str:
        return event_line(name, json.dumps(data), 1.5)

    start = line("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 12, "output_tokens": 1}}})
    assert start == "  +1.500s  message_start        id=msg_1 model=claude-x input_tokens=12 output_tokens=1"
    assert line("ping", {"type": "ping"}) == "  +1.500s  ping"
    assert line("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}).endswith(
        "content_block_start  #1 tool_use get_weather id=toolu_1")
    assert line("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "text_delta", "text": "Hello"}}).endswith('content_block_delta  #0 text_delta "Hello"')
    assert line("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
        "type": "input_json_delta", "partial_json": '{"city": "Par'}}).endswith(
        r'#1 input_json_delta "{\"city\": \"Par"')
    long_text = "x" * (PAYLOAD_CHARS + 60)
    cut = line("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "thinking_delta", "thinking": long_text}})
    assert cut.endswith(f'#0 thinking_delta "{"x" * PAYLOAD_CHARS}"… ({len(long_text)} chars)')
    assert line("content_block_stop", {"type": "content_block_stop", "index": 2}).endswith("content_block_stop   #2")
    assert line("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens",
                                                                      "stop_sequence": None},
                                  "usage": {"output_tokens": 40}}).endswith(
        "message_delta        stop_reason=max_tokens output_tokens=40")
    assert line("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).endswith(
        'error                overloaded_error "Overloaded"')
    assert line("future_event", {"type": "future_event", "x": 1}).endswith('future_event         "{\\"x\\": 1}"')
    assert event_line("content_block_delta", "{not json", 0.0).endswith('content_block_delta  "{not json"')
    assert len(event_line("message_start", json.dumps({"message": {"id": "i" * 1000}}), 0.0)) == LINE_CHARS


def test_lines_are_printable_and_never_show_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_API_KEY)
    hostile = event_line("content_block_delta", json.dumps({"index": 0, "delta": {
        "type": "text_delta", "text": "\x1b[2J\x9b\u202e\u2028"}}), 0.0)
    assert hostile.isprintable()
    assert r'"\u001b[2J\u009b\u202e\u2028"' in hostile
    # A key echoed by a server is removed before the payload is cut, so not even its start shows.
    echoed = event_line("error", json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "message": f"header x-api-key: {FAKE_API_KEY} is wrong"}}), 0.0)
    assert FAKE_API_KEY[:12] not in echoed and "[redacted]" in echoed


# -- against the emulator -------------------------------------------------------------------------------


def test_terminal_raw_view_matches_the_wire(shell: Any, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    wire = wire_event_names(emu, "count words")
    assert wire.count("ping") >= 3  # after message_start, after 50 and after 100 deltas
    run(shell, "%%claude --raw\ncount words")
    out = capsys.readouterr().out
    lines, _, footer = out.rstrip("\n").rpartition("\n\n")
    lines_list = lines.splitlines()
    assert names(lines_list) == ["HTTP 200", *wire]
    deltas = [line for line in lines_list if "text_delta" in line]  # (the thinking block's is a signature_delta)
    assert [json.loads(line.split("text_delta ", 1)[1]) for line in deltas] == [
        word if i == 0 else f" {word}" for i, word in enumerate(WORDS.split())]
    assert "request-id=req_emu_" in lines_list[0]
    assert "stop_reason=end_turn" in lines_list[-2]
    # The output tokens are the 120 words and the default model's thinking before them, as the wire said.
    with anthropic.Anthropic(base_url=emu.base_url, api_key=FAKE_API_KEY, max_retries=0) as client:
        expected = client.messages.create(model=DEFAULT_MODEL, max_tokens=4096,
                                          messages=[{"role": "user", "content": "count words"}]).usage.output_tokens
    assert "stop_reason: end_turn" in footer and f"{expected} out" in footer and expected > 120
    # The turn is an ordinary one: its answer went to history.
    assert claude_magic.ask("count words", display="none").text == WORDS
    assert [m["role"] for m in emu.requests[-1].messages] == ["user", "assistant", "user"]


def test_a_retry_and_an_error_event_are_lines_too(shell: Any, emu: Emulator,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%config ClaudeMagic.max_retries = 1")
    run(shell, "%%claude --raw\nrate limited")
    out = capsys.readouterr().out
    assert "[Rate limited (429)" in out  # the retry notice, between the two requests' lines
    lines = [line for line in out.splitlines() if LINE.match(line)]
    assert names(lines[:2]) == ["HTTP 429", "HTTP 200"]
    assert "rate_limit_error" in lines[0]
    run(shell, "%%claude --raw --no-raise\nbreaks off")
    out = capsys.readouterr().out
    event_lines = [line for line in out.splitlines() if LINE.match(line)]
    assert names(event_lines)[-1] == "error"
    assert event_lines[-1].endswith('overloaded_error "Overloaded"')
    assert sum("text_delta" in line for line in event_lines) == 5
    assert "partial answer kept" in out


def test_a_failed_request_line_hides_the_key(shell: Any, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%%claude --raw --no-raise\necho key")
    out = capsys.readouterr().out
    assert names(out.splitlines()[:1]) == ["HTTP 400"]
    assert FAKE_API_KEY not in out and FAKE_API_KEY[:12] not in out


def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: city name
    """
    return f"{city}: sunny"


def test_each_tool_round_is_a_request_of_its_own(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    reply = claude_magic.ask("What is the weather in Oslo?", tools=[get_weather], display="events",
                             conversation="raw-tools")
    assert reply.text == "It is sunny in Oslo."
    lines = [line for line in capsys.readouterr().out.splitlines() if LINE.match(line)]
    seen = names(lines)
    assert seen.count("HTTP 200") == 2 and seen.count("message_stop") == 2
    second = seen.index("HTTP 200", 1)
    assert seen[second - 1] == "message_stop"  # the second request starts after the first message ended
    # (after the default model's thinking block)
    assert any(re.search(r"content_block_start  #\d tool_use get_weather id=toolu_oslo$", line) for line in lines)
    assert any("input_json_delta" in line for line in lines[:second])
    assert "stop_reason=tool_use" in lines[seen.index("message_delta")]


def test_raw_and_text_format_are_one_or_the_other(shell: Any, emu: Emulator) -> None:
    with pytest.raises(UsageError, match="--raw .* use one of them"):
        run(shell, "%%claude --raw -f text\ncount words")
    assert emu.requests == []


def test_ask_async_events_view(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    wire = wire_event_names(emu, "count words")
    reply = run_coroutine(claude_magic.ask_async("count words", display="events", conversation="raw-async"))
    assert reply.text == WORDS
    lines = capsys.readouterr().out.rstrip("\n").rpartition("\n\n")[0].splitlines()
    assert names(lines) == ["HTTP 200", *wire]


# -- the cell sinks, live and final ---------------------------------------------------------------------


class Publisher:
    """Applies display calls as an output area does; keeps every state the area went through."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[str, str]] = {}
        self.order: list[str] = []
        self.clear_pending = False
        self.states: list[str] = []

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None:
        if self.clear_pending:
            self.outputs, self.order, self.clear_pending = {}, [], False
        key = display_id or f"anonymous-{len(self.order)}"
        self.outputs[key] = bundle
        self.order.append(key)
        self._seen()

    def update(self, bundle: dict[str, str], display_id: str) -> None:
        self.outputs[display_id] = bundle
        self._seen()

    def clear(self) -> None:
        self.clear_pending = True

    def flush(self) -> None:
        pass

    def _seen(self) -> None:
        self.states.append("".join(self.outputs[key].get("text/html", "") for key in self.order))


def stream_with(sink: Any, prompt: str) -> TurnState:
    client = get_client(ClientSettings())
    state = TurnState(model=DEFAULT_MODEL, prompt=prompt, started_at=time.monotonic())
    request = {"model": DEFAULT_MODEL, "max_tokens": 4096, "messages": [{"role": "user", "content": prompt}]}
    return run_turn(client, request, state, sink, throttle=Throttle(0.02), max_retries=0)


def test_live_cell_sink_grows_then_ends_as_the_final_bundle(emu: Emulator) -> None:
    emu.set_pace(tokens_per_second=400, chunk_tokens=1)
    publisher = Publisher()
    state = stream_with(LiveCellSink(publisher, "raw", events=True), "count words")
    assert state.status == "complete" and state.events is not None
    counts = [state_html.count("content_block_delta") for state_html in publisher.states[:-1]]
    growing = [n for i, n in enumerate(counts) if n and all(n > m for m in counts[:i])]
    assert len(growing) >= 4, f"the events must appear in several frames, saw {counts}"
    final = publisher.outputs[publisher.order[-1]]
    assert len(publisher.outputs) == 1 and final == events_bundle(state)
    assert final["text/plain"].split("\n\n")[0].splitlines() == state.events
    assert names(state.events).count("ping") >= 3
    assert "claude-magic-footer" in final["text/html"]


def test_final_cell_sink_escapes_everything(emu: Emulator) -> None:
    publisher = Publisher()
    state = stream_with(FinalCellSink(publisher, events=True), "hostile")
    assert len(publisher.states) == 1  # one display_data, as nbval records it
    html_out = publisher.outputs[publisher.order[0]]["text/html"]
    # The tag arrives as deltas " <", "img", ...: each is escaped (quotes included) on its line.
    assert "<img" not in html_out and "&quot; &lt;&quot;" in html_out and ")&gt;&quot;" in html_out
    assert "\x1b" not in html_out and "\u202e" not in html_out and r"\u202e" in html_out
    assert all(line.isprintable() for line in state.events or [])


def test_events_view_hands_out_each_line_once() -> None:
    state = TurnState(model="m", prompt="p", started_at=0.0, events=[])
    view = EventsView()
    frozen, tail = view.advance(state)
    assert frozen is None and "Waiting for Claude" in tail.html
    state.events = ["a <b>", "b"]
    frozen, tail = view.advance(state)
    assert frozen is not None and frozen.text == "a <b>\nb\n" and "a &lt;b&gt;" in frozen.html
    assert tail.html == ""
    state.events.append("c")
    frozen, _ = view.advance(state)
    assert frozen is not None and frozen.text == "c\n"
    assert view.advance(state)[0] is None


def test_terminal_events_sink_writes_lines_once() -> None:
    out = io.StringIO()
    sink = TerminalEventsSink(out)
    state = TurnState(model="m", prompt="p", started_at=0.0)
    sink.start(state)
    assert state.events == []
    state.events.extend(["one", "two"])
    sink.frame(state)
    state.events.append("three")
    sink.frame(state)
    state.status, state.finished_at = "complete", 1.0
    sink.finish(state)
    assert out.getvalue().startswith("one\ntwo\nthree\n\nm · ")
    assert out.getvalue().count("three") == 1
