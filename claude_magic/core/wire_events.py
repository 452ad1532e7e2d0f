"""The stream's events as they come over the wire, pings included: what the raw view (`%%claude --raw`,
`ask(display="events")`) shows, one compact line per event.

Where the events come from. `client.messages.stream()` yields the SDK's parsed events, but its `Stream`
drops `ping` events (and anything without data) before parsing, so they never reach an iterator. Every
event does pass through the SSE decoder the SDK asks its client for, once per stream
(`_make_sse_decoder`: the hook the SDK's Bedrock client overrides to decode AWS event streams). The
clients `core.client` builds are `TappedAnthropic` / `TappedAsyncAnthropic`, which wrap that decoder while
a turn records: each `ServerSentEvent` is noted as the SDK pulls it from the decoder, so when the SDK
yields an event, everything before it on the wire, pings included, has been noted, in wire order. No SSE is
parsed here and nothing in the SDK is modified; only the decoder's output is watched.

The lines are built from the events' JSON as sent (so they show the protocol, not the SDK's objects), and
are safe to print anywhere: payloads are cut short, every character that is not printable (control
characters, ESC, bidi overrides, ...) is written as an escape, and the API key is removed.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic

from claude_magic.core.errors import redact_secrets
from claude_magic.core.turn import TurnState

PAYLOAD_CHARS = 40  # characters of a payload (delta text, partial JSON, error message) shown
LINE_CHARS = 240  # a line longer than this (a server sending huge ids) is cut
NAME_WIDTH = 20  # width of the event-type column: "content_block_delta" and one space

# The tap of the turn whose stream the SDK is opening on this thread or task. Set only around opening
# and reading a stream, so a client shared by concurrent turns (panel, ask_async) taps each one's own.
_TAP: contextvars.ContextVar[WireTap | None] = contextvars.ContextVar("claude_magic_wire_tap", default=None)


class WireTap:
    """Collects one turn's server-sent events as the SDK's decoder hands them out; `drain` moves them into
    the TurnState as lines. Both run on the thread reading the stream (the caller holds the frame lock
    while draining), so the frame thread only ever sees whole lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (arrival, event name, its data as sent, or None with the line's detail already made)
        self._pending: deque[tuple[float, str, str | None, str]] = deque()
        self.opened = False  # a response arrived: its own events say how it went

    def note(self, name: str | None, data: str) -> None:
        self._pending.append((self._clock(), name or "message", data, ""))

    def response(self, response: Any) -> None:
        """The stream's HTTP response arrived (each request: the first, a retry, a tool round)."""
        self.opened = True
        request_id = response.headers.get("request-id")
        self._pending.append((self._clock(), f"HTTP {response.status_code}", None,
                              f"request-id={request_id}" if request_id else ""))

    def failed(self, exc: BaseException) -> None:
        """The request failed before any stream arrived (a 429, a 5xx, a refused connection)."""
        if self.opened or not isinstance(exc, Exception):
            return  # the stream's own `error` event, a cut-off, or an interrupt the footer reports
        # The key is removed before the message is cut: a cut key would no longer be found.
        if isinstance(exc, anthropic.APIStatusError):
            error = _dict(_dict(exc.body).get("error"))
            message = _quote(redact_secrets(str(error.get("message", "")))) if error else ""
            detail = _join(str(error.get("type", "")), message)
            self._pending.append((self._clock(), f"HTTP {exc.status_code}", None, detail))
        else:
            detail = _quote(redact_secrets(f"{type(exc).__name__}: {exc}"))
            self._pending.append((self._clock(), "no response", None, detail))

    def drain(self, state: TurnState) -> None:
        """Move the noted events into `state.events` (the caller holds the frame lock)."""
        while self._pending:
            at, name, data, detail = self._pending.popleft()
            record_event(state, name, data, at, detail=detail)


class _NoTap:
    """The tap of a turn that does not record: every call does nothing."""

    opened = True

    def note(self, name: str | None, data: str) -> None:
        pass

    def response(self, response: Any) -> None:
        pass

    def failed(self, exc: BaseException) -> None:
        pass

    def drain(self, state: TurnState) -> None:
        pass


@contextlib.contextmanager
def tapping(state: TurnState, clock: Callable[[], float], lock: Any) -> Iterator[WireTap | _NoTap]:
    """Around opening and reading one stream: taps it if the turn records events (`state.events` is a
    list), and on the way out moves what was noted into the state under `lock`, the stream's last events
    (an `error` event, trailing pings) and a failed request's status included."""
    if state.events is None:
        yield _NoTap()
        return
    tap = WireTap(clock)
    token = _TAP.set(tap)
    try:
        yield tap
    except BaseException as exc:
        tap.failed(exc)
        raise
    finally:
        _TAP.reset(token)
        with lock:
            tap.drain(state)


class _TappedDecoder:
    """The SDK's own SSE decoder, with every event it yields noted on the tap first."""

    def __init__(self, decoder: Any, tap: WireTap) -> None:
        self._decoder = decoder
        self._tap = tap

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[Any]:
        for sse in self._decoder.iter_bytes(iterator):
            self._tap.note(sse.event, sse.data)
            yield sse

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for sse in self._decoder.aiter_bytes(iterator):
            self._tap.note(sse.event, sse.data)
            yield sse


def _tapped(decoder: Any) -> Any:
    tap = _TAP.get()
    return decoder if tap is None else _TappedDecoder(decoder, tap)


class TappedAnthropic(anthropic.Anthropic):
    """`anthropic.Anthropic` whose streams can be watched event by event, pings included (see the module)."""

    def _make_sse_decoder(self, *args: Any, **kwargs: Any) -> Any:
        return _tapped(super()._make_sse_decoder(*args, **kwargs))


class TappedAsyncAnthropic(anthropic.AsyncAnthropic):
    """`anthropic.AsyncAnthropic` whose streams can be watched event by event, pings included."""

    def _make_sse_decoder(self, *args: Any, **kwargs: Any) -> Any:
        return _tapped(super()._make_sse_decoder(*args, **kwargs))


# -- the lines -------------------------------------------------------------------------------------------


def ask_for_events(state: TurnState) -> None:
    """Make `state` record its stream's events (what a sink that draws them calls when the turn starts)."""
    if state.events is None:
        state.events = []


def record_event(state: TurnState, name: str, data: str | None, at: float, *, detail: str = "") -> None:
    """Append the line for one event (`data`: its JSON as sent; None: a line about the request, `detail`
    made already) to `state.events` and mark the state changed."""
    assert state.events is not None
    state.events.append(event_line(name, data, at - state.started_at, detail=detail))
    state.revision += 1


def event_line(name: str, data: str | None, elapsed: float, *, detail: str = "") -> str:
    """`+0.412s  content_block_delta  #0 text_delta "Hello, wor"… (57 chars)` for one event."""
    if data is not None:
        data = redact_secrets(data)  # before cutting: a cut key would no longer match
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            payload = None
        detail = _details(name, payload) if isinstance(payload, dict) else _quote(data)
    line = redact_secrets(f"{elapsed:+8.3f}s  {name:<{NAME_WIDTH}} {detail}".rstrip())
    if len(line) > LINE_CHARS:
        line = line[: LINE_CHARS - 1] + "…"
    return printable(line)


def _details(name: str, data: dict[str, Any]) -> str:
    index = f"#{data['index']}" if isinstance(data.get("index"), int) else ""
    if name == "message_start":
        message = _dict(data.get("message"))
        return _join(f"id={message.get('id')}", f"model={message.get('model')}", _usage(message.get("usage")))
    if name == "content_block_start":
        block = _dict(data.get("content_block"))
        kind = str(block.get("type"))
        if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            return _join(index, kind, str(block.get("name")), f"id={block.get('id')}")
        text = next((block[key] for key in ("text", "thinking", "data") if block.get(key)), "")
        return _join(index, kind, _quote(str(text)) if text else "")
    if name == "content_block_delta":
        delta = _dict(data.get("delta"))
        kind = str(delta.get("type"))
        value = next((delta[key] for key in ("text", "thinking", "partial_json", "signature") if key in delta), None)
        if value is None:  # citations_delta and kinds to come: their fields, compactly
            value = json.dumps({k: v for k, v in delta.items() if k != "type"}, ensure_ascii=False)
        return _join(index, kind, _quote(str(value)))
    if name == "content_block_stop":
        return index
    if name == "message_delta":
        delta = _dict(data.get("delta"))
        stop = f"stop_reason={delta.get('stop_reason')}"
        sequence = f"stop_sequence={_quote(str(delta['stop_sequence']))}" if delta.get("stop_sequence") else ""
        return _join(stop, sequence, _usage(data.get("usage")))
    if name == "error":
        error = _dict(data.get("error"))
        return _join(str(error.get("type", "")), _quote(str(error.get("message", ""))))
    if name in ("ping", "message_stop"):
        return ""
    rest = {k: v for k, v in data.items() if k != "type"}
    return _quote(json.dumps(rest, ensure_ascii=False)) if rest else ""


def _usage(usage: Any) -> str:
    usage = _dict(usage)
    return " ".join(f"{key}={value}" for key, value in usage.items() if isinstance(value, int) and value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _quote(text: str) -> str:
    """`text` as a JSON string literal, cut to PAYLOAD_CHARS, saying how long it was when cut."""
    if len(text) <= PAYLOAD_CHARS:
        return json.dumps(text, ensure_ascii=False)
    return f"{json.dumps(text[:PAYLOAD_CHARS], ensure_ascii=False)}… ({len(text):,} chars)"


def printable(text: str) -> str:
    """`text` with every non-printable character (control, format, separator other than the space,
    surrogate, private use) written as a \\u escape: safe in a terminal and unambiguous on a page."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


__all__ = ["TappedAnthropic", "TappedAsyncAnthropic", "WireTap", "ask_for_events", "event_line", "record_event",
           "tapping"]
