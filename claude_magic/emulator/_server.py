"""The HTTP side: a threading HTTP/1.1 server speaking the Messages API and the admin endpoints."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._wire import EMULATOR_HEADER
from ._binding import content_digest
from ._errors import ApiError, error_body, status_for_error_type
from ._pacing import Pacer
from ._response import Reply, build_reply, stream_events
from ._script import Fault, ScriptError, Turn, load_script, prompt_text, replay_events
from ._sse import MALFORMED_EVENT, encode_event
from ._state import EmulatorState, RecordedRequest, redact_headers
from ._tokens import count_request_tokens
from ._validate import api_key_from, check_auth, check_thinking_blocks, validate_request

ADMIN_PREFIX = "/_emulator/"
BATCHES_PATH = "/v1/messages/batches"
# A batch create may be up to 256 MB (https://platform.claude.com/docs/en/build-with-claude/batch-processing),
# above the Messages endpoint's own limit.
MAX_BATCH_BYTES = 256 * 1024 * 1024
# Errors that only mean the client went away; nothing to report.
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Abort(Exception):
    """Drop the connection without finishing the response (disconnect fault, emulator stopping)."""


@dataclass
class _Exchange:
    """What is known about the request being handled, for the log."""

    method: str
    path: str
    headers: dict[str, str]
    request_id: str
    body: Any = None
    recorded: bool = field(default=False)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections and threads so ``stop()`` can end them all."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: EmulatorState, verbose: bool = False) -> None:
        super().__init__(address, EmulatorHandler)
        self.state = state
        state.batches.answer = lambda params: _answer_params(state, params)
        self.verbose = verbose
        self._track_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn does not keep daemon threads, but stop() must join them to be sure no
        # handler outlives the emulator; daemon still, so a forgotten emulator never blocks exit.
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="claude-magic-emulator-connection",
            daemon=True,
        )
        with self._track_lock:
            self._workers = {w for w in self._workers if w.is_alive()}
            self._workers.add(worker)
        worker.start()

    def track(self, connection: socket.socket) -> None:
        with self._track_lock:
            self._connections.add(connection)
        if self.state.stop_event.is_set():
            # Accepted while stopping: close_connections() may already have run.
            _shutdown(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._track_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection, which wakes handlers blocked reading an idle keep-alive socket."""
        with self._track_lock:
            connections = list(self._connections)
        for connection in connections:
            _shutdown(connection)

    def join_workers(self, timeout: float) -> None:
        with self._track_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (*_GONE, OSError)):
            return
        super().handle_error(request, client_address)


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer or by the handler
        connection.shutdown(socket.SHUT_RDWR)


