"""The emulator, exercised through the real ``anthropic`` SDK (and raw HTTP where the SDK hides details)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from support import run_coroutine

from claude_magic.emulator import (
    Emulator,
    ScriptError,
    count_tokens,
    generate_markdown,
    load_script,
    tokenize,
)

# The wire mechanics (event order, faults, pacing) on a model that answers in plain text unless asked to think;
# what each model's answers look like (thinking first, bound signatures) is in test_emulator_models.py.
MODEL = "claude-haiku-4-5"
KEY = "sk-test-secret-key-123"
HELPER_EVENTS = {"text", "thinking", "signature", "input_json", "citation"}
# How a caller sees a broken connection or a silence past the read timeout: the HTTP library's exception,
# or the SDK's wrapping of it (SDK 2.17 wraps what 2.11 let through). Which one a release raises is the
# SDK's business, so the tests accept both families and assert what the emulator did instead.
CONNECTION_LOST = (httpx2.TransportError, anthropic.APIConnectionError)
TIMED_OUT = (httpx2.TimeoutException, anthropic.APITimeoutError)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


_clients: list[anthropic.Anthropic] = []


def client_for(emu: Emulator, **kwargs: Any) -> anthropic.Anthropic:
    """A real SDK client aimed at ``emu``, without retries unless asked; closed after the test."""
    kwargs.setdefault("max_retries", 0)
    client = anthropic.Anthropic(base_url=emu.base_url, api_key=KEY, **kwargs)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def wait_until(condition: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def collect_text(emu: Emulator, received: list[str], **kwargs: Any) -> None:
    """Stream through the SDK helper into ``received``; what arrived before an error stays there."""
    kwargs = {"model": MODEL, "max_tokens": 50, "messages": user("x"), **kwargs}
    with client_for(emu, timeout=kwargs.pop("timeout", 10.0)).messages.stream(**kwargs) as stream:
        received.extend(stream.text_stream)


def raw_sse(emu: Emulator, body: dict[str, Any]) -> tuple[httpx2.Response, list[tuple[str, str]]]:
    """POST a streaming request with plain httpx2 and split the body into (event, data) pairs."""
    with httpx2.Client() as http:
        response = http.post(f"{emu.base_url}/v1/messages", json={**body, "stream": True}, headers={"x-api-key": KEY})
    events = re.findall(r"event: (.*)\ndata: (.*)\n\n", response.text)
    return response, events


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator
        # Every test must leave no response half-written behind.
        assert wait_until(lambda: emulator.active_streams == 0)


# ---------------------------------------------------------------------------------------------------
# Tokenizer and generated text


def test_tokenize_round_trips_and_splits_long_words() -> None:
    text = "Hello, world!  Internationalization\n\n```py\nx = 1\n```\n"
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert tokens[:4] == ["Hello", ",", " world", "!"]
    assert tokens[4:7] == ["  Internat", "ionaliza", "tion"]
    assert tokens[-1] == "\n"
    assert tokenize("") == []


@pytest.mark.parametrize("tokens", [1, 2, 7, 150, 8000])
def test_generate_markdown_has_exact_length_and_is_deterministic(tokens: int) -> None:
    text = generate_markdown(tokens, seed=3)
    assert count_tokens(text) == tokens
    assert generate_markdown(tokens, seed=3) == text
    if tokens >= 8000:
        assert generate_markdown(tokens, seed=4) != text
        assert "\n## " in text and "\n- " in text and "\n```" in text
        assert text.count("```") % 2 == 0  # no code fence left open


# ---------------------------------------------------------------------------------------------------
# Streaming through the SDK


def test_stream_helper_event_order_and_text(emu: Emulator) -> None:
    emu.set_script({"turns": [{"match": "hi", "content": "Hello there, friend."}]})
    with client_for(emu).messages.stream(model=MODEL, max_tokens=100, messages=user("hi")) as stream:
        types = [event.type for event in stream]
        message = stream.get_final_message()
        request_id = stream.request_id
    # "Hello", " there", ",", " friend", "." -> five deltas, each followed by the SDK's own "text" event.
    assert types == (
        ["message_start", "content_block_start"]
        + ["content_block_delta", "text"] * 5
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there, friend."
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    assert message.id.startswith("msg_emu_")
    assert re.fullmatch(r"req_emu_[0-9a-f]{24}", request_id or "")
    assert emu.requests[-1].request_id == request_id


def test_raw_create_stream_event_order(emu: Emulator) -> None:
    emu.set_script({"pace": {"chunk_tokens": 2}, "turns": [{"content": "one two three"}]})
    stream = client_for(emu).messages.create(model=MODEL, max_tokens=50, messages=user("x"), stream=True)
    events = list(stream)
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e.delta.text for e in events if e.type == "content_block_delta"] == ["one two", " three"]
    start = events[0].message
    assert start.content == [] and start.stop_reason is None and start.usage.output_tokens == 1
    assert events[-2].usage.output_tokens == 3


def test_wire_format_headers_and_pings(emu: Emulator) -> None:
    emu.set_script({"turns": [{"generate": {"tokens": 120, "seed": 1}}]})
    response, events = raw_sse(emu, {"model": MODEL, "max_tokens": 500, "messages": user("x")})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert re.fullmatch(r"req_emu_[0-9a-f]{24}", response.headers["request-id"])
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names.count("content_block_delta") == 120
    assert names.count("ping") == 1 + 120 // 50
    for name, data in events:
        assert json.loads(data)["type"] == name  # every data line is one JSON object naming its event


def test_thinking_redacted_and_tool_use(emu: Emulator) -> None:
    tool_input = {"city": "Paris", "units": "metric", "days": [1, 2, 3], "note": 'quote " and ünïcode'}
    emu.set_script(
        {
            "turns": [
                {
                    "content": [
                        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig-abc"},
                        {"type": "redacted_thinking", "data": "EncryptedBlob=="},
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": tool_input},
                    ]
                }
            ]
        }
    )
    with client_for(emu).messages.stream(model=MODEL, max_tokens=500, messages=user("weather?")) as stream:
        events = list(stream)
        message = stream.get_final_message()
    thinking, redacted, text, tool = message.content
    assert thinking.type == "thinking" and thinking.thinking == "The user wants weather."
    assert thinking.signature == "sig-abc"
    assert redacted.type == "redacted_thinking" and redacted.data == "EncryptedBlob=="
    assert text.type == "text" and text.text == "Checking."
    assert tool.type == "tool_use" and tool.id == "toolu_1" and tool.name == "get_weather"
    assert tool.input == tool_input
    assert message.stop_reason == "tool_use"  # default when the reply calls a tool
    json_deltas = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.index == 3]
    assert json_deltas[0] == "" and len(json_deltas) > 3
    assert json.loads("".join(json_deltas)) == tool_input
    signatures = [e for e in events if e.type == "content_block_delta" and e.delta.type == "signature_delta"]
    assert len(signatures) == 1


def test_usage_and_stop_reason_from_script(emu: Emulator) -> None:
    usage = {"input_tokens": 12, "output_tokens": 40, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3}
    emu.set_script(
        {"turns": [{"content": "Done.", "stop_reason": "stop_sequence", "stop_sequence": "END", "usage": usage}]}
    )
    with client_for(emu).messages.stream(model=MODEL, max_tokens=100, messages=user("x")) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"
    assert message.usage.input_tokens == 12 and message.usage.output_tokens == 40
    assert message.usage.cache_read_input_tokens == 7 and message.usage.cache_creation_input_tokens == 3


def test_max_tokens_truncates_and_stop_sequences_cut(emu: Emulator) -> None:
    emu.set_script({"turns": [{"content": "one two three four five six seven"}]})
    client = client_for(emu)
    with client.messages.stream(model=MODEL, max_tokens=3, messages=user("x")) as stream:
        message = stream.get_final_message()
    assert message.content[0].text == "one two three"
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3
    cut = client.messages.create(model=MODEL, max_tokens=50, messages=user("x"), stop_sequences=["four", "six"])
    assert cut.content[0].text == "one two three "
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == "four"


def test_generate_streams_requested_length(emu: Emulator) -> None:
    emu.set_script({"turns": [{"generate": {"tokens": 3000, "seed": 9}, "pace": {"chunk_tokens": 5}}]})
    with client_for(emu).messages.stream(model=MODEL, max_tokens=4000, messages=user("long")) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == generate_markdown(3000, seed=9)
    assert message.usage.output_tokens == 3000


# ---------------------------------------------------------------------------------------------------
# Plain requests, the default reply, count_tokens, the request log


def test_non_streaming_create_and_default_reply_history(emu: Emulator) -> None:
    client = client_for(emu)
    first = client.messages.create(model=MODEL, max_tokens=400, messages=user("What is HTTP caching?"))
    assert first.type == "message" and first.role == "assistant" and first.stop_reason == "end_turn"
    text = first.content[0].text
    assert "offline claude_magic emulator, not Claude" in text
    assert "What is HTTP caching?" in text and "turn 1 " in text
    assert "```python" in text and 120 <= count_tokens(text) <= 200
    assert first.usage.output_tokens == count_tokens(text)
    history = [
        *user("What is HTTP caching?"),
        {"role": "assistant", "content": text},
        {"role": "user", "content": [{"type": "text", "text": "And ETags?"}]},
    ]
    second = client.messages.create(model=MODEL, max_tokens=400, messages=history)
    assert "turn 2" in second.content[0].text
    assert "“What is HTTP caching?”" in second.content[0].text  # the earlier question reached the server


def test_count_tokens_matches_usage(emu: Emulator) -> None:
    client = client_for(emu)
    kwargs: dict[str, Any] = {"model": MODEL, "messages": user("Count these words please"), "system": "Be brief."}
    counted = client.messages.count_tokens(**kwargs)
    message = client.messages.create(max_tokens=50, **kwargs)
    assert counted.input_tokens == message.usage.input_tokens > 0
    assert emu.requests[0].path == "/v1/messages/count_tokens"


def test_request_log_redacts_credentials(emu: Emulator) -> None:
    client = client_for(emu)
    client.messages.create(model="claude-opus-4-5", max_tokens=20, messages=user("logged"),
                           extra_body={"temperature": 0.5})
    with httpx2.Client() as http:
        http.post(
            f"{emu.base_url}/v1/messages",
            json={"model": MODEL, "max_tokens": 5, "messages": user("raw")},
            headers={"x-api-key": KEY},
        )
        served = http.get(f"{emu.base_url}/_emulator/requests").text
    first, second = emu.requests
    assert (first.method, first.path, first.status) == ("POST", "/v1/messages", 200)
    assert first.messages == user("logged") and first.body["temperature"] == 0.5
    assert first.headers["authorization"] == "<redacted>"  # SDK 2.x sends api_key as a Bearer token
    assert second.headers["x-api-key"] == "<redacted>"
    assert KEY not in repr(emu.requests) and KEY not in served
    assert json.loads(served)[0]["request_id"] == first.request_id
    emu.clear_requests()
    assert emu.requests == []


# ---------------------------------------------------------------------------------------------------
# Validation


def test_missing_credentials_is_authentication_error(emu: Emulator) -> None:
    # The SDK refuses to send without a credential unless the header is explicitly omitted.
    client = client_for(emu, default_headers={"Authorization": anthropic.Omit()})
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=user("x"))
    assert info.value.status_code == 401
    assert "x-api-key header is required" in info.value.message
    assert info.value.request_id == emu.requests[-1].request_id


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "at least one message"),
        ({"messages": user("")}, "non-empty content"),
        ({"messages": [{"role": "user", "content": []}]}, "non-empty content"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "must be non-empty"),
        ({"messages": [*user("a"), *user("b")]}, "roles must alternate"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 'first message must use the "user" role'),
        ({"messages": [{"role": "system", "content": "hi"}]}, "messages.0.role"),
        # SDK 2.11 has no `temperature` parameter any more; extra_body still sends it.
        ({"extra_body": {"temperature": 1.5}}, "temperature"),
        # Claude 4.7 and later choose their own sampling.
        ({"model": "claude-opus-4-7", "extra_body": {"temperature": 0.5}},
         "`temperature` is deprecated for this model."),
        ({"model": "claude-sonnet-5-5", "extra_body": {"top_p": 0.9}}, "`top_p` is deprecated for this model."),
        (
            {
                "messages": [
                    *user("weather?"),
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
                    *user("no result"),
                ]
            },
            "`tool_use` ids were found without `tool_result`",
        ),
    ],
)
def test_invalid_requests_are_bad_request(emu: Emulator, kwargs: dict[str, Any], fragment: str) -> None:
    request = {"model": MODEL, "max_tokens": 10, "messages": user("x"), **kwargs}
    with pytest.raises(anthropic.APIStatusError) as info:
        client_for(emu).messages.create(**request)
    assert info.value.status_code == 400
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert fragment in info.value.message


def test_missing_model_and_max_tokens_raw(emu: Emulator) -> None:
    # The SDK's signature makes these required, so send them raw.
    with httpx2.Client(headers={"x-api-key": KEY}) as http:
        no_model = http.post(f"{emu.base_url}/v1/messages", json={"max_tokens": 5, "messages": user("x")})
        no_max = http.post(f"{emu.base_url}/v1/messages", json={"model": MODEL, "messages": user("x")})
        bad_json = http.post(f"{emu.base_url}/v1/messages", content=b"{nope")
        unknown = http.get(f"{emu.base_url}/v1/nothing")
    assert no_model.status_code == 400 and "model: Field required" in no_model.text
    assert no_max.status_code == 400 and "max_tokens: Field required" in no_max.text
    assert bad_json.status_code == 400
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    assert unknown.json()["request_id"] == unknown.headers["request-id"]


def test_unknown_model_is_not_found_and_script_models_are_known(emu: Emulator) -> None:
    client = client_for(emu)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=user("x"))
    assert info.value.status_code == 404
    assert info.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nonexistent-9"}
    emu.set_script({"models": ["claude-nonexistent-9"]})
    assert client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=user("x")).content


def test_oversized_body_is_request_too_large() -> None:
    with Emulator(max_body_bytes=2000) as emu:
        with pytest.raises(anthropic.APIStatusError) as info:
            client_for(emu).messages.create(model=MODEL, max_tokens=10, messages=user("x" * 5000))
        assert info.value.status_code == 413
        assert info.value.body["error"]["type"] == "request_too_large"
        # The connection was closed (body unread); the next request on the same client still works.
        assert client_for(emu).messages.create(model=MODEL, max_tokens=300, messages=user("ok")).content


# ---------------------------------------------------------------------------------------------------
# Faults


def test_http_fault_529_without_retries(emu: Emulator) -> None:
    emu.set_script({"turns": [{"fault": {"kind": "http", "status": 529, "retry_after": 2}}]})
    with pytest.raises(anthropic.APIStatusError) as info:
        client_for(emu).messages.create(model=MODEL, max_tokens=10, messages=user("x"))
    error = info.value
    assert error.status_code == 529
    assert error.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert error.response.headers["retry-after"] == "2"
    assert emu.requests[-1].status == 529


def test_http_fault_times_then_retry_succeeds(emu: Emulator) -> None:
    emu.set_script(
        {
            "turns": [
                {"match": "flaky", "times": 1, "fault": {"kind": "http", "status": 429, "retry_after": 0.05}},
                {"match": "flaky", "content": "Second try worked."},
            ]
        }
    )
    client = client_for(emu, max_retries=1)
    with client.messages.stream(model=MODEL, max_tokens=50, messages=user("flaky call")) as stream:
        assert stream.get_final_text() == "Second try worked."
    assert [r.status for r in emu.requests] == [429, 200]
    assert emu.requests[1].headers["x-stainless-retry-count"] == "1"


def test_http_fault_can_echo_the_api_key(emu: Emulator) -> None:
    emu.set_script({"turns": [{"fault": {"kind": "http", "status": 400, "echo_api_key": True}}]})
    with pytest.raises(anthropic.APIStatusError) as info:
        client_for(emu).messages.create(model=MODEL, max_tokens=10, messages=user("x"))
    assert info.value.status_code == 400
    assert KEY in info.value.message  # the leak a client's error display must scrub
    assert KEY not in repr(emu.requests)


def test_error_event_mid_stream(emu: Emulator) -> None:
    emu.set_script(
        {
            "turns": [
                {
                    "content": "alpha beta gamma delta epsilon zeta eta",
                    "fault": {"kind": "error_event", "after_tokens": 3, "message": "Overloaded now"},
                }
            ]
        }
    )
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        collect_text(emu, received)
    assert "".join(received) == "alpha beta gamma"
    error = info.value
    assert error.status_code == 200  # the stream had begun: the error event cannot change the status
    assert error.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded now"}}


def test_disconnect_mid_stream(emu: Emulator) -> None:
    fault = {"kind": "disconnect", "after_tokens": 2}
    emu.set_script({"turns": [{"content": "alpha beta gamma delta", "fault": fault}]})
    received: list[str] = []
    began = time.perf_counter()
    with pytest.raises(CONNECTION_LOST) as info:
        collect_text(emu, received)
    assert "".join(received) == "alpha beta"  # what arrived before the cut stays
    assert not isinstance(info.value, TIMED_OUT)  # the cut is reported at once, not after a read timeout
    assert time.perf_counter() - began < 5
    assert emu.requests[-1].status == 200 and emu.active_streams == 0


def test_disconnect_before_any_event_and_non_streaming(emu: Emulator) -> None:
    emu.set_script({"turns": [{"fault": {"kind": "disconnect"}}]})
    received: list[str] = []
    with pytest.raises(CONNECTION_LOST):
        collect_text(emu, received)
    assert received == []
    with pytest.raises(CONNECTION_LOST):
        client_for(emu).messages.create(model=MODEL, max_tokens=50, messages=user("x"))
    # The stream had its 200 headers before the cut; the non-streaming request got no response at all.
    assert [request.status for request in emu.requests] == [200, 0]


def test_stall_triggers_client_read_timeout(emu: Emulator) -> None:
    fault = {"kind": "stall", "after_tokens": 1, "seconds": 30}
    emu.set_script({"turns": [{"content": "alpha beta gamma", "fault": fault}]})
    received: list[str] = []
    began = time.perf_counter()
    with pytest.raises(TIMED_OUT):
        collect_text(emu, received, timeout=httpx2.Timeout(0.5))
    assert received == ["alpha"]
    assert 0.5 <= time.perf_counter() - began < 5  # the client's 0.5 s, not the server's 30 s stall
    # Non-streaming: the stall happens before the response headers.
    began = time.perf_counter()
    with pytest.raises(TIMED_OUT):
        client_for(emu, timeout=0.5).messages.create(model=MODEL, max_tokens=50, messages=user("x"))
    assert 0.5 <= time.perf_counter() - began < 5


def test_short_stall_then_stream_completes(emu: Emulator) -> None:
    fault = {"kind": "stall", "after_tokens": 0, "seconds": 0.3}
    emu.set_script({"turns": [{"content": "alpha beta", "fault": fault}]})
    began = time.perf_counter()
    with client_for(emu).messages.stream(model=MODEL, max_tokens=50, messages=user("x")) as stream:
        assert stream.get_final_text() == "alpha beta"
    assert time.perf_counter() - began >= 0.3


def test_malformed_event(emu: Emulator) -> None:
    emu.set_script({"turns": [{"content": "alpha beta gamma", "fault": {"kind": "malformed", "after_tokens": 1}}]})
    received: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        collect_text(emu, received)
    assert received == ["alpha"]


# ---------------------------------------------------------------------------------------------------
# Pacing, lifecycle, CLI, admin, scripts


def test_pacing_spreads_tokens_over_time() -> None:
    with Emulator(script={"turns": [{"generate": {"tokens": 40}}]}, tokens_per_second=200) as emu:
        arrivals: list[float] = []
        began = time.perf_counter()
        with client_for(emu).messages.stream(model=MODEL, max_tokens=100, messages=user("x")) as stream:
            for _ in stream.text_stream:
                arrivals.append(time.perf_counter() - began)
        assert len(arrivals) == 40
        assert arrivals[-1] >= 0.15  # 40 tokens at 200/s is due at 0.2 s
        assert arrivals[-1] - arrivals[0] >= 0.1  # spread out, not one burst
        assert arrivals[-1] < 2.0  # and not wildly slow
        emu.set_pace(tokens_per_second=0, chunk_tokens=8)
        with client_for(emu).messages.stream(model=MODEL, max_tokens=100, messages=user("x")) as stream:
            deltas = [e for e in stream if e.type == "content_block_delta"]
        assert len(deltas) == 5


def test_stop_wakes_stalled_stream_promptly() -> None:
    emu = Emulator(script={"turns": [{"fault": {"kind": "stall", "after_tokens": 3, "seconds": 60}}]}).start()
    outcome: list[BaseException | str] = []

    def consume() -> None:
        try:
            with client_for(emu).messages.stream(model=MODEL, max_tokens=300, messages=user("x")) as stream:
                stream.get_final_message()
            outcome.append("finished")
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
            outcome.append(exc)

    worker = threading.Thread(target=consume)
    worker.start()
    assert wait_until(lambda: emu.active_streams == 1)
    time.sleep(0.1)
    began = time.perf_counter()
    emu.stop()
    worker.join(3)
    assert time.perf_counter() - began < 2
    assert not worker.is_alive()
    assert emu.active_streams == 0
    assert isinstance(outcome[0], CONNECTION_LOST)
    emu.stop()  # idempotent


def test_abandoned_stream_is_released(emu: Emulator) -> None:
    emu.set_script({"turns": [{"generate": {"tokens": 500}, "pace": {"tokens_per_second": 100}}]})
    with client_for(emu).messages.stream(model=MODEL, max_tokens=1000, messages=user("x")) as stream:
        for _ in zip(range(3), stream.text_stream, strict=False):
            pass
        assert emu.active_streams == 1
    # Leaving the block closes the response; the server notices on its next write.
    assert wait_until(lambda: emu.active_streams == 0)


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("turns:\n  - match: ping\n    content: pong from CLI\n", encoding="utf-8")
    command = [sys.executable, "-m", "claude_magic.emulator", "--port", "0", "--script", str(script)]
    # Ctrl+C's default action, even when this run was started where SIGINT is ignored (a background job).
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.fullmatch(r"Emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, line
            with anthropic.Anthropic(base_url=match.group(1), api_key=KEY, max_retries=0) as client:
                reply = client.messages.create(model=MODEL, max_tokens=20, messages=user("ping"))
            assert reply.content[0].text == "pong from CLI"
            process.send_signal(signal.SIGINT)  # as Ctrl+C
            assert process.wait(5) == 0
        finally:
            process.kill()


def test_environment_variables_reach_the_emulator(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # How a notebook kernel in another process finds the emulator.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with anthropic.Anthropic(max_retries=0) as client:
        reply = client.messages.create(model=MODEL, max_tokens=300, messages=user("env"))
    assert "offline claude_magic emulator" in reply.content[0].text


def test_async_client_streams(emu: Emulator) -> None:
    emu.set_script({"turns": [{"content": "async works", "pace": {"tokens_per_second": 500}}]})

    async def run() -> str:
        client = anthropic.AsyncAnthropic(base_url=emu.base_url, api_key=KEY, max_retries=0)
        async with client, client.messages.stream(model=MODEL, max_tokens=20, messages=user("x")) as stream:
            return "".join([text async for text in stream.text_stream])

    assert run_coroutine(run()) == "async works"


def test_admin_endpoints(emu: Emulator) -> None:
    client = client_for(emu)
    with httpx2.Client(base_url=emu.base_url) as http:
        assert http.get("/_emulator/health").json()["status"] == "ok"
        script = {"turns": [{"match": "admin", "times": 1, "content": "set over HTTP"}]}
        assert http.post("/_emulator/script", json=script).status_code == 200
        assert client.messages.create(model=MODEL, max_tokens=20, messages=user("admin")).content[0].text == (
            "set over HTTP"
        )
        assert len(http.get("/_emulator/requests").json()) == 1
        assert http.post("/_emulator/reset").status_code == 200  # also rewinds `times`
        assert http.get("/_emulator/requests").json() == []
        assert client.messages.create(model=MODEL, max_tokens=20, messages=user("admin")).content[0].text == (
            "set over HTTP"
        )
        bad = http.post("/_emulator/script", json={"turns": [{"contnet": "typo"}]})
        assert bad.status_code == 400 and "contnet" in bad.json()["error"]["message"]
        assert http.post("/_emulator/pace", json={"chunk_tokens": 4}).status_code == 200
    with client.messages.stream(model=MODEL, max_tokens=20, messages=user("admin again")) as stream:
        assert sum(1 for e in stream if e.type == "content_block_delta") < 20


def test_script_files_matching_and_errors(tmp_path: Path) -> None:
    yaml_file = tmp_path / "turns.yaml"
    yaml_file.write_text(
        "turns:\n"
        "  - match: 're:^Explain (HTTP|DNS)'\n"
        "    content: [{type: text, text: regex hit}]\n"
        "  - match: caching\n"
        "    times: 2\n"
        "    content: substring hit\n",
        encoding="utf-8",
    )
    json_file = tmp_path / "turns.json"
    json_file.write_text(json.dumps({"turns": [{"content": "from json"}]}), encoding="utf-8")
    assert load_script(json_file).turns[0].content == ({"type": "text", "text": "from json"},)
    with Emulator(script=yaml_file) as emu:
        client = client_for(emu)

        def ask(prompt: str) -> str:
            return client.messages.create(model=MODEL, max_tokens=300, messages=user(prompt)).content[0].text

        assert ask("Explain DNS please") == "regex hit"
        assert ask("about caching") == "substring hit"
        assert ask("about caching") == "substring hit"
        assert "offline claude_magic emulator" in ask("about caching")  # times used up
        assert "offline claude_magic emulator" in ask("explain HTTP")  # regex is case-sensitive
    for bad, fragment in [
        ({"turns": [{"content": [{"type": "txt", "text": "x"}]}]}, "turns[0].content[0].type"),
        ({"turns": [{"match": "re:("}]}, "bad regular expression"),
        ({"turns": [{"fault": {"kind": "explode"}}]}, "turns[0].fault.kind"),
        ({"turns": [{"content": "x", "generate": {"tokens": 5}}]}, "either content or generate"),
        ({"tunrs": []}, "unknown key"),
    ]:
        with pytest.raises(ScriptError, match=re.escape(fragment)):
            load_script(bad)
