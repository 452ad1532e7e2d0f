"""Cassettes at the HTTP transport (core.transport): the real SDK records against the emulator, then replays
with the emulator stopped and no key."""

from __future__ import annotations

import asyncio
import json
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
from support import FAKE_API_KEY

from claude_magic.core import client as _client
from claude_magic.core import transport
from claude_magic.core.client import ClientSettings, get_async_client, get_client
from claude_magic.core.errors import describe_error
from claude_magic.core.transport import canonical_request, labelled, read_exchanges, request_key
from claude_magic.emulator import Emulator

MODEL = "claude-sonnet-5-5"
SCRIPT = {"turns": [
    {"match": "Say hello", "content": "Hello there, reader of cassettes."},
    {"match": "twice", "times": 1, "content": "First answer."},
    {"match": "twice", "content": "Second answer."},
    {"match": "busy", "fault": {"kind": "http", "status": 429, "retry_after": 7, "message": "slow down"}},
    {"match": "long", "generate": {"tokens": 40, "seed": 2}},
]}


@pytest.fixture(autouse=True)
def fresh_cassettes() -> Iterator[None]:
    transport.forget_cassettes()
    _client.reset_clients()
    yield
    transport.forget_cassettes()
    _client.reset_clients()


@pytest.fixture
def live(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    return emulator


def offline_now(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    """No key, no base URL, no emulator: a fresh kernel on a machine that never saw the API."""
    emulator.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    transport.forget_cassettes()
    _client.reset_clients()


def ask(client: anthropic.Anthropic, prompt: str, **extra: Any) -> str:
    with client.messages.stream(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": prompt}],
                                **extra) as stream:
        return "".join(stream.text_stream)


def settings(path: Path, mode: str, speed: float = 0.0) -> ClientSettings:
    return ClientSettings(cassette=str(path), cassette_mode=mode, cassette_speed=speed)


def built(method: str, url: str, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return canonical_request(httpx2.Request(method, url, content=json.dumps(body).encode(), headers=headers or {}))


# -- the key -----------------------------------------------------------------------------------------------


def test_key_ignores_key_order_and_volatile_headers_but_not_beta_flags_or_content() -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    reordered = {"messages": body["messages"], "max_tokens": 5, "model": MODEL}
    first = built("POST", "https://api.anthropic.com/v1/messages?b=2&a=1", body,
                  {"x-api-key": "sk-one", "user-agent": "A/1", "x-stainless-retry-count": "0",
                   "idempotency-key": "k1", "anthropic-version": "2026-10-21"})
    second = built("POST", "http://127.0.0.1:9/v1/messages?a=1&b=2", reordered,
                   {"x-api-key": "sk-two", "user-agent": "B/2", "x-stainless-retry-count": "1",
                    "idempotency-key": "k2", "anthropic-version": "2027-01-01"})
    assert request_key(first) == request_key(second)
    beta = built("POST", "https://api.anthropic.com/v1/messages?a=1&b=2", body, {"anthropic-beta": "files-2025"})
    assert request_key(beta) != request_key(first)
    changed = built("POST", "https://api.anthropic.com/v1/messages?a=1&b=2",
                    {**body, "messages": [{"role": "user", "content": "hi!"}]})
    assert request_key(changed) != request_key(first)
    assert request_key(built("GET", "https://api.anthropic.com/v1/messages?a=1&b=2", body)) != request_key(first)


# -- record, then replay with nothing behind it ---------------------------------------------------------------


def test_replay_needs_no_key_no_emulator_and_gives_back_what_was_recorded(
        live: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "notes.cassette"
    client = get_client(settings(path, "record"))
    streamed = ask(client, "Say hello")
    counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Say hello"}])

    async def asked_async() -> str:
        async_client = get_async_client(settings(path, "record"))
        message = await async_client.messages.create(model=MODEL, max_tokens=200,
                                                     messages=[{"role": "user", "content": "Say hello, async"}])
        return message.content[-1].text  # type: ignore[union-attr]

    answered_async = asyncio.run(asked_async())
    assert "Hello there" in streamed and "Hello there" in answered_async
    text = path.read_text()
    assert FAKE_API_KEY not in text and "x-api-key" not in text.lower()
    assert len(text.splitlines()) == 3  # one exchange per line

    offline_now(monkeypatch, live)
    client = get_client(settings(path, "replay"))
    assert ask(client, "Say hello") == streamed
    assert client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Say hello"}]) == counted

    async def replayed_async() -> str:
        async_client = get_async_client(settings(path, "replay"))
        message = await async_client.messages.create(model=MODEL, max_tokens=200,
                                                     messages=[{"role": "user", "content": "Say hello, async"}])
        return message.content[-1].text  # type: ignore[union-attr]

    assert asyncio.run(replayed_async()) == answered_async


def test_error_responses_replay_with_the_headers_the_sdk_reads(
        live: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "errors.cassette"

    def failure(client: anthropic.Anthropic) -> anthropic.APIStatusError:
        with pytest.raises(anthropic.APIStatusError) as raised:
            client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "busy now"}])
        return raised.value

    recorded = failure(get_client(settings(path, "record")))
    offline_now(monkeypatch, live)
    replayed = failure(get_client(settings(path, "replay")))
    assert replayed.status_code == recorded.status_code == 429
    assert replayed.request_id == recorded.request_id and replayed.request_id
    assert replayed.response.headers["retry-after"] == recorded.response.headers["retry-after"] == "7"
    assert replayed.body == recorded.body


def test_repeated_requests_replay_in_recorded_order_then_the_last_repeats(
        live: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "repeat.cassette"
    client = get_client(settings(path, "record"))
    recorded = [ask(client, "ask twice"), ask(client, "ask twice")]
    assert recorded == ["First answer.", "Second answer."]
    offline_now(monkeypatch, live)
    client = get_client(settings(path, "replay"))
    assert [ask(client, "ask twice") for _ in range(3)] == ["First answer.", "Second answer.", "Second answer."]


def test_a_later_recording_session_replaces_the_earlier_answers(live: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "again.cassette"
    ask(get_client(settings(path, "record")), "ask twice")  # "First answer."
    transport.forget_cassettes()  # a new kernel records the same request again
    _client.reset_clients()
    assert ask(get_client(settings(path, "record")), "ask twice") == "Second answer."
    transport.forget_cassettes()
    _client.reset_clients()
    assert ask(get_client(settings(path, "replay")), "ask twice") == "Second answer."
    assert len(path.read_text().splitlines()) == 2  # both kept: the file only ever grows


def test_replay_or_record_sends_only_what_the_cassette_lacks(live: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "fill.cassette"
    client = get_client(settings(path, "replay_or_record"))
    first = ask(client, "Say hello")
    ask(client, "Say hello")  # a re-run cell: replayed
    assert len(live.requests) == 1
    ask(client, "Say hello again")
    assert len(live.requests) == 2
    assert len(path.read_text().splitlines()) == 2
    assert ask(client, "Say hello") == first
    assert len(live.requests) == 2


# -- a miss ------------------------------------------------------------------------------------------------------


def test_a_miss_is_one_line_naming_cassette_asker_and_difference_and_sends_nothing(
        live: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "analysis.cassette"
    ask(get_client(settings(path, "record")), "Say hi")
    sent = len(live.requests)
    transport.forget_cassettes()
    _client.reset_clients()
    client = get_client(settings(path, "replay"))  # the key and the emulator are still there: none is used
    with labelled("%claude 'Say hello'"), pytest.raises(anthropic.APIError) as raised:
        ask(client, "Say hello")
    line = describe_error(raised.value, model=MODEL).message
    assert "\n" not in line
    assert line.startswith("Not in cassette analysis.cassette")
    assert "%claude 'Say hello'" in line
    assert "messages[0].content: 'Say hi' ≠ 'Say hello'" in line
    assert "nothing was sent" in line
    assert len(live.requests) == sent
    assert describe_error(raised.value, model=MODEL).retryable is False


def test_without_a_key_replay_or_record_is_strict(live: Emulator, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ci.cassette"
    ask(get_client(settings(path, "record")), "Say hello")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    transport.forget_cassettes()
    _client.reset_clients()
    client = get_client(settings(path, "replay_or_record"))
    assert "Hello there" in ask(client, "Say hello")
    with pytest.raises(anthropic.APIError) as raised:
        ask(client, "Say hello, a new question")
    line = describe_error(raised.value, model=MODEL).message
    assert "set ANTHROPIC_API_KEY to record it" in line
    assert len(live.requests) == 1


def test_record_mode_without_a_key_says_so(tmp_path: Path) -> None:
    with pytest.raises(_client.ClaudeError, match="No Anthropic API key"):
        get_client(settings(tmp_path / "x.cassette", "record"))


# -- pacing ---------------------------------------------------------------------------------------------------------


def arrivals(path: Path, speed: float) -> tuple[list[float], list[float]]:
    """Replay the cassette's one exchange through the transport alone: (recorded offsets, arrival times)."""
    (exchange,), _damaged, _end = read_exchanges(path)
    transport.forget_cassettes()
    client = httpx2.Client(transport=transport.CassetteTransport(path, mode="replay", speed=speed))
    started = time.monotonic()
    with client.stream(exchange.request["method"], f"https://api.anthropic.com{exchange.request['path']}",
                       content=json.dumps(exchange.request["body"]).encode()) as response:
        times = [time.monotonic() - started for _chunk in response.iter_raw()]
    return [at for at, _text in exchange.chunks], times


def test_replay_streams_at_the_recorded_pace_or_faster_on_request(live: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "pace.cassette"
    live.set_pace(tokens_per_second=80, chunk_tokens=1)
    ask(get_client(settings(path, "record")), "a long one")
    recorded, paced = arrivals(path, speed=1.0)
    assert len(paced) == len(recorded) >= 10
    assert recorded[-1] > 0.4  # 40 tokens at 80 a second
    # Each chunk arrives when it was recorded: never earlier (the replay waits for it), not much later.
    assert all(at <= replayed < at + 0.15 for replayed, at in zip(paced, recorded, strict=True))
    _recorded, fast = arrivals(path, speed=4.0)
    assert all(at / 4 <= replayed for replayed, at in zip(fast, recorded, strict=True))
    assert fast[-1] < recorded[-1] / 2
    _recorded, instant = arrivals(path, speed=0)
    assert instant[-1] < recorded[-1] / 4


# -- the file -------------------------------------------------------------------------------------------------------

WRITER = """
import sys
import threading
from claude_magic.core.transport import append_line
from pathlib import Path
path, name = Path(sys.argv[1]), sys.argv[2]
for n in range(150):
    line = '{"v": 1, "session": "%s", "request": {"n": %d, "pad": "%s"}, "response": {"status": 200}}' % (
        name, n, name * 20000)
    append_line(path, line + "\\n")
"""


def test_two_processes_appending_interleave_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.cassette"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("a", "b")]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    exchanges, damaged, _end = read_exchanges(path)
    assert damaged == 0
    assert sorted((exchange.session, exchange.request["n"]) for exchange in exchanges) == sorted(
        (name, n) for name in "ab" for n in range(150))


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "torn.cassette"
    good = '{"v": 1, "session": "s", "request": {"n": 1}, "response": {"status": 200}}\n'
    path.write_text(good + good[:30])  # a kernel died while writing
    exchanges, damaged, _end = read_exchanges(path)
    assert [exchange.request for exchange in exchanges] == [{"n": 1}] and damaged == 1
    transport.append_line(path, good.replace('"n": 1', '"n": 2'))
    exchanges, damaged, _end = read_exchanges(path)
    assert [exchange.request for exchange in exchanges] == [{"n": 1}, {"n": 2}] and damaged == 1


def test_closing_a_replayed_stream_ends_its_wait_at_once(live: Emulator, tmp_path: Path) -> None:
    """The panel's Stop closes the stream from another thread while the replay waits for the next chunk."""
    path = tmp_path / "stop.cassette"
    live.set_pace(tokens_per_second=40, chunk_tokens=1)
    ask(get_client(settings(path, "record")), "a long one")  # about a second of stream
    transport.forget_cassettes()
    client = httpx2.Client(transport=transport.CassetteTransport(path, mode="replay", speed=1.0))
    (exchange,), _damaged, _end = read_exchanges(path)
    with client.stream("POST", f"https://api.anthropic.com{exchange.request['path']}",
                       content=json.dumps(exchange.request["body"]).encode()) as response:
        chunks = response.iter_raw()
        next(chunks)
        closer = threading.Timer(0.1, response.close)
        started = time.monotonic()
        closer.start()
        rest = list(chunks)
        ended_after = time.monotonic() - started
    assert ended_after < 0.5 < exchange.chunks[-1][0]
    assert len(rest) < len(exchange.chunks) - 1


def test_message_batches_replay_create_polls_and_results(
        live: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import claude_magic

    live.set_batch_timing(seconds=0.6)  # polled while in progress, then ended
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE", str(tmp_path / "batch.cassette"))
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE_MODE", "record")
    prompts = [f"row {n}" for n in range(4)]
    recorded = [reply.text for reply in claude_magic.map(prompts, batch=True, display="none")]
    assert all(recorded)
    paths = [request.path for request in live.requests]
    assert paths.count("/v1/messages/batches") == 1 and len(paths) >= 4  # create, polls, results
    offline_now(monkeypatch, live)
    # Another machine: no batch recorded in its notebook folder, so the job is submitted again, from the cassette.
    monkeypatch.setenv("CLAUDE_MAGIC_HISTORY_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE_MODE", "replay")
    assert [reply.text for reply in claude_magic.map(prompts, batch=True, display="none")] == recorded


def test_a_map_run_again_with_one_more_row_sends_only_that_row(live: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    import claude_magic

    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE", str(tmp_path / "map.cassette"))  # default mode: replay_or_record
    first = [reply.text for reply in claude_magic.map(["Say hello", "ask twice"], display="none")]
    assert len(live.requests) == 2
    again = [reply.text for reply in claude_magic.map(["Say hello", "ask twice", "Say hello, new row"],
                                                      display="none")]
    assert again[:2] == first and "Hello there" in again[2]
    assert [request.body["messages"][-1]["content"] for request in live.requests[2:]] == ["Say hello, new row"]


def test_a_cassette_reads_what_another_kernel_appends_meanwhile(live: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "shared.cassette"
    ask(get_client(settings(path, "record")), "Say hello")
    (hello,), _damaged, _end = read_exchanges(path)
    other = transport.Cassette(path)  # another kernel's view, which has read the file once already
    asked = transport._without_noted(hello.request)  # what is keyed: the request without its noted headers
    assert other.take(asked) is not None
    assert other.take({**asked, "path": "/v1/other"}) is None
    ask(get_client(settings(path, "record")), "ask twice")  # this kernel records one more
    (_hello, twice), _damaged, _end = read_exchanges(path)
    found = other.take(transport._without_noted(twice.request))
    assert found is not None and found.chunks == twice.chunks


def test_tool_rounds_replay_and_the_tools_run_again_locally(live: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    import claude_magic

    calls: list[str] = []

    def city_time(city: str) -> str:
        """The local time in a city.

        Args:
            city: the city's name
        """
        calls.append(city)
        return "09:30"

    live.set_script({"turns": []})  # the emulator's default tool reply: call the first tool, then answer
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE", str(tmp_path / "tools.cassette"))
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE_MODE", "record")
    recorded = claude_magic.ask("What time is it in Lima?", tools=[city_time], display="none", new=True)
    assert recorded.state.tool_rounds >= 1 and len(live.requests) == 2 and len(calls) == 1
    offline_now(monkeypatch, live)
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE_MODE", "replay")
    replayed = claude_magic.ask("What time is it in Lima?", tools=[city_time], display="none", new=True)
    assert replayed.text == recorded.text and replayed.state.tool_rounds == recorded.state.tool_rounds
    assert len(calls) == 2  # the tool ran again here; its result made the second request the recorded one


def test_a_cassette_recorded_offline_replays_without_starting_the_emulator(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_MAGIC_EMULATOR_TPS", "0")
    path = tmp_path / "offline.cassette"
    recorded = ask(get_client(ClientSettings(offline=True, cassette=str(path), cassette_mode="record")), "Say hello")
    for emulator in _client._emulators.values():
        emulator.stop()  # type: ignore[attr-defined]
    _client._emulators.clear()
    transport.forget_cassettes()
    _client.reset_clients()
    replaying = get_client(ClientSettings(offline=True, cassette=str(path), cassette_mode="replay"))
    assert ask(replaying, "Say hello") == recorded
    assert not _client._emulators


def test_replay_or_record_retries_a_recorded_rate_limit_live_instead_of_repeating_it(
        live: Emulator, tmp_path: Path) -> None:
    live.set_script({"turns": [
        {"match": "busy", "times": 1, "fault": {"kind": "http", "status": 429, "retry_after": 0}},
        {"match": "busy", "content": "Served on the second try."},
    ]})
    path = tmp_path / "retry.cassette"
    client = get_client(settings(path, "replay_or_record"))
    with pytest.raises(anthropic.RateLimitError):
        ask(client, "busy now")
    assert ask(client, "busy now") == "Served on the second try."  # sent, not the 429 replayed
    assert len(live.requests) == 2
    transport.forget_cassettes()  # the next run replays both, in order, and sends nothing
    _client.reset_clients()
    client = get_client(settings(path, "replay"))
    with pytest.raises(anthropic.RateLimitError):
        ask(client, "busy now")
    assert ask(client, "busy now") == "Served on the second try."
    assert len(live.requests) == 2


def test_settings_read_the_environment_and_a_misspelt_mode_is_the_strict_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from traitlets import TraitError

    from claude_magic.core.engine import client_settings
    from claude_magic.settings import ClaudeMagic

    assert (ClaudeMagic().cassette, ClaudeMagic().cassette_mode, ClaudeMagic().cassette_speed) == (
        "", "replay_or_record", 1.0)
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE", "analysis.cassette")
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE_MODE", "Record")
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE_SPEED", "10")
    made = client_settings(ClaudeMagic())
    assert (made.cassette, made.cassette_mode, made.cassette_speed) == ("analysis.cassette", "record", 10.0)
    monkeypatch.setenv("CLAUDE_MAGIC_CASSETTE_MODE", "replya")
    assert ClaudeMagic().cassette_mode == "replay"
    with pytest.raises(TraitError):
        ClaudeMagic().cassette_mode = "sometimes"
    with pytest.raises(TraitError):
        ClaudeMagic().cassette_speed = -1


def test_an_interrupt_shutting_the_socket_down_ends_a_replayed_wait_at_once(live: Emulator, tmp_path: Path) -> None:
    """An Interrupt ends a live stream by shutting its socket down (core.stream): a replay offers a socket to
    shut down, so the wait for the next recorded chunk ends as a blocked read would."""
    import socket

    path = tmp_path / "interrupt.cassette"
    live.set_pace(tokens_per_second=40, chunk_tokens=1)
    ask(get_client(settings(path, "record")), "a long one")
    transport.forget_cassettes()
    client = httpx2.Client(transport=transport.CassetteTransport(path, mode="replay", speed=1.0))
    (exchange,), _damaged, _end = read_exchanges(path)
    with client.stream("POST", f"https://api.anthropic.com{exchange.request['path']}",
                       content=json.dumps(exchange.request["body"]).encode()) as response:
        chunks = response.iter_raw()
        next(chunks)
        sock = response.extensions["network_stream"].get_extra_info("socket")
        interrupt = threading.Timer(0.1, socket.socket.shutdown, args=(sock, socket.SHUT_RDWR))
        started = time.monotonic()
        interrupt.start()
        rest = list(chunks)
        ended_after = time.monotonic() - started
    assert ended_after < 0.5 < exchange.chunks[-1][0]
    assert len(rest) < len(exchange.chunks) - 1


def test_an_interrupt_during_a_recorded_pause_ends_the_replayed_turn_at_once(
        live: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from test_interrupt import RecordingSink, interrupt_when, new_state

    from claude_magic.core.stream import TurnControl, run_turn
    from claude_magic.core.throttle import Throttle

    answer = "One two three four five six seven eight nine ten."
    live.set_script({"turns": [{"content": answer, "fault": {"kind": "stall", "after_tokens": 3, "seconds": 1.5}}]})
    path = tmp_path / "pause.cassette"
    assert ask(get_client(settings(path, "record")), "hi") == answer  # with a 1.5 s pause after three words
    offline_now(monkeypatch, live)
    client = get_client(settings(path, "replay", speed=1.0))
    request = {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}
    sink, sent_at = RecordingSink(words=3), []
    # Delivered to another thread: only the socket shut down by the watcher can end the main thread's wait.
    sender = interrupt_when(sink.first_frame, sent_at, to_thread=True)
    state = run_turn(client, request, new_state(), sink, throttle=Throttle(0.0), control=TurnControl())
    returned_at = time.monotonic()
    sender.join(5)
    assert state.status == "interrupted"
    assert state.text.split() == answer.split()[:3]
    assert returned_at - sent_at[0] < 0.7  # the recorded pause was 1.5 s