class EmulatorHandler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive, so it may serve several requests in turn."""

    protocol_version = "HTTP/1.1"
    server_version = "claude-magic-emulator"
    sys_version = ""
    server: EmulatorHTTPServer

    # -- plumbing --------------------------------------------------------------------------------

    def end_headers(self) -> None:
        # Every response says where it came from, so the client can label answers as not Claude's.
        self.send_header(EMULATOR_HEADER, "1")
        super().end_headers()

    def setup(self) -> None:
        super().setup()
        # Send each SSE event as it is written, as API servers do: with Nagle's algorithm on, a small
        # event waits for the client's delayed ACK (~40 ms) on a reused keep-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # flushing to a peer that is gone
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - name required by BaseHTTPRequestHandler
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    do_PUT = do_PATCH = do_DELETE = do_POST

    @property
    def _state(self) -> EmulatorState:
        return self.server.state

    def _read_body(self, limit: int | None = None) -> bytes:
        """The request body, refusing (413) anything above the size limit before reading it."""
        limit = limit or self._state.max_body_bytes
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            self.close_connection = True  # cannot tell where this body ends
            raise ApiError(400, "Invalid content-length header") from None
        if length > limit:
            # The body stays unread, so the connection cannot be reused.
            self.close_connection = True
            raise ApiError(413, f"Request exceeds the maximum allowed number of bytes ({limit}).")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                self.close_connection = True
                raise ApiError(413, f"Request exceeds the maximum allowed number of bytes ({limit}).")
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _record(self, exchange: _Exchange, status: int) -> None:
        if exchange.recorded:
            return
        exchange.recorded = True
        self._state.record(
            RecordedRequest(
                method=exchange.method,
                path=exchange.path,
                headers=redact_headers(exchange.headers),
                body=exchange.body,
                status=status,
                request_id=exchange.request_id,
            )
        )

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self._send_bytes(status, data, "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, exchange: _Exchange, error: ApiError) -> None:
        self._record(exchange, error.status)
        headers = {"request-id": exchange.request_id, **error.headers}
        self._send_json(error.status, error_body(error.error_type, error.message, exchange.request_id), headers)

    def _client_alive(self) -> bool:
        """False once the client has closed its end (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _abort(self) -> None:
        """Cut the connection: the client sees the body end without HTTP's terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        _shutdown(self.connection)

    # -- routing ---------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        headers = {name.lower(): value for name, value in self.headers.items()}
        if path.startswith(ADMIN_PREFIX):
            self._admin(path)
            return
        exchange = _Exchange(self.command, path, headers, self._state.next_id("req_emu_"))
        try:
            if path.rstrip("/").startswith(BATCHES_PATH):
                self._batches(exchange, path.rstrip("/"))
                return
            route = {
                ("POST", "/v1/messages"): self._messages,
                ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            }.get((self.command, path.rstrip("/")))
            # Read the body even for a 404: left unread it would be parsed as the next request.
            raw = self._read_body()
            if route is None:
                raise ApiError(404, f"Not found: {self.command} {path}")
            check_auth(headers)
            try:
                exchange.body = json.loads(raw) if raw else None
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(400, f"The request body is not valid JSON: {exc}") from exc
            route(exchange)
        except ApiError as error:
            self._send_error(exchange, error)
        except _Abort:
            self._record(exchange, 0)
            self._abort()
        except _GONE:
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator should still look like an API error
            if exchange.recorded:
                self._abort()
                raise
            self._send_error(exchange, ApiError(500, f"Emulator error: {exc!r}"))
            raise

    def _batches(self, exchange: _Exchange, path: str) -> None:
        """/v1/messages/batches[/{id}[/cancel|/results]] (see _batches.py for the API's rules)."""
        raw = self._read_body(max(MAX_BATCH_BYTES, self._state.max_body_bytes))
        check_auth(exchange.headers)
        store = self._state.batches
        parts = path[len(BATCHES_PATH):].strip("/").split("/") if path != BATCHES_PATH else []
        query = dict(parse_qsl(urlsplit(self.path).query))
        if parts == [] and self.command == "POST":
            try:
                exchange.body = json.loads(raw) if raw else None
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(400, f"The request body is not valid JSON: {exc}") from exc
            payload = store.create(exchange.body)
        elif parts == [] and self.command == "GET":
            try:
                limit = int(query.get("limit", 20))
            except ValueError:
                raise ApiError(400, "limit: Input should be a valid integer") from None
            if not 1 <= limit <= 1000:
                raise ApiError(400, "limit: Input should be between 1 and 1000")
            payload = store.list(limit, query.get("after_id"), query.get("before_id"))
        elif len(parts) == 1 and self.command == "GET":
            payload = store.retrieve(parts[0])
        elif len(parts) == 1 and self.command == "DELETE":
            payload = store.delete(parts[0])
        elif parts[1:] == ["cancel"] and self.command == "POST":
            payload = store.cancel(parts[0])
        elif parts[1:] == ["results"] and self.command == "GET":
            data = store.results(parts[0])
            self._record(exchange, 200)
            self._send_bytes(200, data, "application/binary", {"request-id": exchange.request_id})
            return
        else:
            raise ApiError(404, f"Not found: {self.command} {path}")
        self._record(exchange, 200)
        self._send_json(200, payload, {"request-id": exchange.request_id})

    def _count_tokens(self, exchange: _Exchange) -> None:
        body = validate_request(exchange.body, self._state.models(), count_only=True, paused=self._state.paused())
        # The token counting endpoint runs the same prefix check as messages (preserved thinking), and what
        # the API drops counts nothing.
        binding = check_thinking_blocks(body, self._state.script_signatures(), exchange.headers)
        self._record(exchange, 200)
        tokens = count_request_tokens({**body, "messages": binding.messages})
        self._send_json(200, {"input_tokens": tokens}, {"request-id": exchange.request_id})

    def _messages(self, exchange: _Exchange) -> None:
        body = validate_request(exchange.body, self._state.models(), paused=self._state.paused())
        binding = check_thinking_blocks(body, self._state.script_signatures(), exchange.headers)
        turn = self._state.pick_turn(prompt_text(body["messages"]))
        fault = turn.fault if turn else None
        if fault is not None and fault.kind == "http":
            raise _http_fault(fault, exchange.headers)
        if turn is not None and turn.replay and body.get("stream"):
            self._replay(exchange, turn)
            return
        reply = build_reply(turn, body, self._state.next_id("msg_emu_"), lambda: self._state.next_id("toolu_emu_"),
                            binding)
        if reply.stop_reason == "pause_turn":
            self._state.remember_paused(content_digest(reply.blocks))
        if body.get("stream"):
            self._stream(exchange, reply, turn, fault)
        else:
            self._plain(exchange, reply, turn, fault)

    # -- responses -------------------------------------------------------------------------------

    def _plain(self, exchange: _Exchange, reply: Reply, turn: Turn | None, fault: Fault | None) -> None:
        """A non-streaming answer; stream faults become their nearest plain-HTTP equivalent."""
        rate, _ = self._state.pace_for(turn)
        pacer = Pacer(rate, self._state.stop_event, self._client_alive)
        if fault is not None and fault.kind == "stall" and not pacer.pause(fault.seconds):
            raise _Abort
        if fault is not None and fault.kind == "disconnect":
            raise _Abort
        if fault is not None and fault.kind == "error_event":
            error_type = fault.error_type or "overloaded_error"
            raise ApiError(status_for_error_type(error_type), fault.message or "Overloaded", error_type)
        # A real non-streaming call returns only once the whole answer is generated.
        if not pacer.advance(reply.usage["output_tokens"]):
            raise _Abort
        self._record(exchange, 200)
        headers = {"request-id": exchange.request_id}
        if fault is not None and fault.kind == "malformed":
            self._send_bytes(200, b'{"id": "' + reply.message_id.encode() + b'", not json', "application/json", headers)
            return
        self._send_json(200, reply.message(), headers)

    def _write_chunk(self, data: bytes) -> None:
        # Chunked framing by hand; flushed per event so each token leaves the machine at once.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream(self, exchange: _Exchange, reply: Reply, turn: Turn | None, fault: Fault | None) -> None:
        rate, chunk_tokens = self._state.pace_for(turn)
        self._record(exchange, 200)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", exchange.request_id)
        self.end_headers()
        self.wfile.flush()
        self._state.stream_opened()
        try:
            pacer = Pacer(rate, self._state.stop_event, self._client_alive)
            sent = 0
            pending = fault
            for event in stream_events(reply, chunk_tokens):
                if pending is not None and (sent >= pending.after_tokens or event.name == "message_delta"):
                    if not self._fire(pending, pacer):
                        return
                    pending = None
                if event.tokens and not pacer.advance(event.tokens):
                    raise _Abort
                self._write_chunk(encode_event(event.name, event.data))
                sent += event.tokens
            self._end_chunks()
        finally:
            self._state.stream_closed()

    def _replay(self, exchange: _Exchange, turn: Turn) -> None:
        """Send a recorded transcript as it was recorded (one chunk per event, a token per delta)."""
        events = replay_events(turn.replay or "")
        rate, _ = self._state.pace_for(turn)
        self._record(exchange, 200)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", exchange.request_id)
        self.end_headers()
        self._state.stream_opened()
        try:
            pacer = Pacer(rate, self._state.stop_event, self._client_alive)
            for event in events:
                if event.startswith(b"event: content_block_delta") and not pacer.advance(1):
                    raise _Abort
                self._write_chunk(event)
            self._end_chunks()
        finally:
            self._state.stream_closed()

    def _fire(self, fault: Fault, pacer: Pacer) -> bool:
        """Act out a stream fault. True: carry on streaming; False: the response is over."""
        if fault.kind == "stall":
            if not pacer.pause(fault.seconds):
                raise _Abort
            return True
        if fault.kind == "disconnect":
            raise _Abort
        if fault.kind == "error_event":
            error = {"type": fault.error_type or "overloaded_error", "message": fault.message or "Overloaded"}
            self._write_chunk(encode_event("error", {"type": "error", "error": error}))
        elif fault.kind == "malformed":
            self._write_chunk(MALFORMED_EVENT)
        self._end_chunks()
        return False

    # -- admin -----------------------------------------------------------------------------------

    def _admin(self, path: str) -> None:
        """Control endpoints for other processes (a notebook kernel, a browser test)."""
        name = path[len(ADMIN_PREFIX) :].rstrip("/")
        state = self._state
        try:
            raw = self._read_body()
            if (self.command, name) == ("GET", "health"):
                payload: Any = {"status": "ok", "active_streams": state.active_streams,
                                "peak_streams": state.peak_streams}
            elif (self.command, name) == ("GET", "requests"):
                payload = [request.to_dict() for request in state.requests()]
            elif (self.command, name) == ("POST", "reset"):
                state.reset()
                payload = {"ok": True}
            elif (self.command, name) == ("POST", "script"):
                state.set_script(load_script(json.loads(raw) if raw else None))
                payload = {"ok": True}
            elif (self.command, name) == ("POST", "batches"):
                settings = json.loads(raw) if raw else {}
                state.batches.set_timing(settings.get("seconds"), settings.get("expire"))
                payload = {"ok": True}
            elif (self.command, name) == ("POST", "pace"):
                settings = json.loads(raw) if raw else {}
                state.set_pace(settings.get("tokens_per_second"), settings.get("chunk_tokens"))
                payload = {"ok": True}
            else:
                raise ApiError(404, f"Not found: {self.command} {path}")
        except ApiError as error:
            self._send_json(error.status, error_body(error.error_type, error.message, ""))
            return
        except (ScriptError, ValueError, TypeError, AttributeError) as exc:
            self._send_json(400, error_body("invalid_request_error", str(exc), ""))
            return
        self._send_json(200, payload)


def _answer_params(state: EmulatorState, params: dict[str, Any]) -> dict[str, Any]:
    """One batch request answered as /v1/messages would answer it, without streaming: the Message, or the
    ApiError the Messages API would have returned (a scripted HTTP fault included)."""
    body = validate_request(params, state.models(), paused=state.paused())
    # Thinking blocks are checked as /v1/messages checks them (preserved thinking); a batch request carries
    # no headers of its own, so no beta binding control applies.
    binding = check_thinking_blocks(body, state.script_signatures(), {})
    turn = state.pick_turn(prompt_text(body["messages"]))
    if turn is not None and turn.fault is not None and turn.fault.kind == "http":
        raise _http_fault(turn.fault, {})
    reply = build_reply(turn, body, state.next_id("msg_emu_"), lambda: state.next_id("toolu_emu_"), binding)
    return reply.message()


def _http_fault(fault: Fault, headers: dict[str, str]) -> ApiError:
    status = fault.status or 500
    error = ApiError(status, fault.message or "", fault.error_type)
    if not fault.message:
        error.message = "Overloaded" if error.error_type == "overloaded_error" else f"Emulated {error.error_type}"
    if fault.echo_api_key:
        # Deliberately leaks the credential so a test can prove the client never displays error text raw.
        error.message += f" (received API key: {api_key_from(headers)})"
    if fault.retry_after is not None:
        error.headers["retry-after"] = f"{fault.retry_after:g}"
    return error
