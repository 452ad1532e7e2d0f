"""The HTTP transport the clients are built with when a cassette is set: record every exchange, replay it.

    %config ClaudeMagic.cassette = "analysis.cassette"      # or env CLAUDE_MAGIC_CASSETTE
    %config ClaudeMagic.cassette_mode = "replay"            # strict: no network, no key needed

Why here. The SDK talks to the API through an `httpx2` client; `core.client` hands it one whose transport
is a `CassetteTransport` (or `AsyncCassetteTransport`), so every request of every surface — streamed
answers, `count_tokens`, tool rounds, Message Batches — passes through this one place, and nothing in the
SDK is patched. Without a cassette the clients are built as before, on the SDK's own HTTP client: a session
that does not record pays nothing.

Modes:
- `record`: every request goes to the API; each exchange is appended to the cassette.
- `replay`: strict. Requests are answered from the cassette; one that is not in it raises `CassetteMiss`
  (one line: the cassette, the cell, what differs from the nearest recorded request) and nothing is sent.
  No API key and no network are needed.
- `replay_or_record` (the default): replay what is recorded, send and record what is not. The first run of a
  notebook fills its cassette, re-runs cost nothing, an edited cell sends only its own new request. Without
  an API key nothing can be sent, so a request not in the cassette is the same one-line miss as `replay`:
  a keyless CI machine is strict by construction.

The file is JSON Lines, one exchange per line, appended under an OS lock: two kernels recording into one
cassette interleave whole lines, and a line torn by a crash is skipped by readers. A line:

    {"v": 1, "session": "9f2c01ab", "request": {"method": "POST", "path": "/v1/messages", "query": [],
     "headers": {}, "body": {...}, "noted": {"anthropic-version": "..."}},
     "response": {"status": 200, "headers": [["request-id", "req_..."], ...], "latency": 0.41,
                  "chunks": [[0.41, "event: message_start\ndata: {...}\n\n"], ...]}}

(`session`: which recording run wrote it; chunk times are seconds after the request was sent.) The API key
never reaches it: only the request headers that change the meaning of a request are kept, and every line is
scrubbed of the key before it is written.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import contextvars
import json
import os
import secrets
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from claude_magic._wire import CASSETTE_MODES
from claude_magic.core.errors import redact_secrets

try:  # POSIX; elsewhere appends are still whole lines from one process, unlocked across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MODES = CASSETTE_MODES
DEFAULT_MODE = CASSETTE_MODES[0]
FORMAT_VERSION = 1

# Request headers that change what a request means: a beta flag turns a feature on. `anthropic-version` is
# the SDK release's choice, not the notebook's: it is written down but not keyed, so a replay keeps working
# after an SDK upgrade. Every other header (x-api-key, authorization, user-agent, x-stainless-*, idempotency
# keys, timeouts) is volatile or secret and is neither keyed nor written.
KEYED_HEADERS = ("anthropic-beta",)
NOTED_HEADERS = ("anthropic-version", "content-type")
# Response headers not worth keeping: they describe the connection, not the answer (the body is stored
# decoded-as-sent, so its length is recomputed on replay).
_DROPPED_RESPONSE_HEADERS = frozenset({
    "date", "set-cookie", "connection", "keep-alive", "transfer-encoding", "content-length", "server", "via",
    "alt-svc", "cf-ray", "cf-cache-status", "strict-transport-security", "x-envoy-upstream-service-time",
})
VALUE_CHARS = 40  # characters of a differing value shown in a miss

# What the running turn is, for a miss message ("%claude 'Say hello'"), and whether it runs in the cell being
# executed (the chat panel's turns do not): set by the engine around a turn.
REQUEST_LABEL: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar(
    "claude_magic_request_label", default=None)


@contextlib.contextmanager
def labelled(label: str, *, in_cell: bool = True) -> Iterator[None]:
    """Requests sent inside this block are named `label` in a cassette miss; `in_cell`: also by the number
    of the cell running."""
    token = REQUEST_LABEL.set((label, in_cell))
    try:
        yield
    finally:
        REQUEST_LABEL.reset(token)


class CassetteMiss(Exception):
    """A request the cassette does not hold, in a mode that may not send it. The message is the one line
    shown; the SDK wraps it in its connection error, `core.errors.describe_error` finds it there."""


# -- the canonical request -------------------------------------------------------------------------------


def canonical_request(request: httpx2.Request) -> dict[str, Any]:
    """What identifies a request: method, path, sorted query, the keyed headers, and the body as data (JSON
    objects compare whatever their key order). Ids the client makes up per request live in headers, which
    are left out."""
    body_bytes = request.read()
    body: Any = None
    if body_bytes:
        try:
            body = json.loads(body_bytes)
        except ValueError:  # not JSON (an upload): its digest, so it is keyed without being written out
            import hashlib

            body = {"sha256": hashlib.sha256(body_bytes).hexdigest()}
    query = sorted(httpx2.QueryParams(request.url.query).multi_items()) if request.url.query else []
    headers = {name: request.headers[name] for name in KEYED_HEADERS if name in request.headers}
    return {"method": request.method, "path": request.url.path, "query": [list(pair) for pair in query],
            "headers": headers, "body": body}


def request_key(canonical: dict[str, Any]) -> str:
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- the file --------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One recorded request and its response. `chunks` are (seconds after the request was sent, text);
    `latency` is when the response's headers arrived."""

    request: dict[str, Any]
    status: int
    headers: list[tuple[str, str]]
    chunks: list[tuple[float, str]]
    latency: float = 0.0
    encoded: bool = False  # chunks are base64 (a compressed body, kept byte for byte)
    session: str = ""

    def body_parts(self) -> list[tuple[float, bytes]]:
        if self.encoded:
            return [(at, base64.b64decode(text)) for at, text in self.chunks]
        return [(at, text.encode("utf-8", "surrogateescape")) for at, text in self.chunks]

    def to_line(self) -> str:
        record = {"v": FORMAT_VERSION, "session": self.session, "request": self.request,
                  "response": {"status": self.status, "headers": self.headers, "latency": round(self.latency, 4),
                               **({"encoding": "base64"} if self.encoded else {}),
                               "chunks": [[round(at, 4), text] for at, text in self.chunks]}}
        return redact_secrets(json.dumps(record, ensure_ascii=False, sort_keys=False)) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Exchange:
        record = json.loads(line)
        response = record["response"]
        return cls(request=record["request"], status=int(response["status"]),
                   headers=[(str(name), str(value)) for name, value in response.get("headers", [])],
                   chunks=[(float(at), str(text)) for at, text in response.get("chunks", [])],
                   latency=float(response.get("latency", 0.0)), encoded=response.get("encoding") == "base64",
                   session=str(record.get("session", "")))


def append_line(path: Path, line: str) -> None:
    """Append one whole line under an exclusive lock (O_APPEND: the write lands at the end whoever wrote
    last). A line torn by a crash is closed first, so it stays one bad line that readers skip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = line.encode("utf-8", "surrogateescape")
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            while data:  # one write in practice; a partial write goes on where it stopped
                written = os.write(fd, data)
                data = data[written:]
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_exchanges(path: Path, start: int = 0) -> tuple[list[Exchange], int, int]:
    """The cassette's exchanges in file order from byte `start`, how many lines could not be read (a line
    torn by a crash, cut by a merge: skipped, the rest is used), and where the next read starts: after the
    last whole line (a line still being written is read next time)."""
    try:
        with path.open("rb") as file:
            file.seek(start)
            raw = file.read()
    except FileNotFoundError:
        return [], 0, 0
    whole = raw[: raw.rfind(b"\n") + 1]
    exchanges: list[Exchange] = []
    damaged = 0
    for line in whole.decode("utf-8", "surrogateescape").splitlines():
        if not line.strip():
            continue
        try:
            exchanges.append(Exchange.from_line(line))
        except (ValueError, KeyError, TypeError):
            damaged += 1
    tail = raw[len(whole):]
    if tail.strip() and not _parses(tail):
        damaged += 1  # a torn last line; an append closes it (append_line) and it is counted then too
    return exchanges, damaged, start + len(whole)


def _parses(tail: bytes) -> bool:
    try:
        Exchange.from_line(tail.decode("utf-8", "surrogateescape"))
    except (ValueError, KeyError, TypeError):
        return False
    return True


class Cassette:
    """A cassette file and this process's place in it (shared by every client of the kernel: see `cassette`).

    Repeated identical requests (a re-run cell, a batch polled until it ends) replay in recorded order: the
    n-th time a request is sent gets the n-th recording of it, and once those run out the last one repeats
    (a finished batch stays finished). When a later recording session recorded a request again, its
    recordings replace the earlier ones: re-recording a notebook into the same file needs no clean-up.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.session = secrets.token_hex(4)
        self._lock = threading.Lock()
        self._read_to = 0  # bytes of the file read so far (whole lines)
        self._by_key: dict[str, list[Exchange]] = {}
        self._sent: dict[str, int] = {}

    def _refresh(self) -> None:
        """Read what was appended since the last look (by another kernel, or this one); all of it again if
        the file shrank (replaced, or checked out anew)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self._read_to:
            self._by_key, self._read_to = {}, 0
        if size == self._read_to:
            return
        exchanges, _damaged, self._read_to = read_exchanges(self.path, self._read_to)  # damaged lines: skipped
        for exchange in exchanges:
            key = request_key(_without_noted(exchange.request))
            recorded = self._by_key.setdefault(key, [])
            if recorded and recorded[-1].session != exchange.session:
                recorded.clear()  # a later session recorded this request again: its answers win
            recorded.append(exchange)

    def take(self, canonical: dict[str, Any], *, retry_live: bool = False) -> Exchange | None:
        """The recording for this sending of `canonical` (and count it sent), or None when there is none.
        `retry_live`: once the recordings ran out, a last one that failed in a way worth retrying (429, 529,
        5xx...) is not repeated but None, so that the retry is sent (and recorded) instead of failing again."""
        key = request_key(canonical)
        with self._lock:
            self._refresh()
            recorded = self._by_key.get(key)
            if not recorded:
                return None
            sent = self._sent.get(key, 0)
            if retry_live and sent >= len(recorded) and _worth_retrying(recorded[-1].status):
                return None
            self._sent[key] = sent + 1
            return recorded[min(sent, len(recorded) - 1)]

    def count_recorded(self, canonical: dict[str, Any]) -> None:
        """A request that was just sent live and recorded counts as sent, so its next sending replays it."""
        key = request_key(canonical)
        with self._lock:
            self._sent[key] = self._sent.get(key, 0) + 1

    def record(self, exchange: Exchange) -> None:
        exchange.session = self.session
        append_line(self.path, exchange.to_line())

    def nearest_difference(self, canonical: dict[str, Any]) -> str:
        """What differs between `canonical` and the most similar recorded request, in a few words."""
        with self._lock:
            self._refresh()
            candidates = [_without_noted(recorded[-1].request) for recorded in self._by_key.values()]
        if not candidates:
            return "the cassette holds no recordings yet" if self.path.exists() else "the cassette file does not exist"
        # Nearest: the same endpoint first (a changed prompt, not another kind of call), then fewest differences.
        best = min((list(_differences(_shown(candidate), _shown(canonical), "")) for candidate in candidates),
                   key=lambda differences: (any(path in ("method", "path") for path, _old, _new in differences),
                                            len(differences)))
        if not best:
            return "the same request was recorded"  # cannot happen for a miss; said plainly if it does
        shown = "; ".join(f"{path or 'request'}: {_excerpt(old, new)}" for path, old, new in best[:2])
        more = f" (and {len(best) - 2} more)" if len(best) > 2 else ""
        return f"nearest recorded request differs at {shown}{more}"


def _worth_retrying(status: int) -> bool:
    """The statuses the API may answer differently a moment later (the SDK's own retry rule)."""
    return status in (408, 409, 429) or status >= 500


def _shown(canonical: dict[str, Any]) -> dict[str, Any]:
    """The canonical request as the miss names its fields: the body's own paths at the top
    (`messages[2].content[0].text`), the rest by their HTTP names."""
    shown: dict[str, Any] = {"method": canonical.get("method"), "path": canonical.get("path")}
    if canonical.get("query"):
        shown["query"] = "&".join(f"{name}={value}" for name, value in canonical["query"])
    for name, value in (canonical.get("headers") or {}).items():
        shown[name] = value
    body = canonical.get("body")
    if isinstance(body, dict):
        shown.update({name: value for name, value in body.items() if name not in shown})
    elif body is not None:
        shown["body"] = body
    return shown


_ABSENT = object()


def _differences(old: Any, new: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """Leaf-level differences, depth first in the order of the request's own fields."""
    if isinstance(old, dict) and isinstance(new, dict):
        for name in [*new, *(name for name in old if name not in new)]:
            yield from _differences(old.get(name, _ABSENT), new.get(name, _ABSENT),
                                    f"{path}.{name}" if path else str(name))
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(min(len(old), len(new))):
            yield from _differences(old[index], new[index], f"{path}[{index}]")
        if len(old) != len(new):  # said once for the list, not once per missing item
            yield path, _Count(len(old)), _Count(len(new))
    elif old != new or type(old) is not type(new):
        yield path, old, new


def _excerpt(old: Any, new: Any) -> str:
    """`recorded ≠ now`, each value cut to where they differ when both are long strings."""
    if isinstance(old, str) and isinstance(new, str):
        start = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
        start = max(0, start - 10)
        return f"{_short(old, start)} ≠ {_short(new, start)}"
    return f"{_short(old)} ≠ {_short(new)}"


class _Count(int):
    """A list's length, shown as "3 items"."""


def _short(value: Any, start: int = 0) -> str:
    if isinstance(value, _Count):
        return f"{int(value)} item{'s' * (value != 1)}"
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str):
        text = value[start:]
        cut = text[:VALUE_CHARS]
        return f"{'…' if start else ''}{cut!r}{'…' if len(text) > VALUE_CHARS else ''}"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else f"{text[:VALUE_CHARS]}…"


_cassettes: dict[Path, Cassette] = {}
_cassettes_lock = threading.Lock()


def cassette(path: str | os.PathLike[str]) -> Cassette:
    """The kernel's one `Cassette` for this file (relative paths from the working directory, which is the
    notebook's folder in Jupyter): the sync and async clients count repeated requests together."""
    resolved = Path(path).expanduser().resolve()
    with _cassettes_lock:
        found = _cassettes.get(resolved)
        if found is None:
            found = _cassettes[resolved] = Cassette(resolved)
        return found


def forget_cassettes() -> None:
    """Start counting repeated requests from zero again (tests; a fresh replay of the same file)."""
    with _cassettes_lock:
        _cassettes.clear()


# -- the transports --------------------------------------------------------------------------------------


@dataclass
class _Policy:
    cassette: Cassette
    mode: str
    speed: float  # 1: the recorded pace; 10: ten times faster; 0: no waiting at all
    can_record: bool  # an API key is there to send with
    _clock: Any = field(default=time.monotonic, repr=False)

    def lookup(self, canonical: dict[str, Any]) -> Exchange | None:
        """The recording to replay, None to send and record, or CassetteMiss."""
        if self.mode == "record":
            return None
        found = self.cassette.take(canonical, retry_live=self.mode == "replay_or_record" and self.can_record)
        if found is not None or (self.mode == "replay_or_record" and self.can_record):
            return found
        raise CassetteMiss(self.miss_message(canonical))

    def miss_message(self, canonical: dict[str, Any]) -> str:
        where = _where()
        if self.mode == "replay":
            fix = ("record it: %config ClaudeMagic.cassette_mode = 'replay_or_record' (or CLAUDE_MAGIC_CASSETTE_MODE) "
                   "with ANTHROPIC_API_KEY set")
        else:
            fix = "set ANTHROPIC_API_KEY to record it"
        return (f"Not in cassette {self.cassette.path.name}{where}: {self.cassette.nearest_difference(canonical)}; "
                f"nothing was sent. To {fix}")

    def wait_until(self, started: float, offset: float) -> float:
        """Seconds to wait before what was recorded `offset` s after the request (0 at speed 0)."""
        if self.speed <= 0:
            return 0.0
        return max(0.0, started + offset / self.speed - self._clock())


def _where() -> str:
    """" (cell In[4], %claude 'Say hello')": the notebook cell running and what it asked, where known."""
    label, in_cell = REQUEST_LABEL.get() or ("", True)
    parts = []
    if in_cell:
        try:
            from IPython import get_ipython

            # The running cell's number as its prompt shows it (`shell.execution_count` is the next one's);
            # None where cells run without being counted (nbval), which names the cell itself.
            running = getattr(getattr(get_ipython(), "displayhook", None), "exec_result", None)
            count = getattr(running, "execution_count", None)
        except ImportError:  # pragma: no cover - IPython is a dependency
            count = None
        if isinstance(count, int):
            parts.append(f"cell In[{count}]")
    if label:
        parts.append(label)
    return f" ({', '.join(parts)})" if parts else ""


def _kept_headers(headers: httpx2.Headers) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.multi_items() if name.lower() not in _DROPPED_RESPONSE_HEADERS]


def _noted_request(request: httpx2.Request, canonical: dict[str, Any]) -> dict[str, Any]:
    noted = {name: request.headers[name] for name in NOTED_HEADERS if name in request.headers}
    return {**canonical, "noted": noted} if noted else canonical


class _Recorder:
    """Collects a response body's chunks as the SDK reads them; writes the exchange when the body is whole
    (a stream closed early — Stop, an interrupt, a cut connection — is not recorded: replaying it would
    replay the accident)."""

    def __init__(self, policy: _Policy, request: httpx2.Request, canonical: dict[str, Any],
                 response: httpx2.Response, started: float) -> None:
        self.policy, self.canonical, self.started = policy, canonical, started
        self.encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
        self.exchange = Exchange(request=_noted_request(request, canonical), status=response.status_code,
                                 headers=_kept_headers(response.headers), chunks=[],
                                 latency=policy._clock() - started, encoded=self.encoded)
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")

    def chunk(self, data: bytes) -> None:
        at = self.policy._clock() - self.started
        text = base64.b64encode(data).decode("ascii") if self.encoded else self._decoder.decode(data)
        if text:
            self.exchange.chunks.append((at, text))

    def done(self) -> None:
        if not self.encoded:
            self.chunk_tail()
        self.policy.cassette.record(self.exchange)
        if self.policy.mode != "record":
            self.policy.cassette.count_recorded(self.canonical)

    def chunk_tail(self) -> None:
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self.exchange.chunks.append((self.policy._clock() - self.started, tail))


def _without_noted(request: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in request.items() if key != "noted"}


def _sending(request: httpx2.Request) -> httpx2.Request:
    # Ask for the body uncompressed, so the cassette holds readable text.
    request.headers["accept-encoding"] = "identity"
    return request


class _RecordingStream(httpx2.SyncByteStream):
    def __init__(self, response: httpx2.Response, recorder: _Recorder) -> None:
        self._response, self._recorder = response, recorder

    def __iter__(self) -> Iterator[bytes]:
        for data in self._response.iter_raw():
            self._recorder.chunk(data)
            yield data
        self._recorder.done()

    def close(self) -> None:
        self._response.close()


class _AsyncRecordingStream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response, recorder: _Recorder) -> None:
        self._response, self._recorder = response, recorder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._response.aiter_raw():
            self._recorder.chunk(data)
            yield data
        self._recorder.done()

    async def aclose(self) -> None:
        await self._response.aclose()


class _Wakeup:
    """What a replayed response offers as its network stream: one end of a socket pair, which the turn's Stop
    and Interrupt shut down as they shut a live connection's socket (core.stream `_shutdown_socket`). That
    wakes a wait for the next recorded chunk at once, as it fails a live read, even from a signal handler."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()

    def get_extra_info(self, name: str) -> Any:
        return self._reader if name == "socket" else None

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when woken (shut down, or `wake`)."""
        try:
            readable, _writable, _failed = select.select([self._reader], [], [], seconds)
        except (OSError, ValueError):  # closed meanwhile
            return True
        return bool(readable)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._writer.send(b"\0")

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class _ReplayStream(httpx2.SyncByteStream):
    """The recorded chunks at their recorded pace. Stop (`close()` from another thread) and an Interrupt
    (the socket shut down, see `_Wakeup`) end a wait at once."""

    def __init__(self, policy: _Policy, exchange: Exchange, started: float) -> None:
        self._policy, self._parts, self._started = policy, exchange.body_parts(), started
        self._closed = self._iterating = False
        self.wakeup = _Wakeup() if policy.speed > 0 and len(self._parts) > 1 else None

    def __iter__(self) -> Iterator[bytes]:
        self._iterating = True
        try:
            for at, data in self._parts:
                delay = self._policy.wait_until(self._started, at)
                if self._closed or (delay and self.wakeup is not None and self.wakeup.wait(delay)):
                    return
                if delay and self.wakeup is None:
                    time.sleep(delay)
                yield data
        finally:
            if self.wakeup is not None:
                self.wakeup.close()

    def close(self) -> None:
        self._closed = True
        if self.wakeup is not None:
            # While another thread reads, wake it (it closes the pair as it ends); else nothing else will.
            (self.wakeup.wake if self._iterating else self.wakeup.close)()


class _AsyncReplayStream(httpx2.AsyncByteStream):
    def __init__(self, policy: _Policy, exchange: Exchange, started: float) -> None:
        self._policy, self._parts, self._started = policy, exchange.body_parts(), started
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import asyncio

        for at, data in self._parts:
            delay = self._policy.wait_until(self._started, at)
            if delay:
                await asyncio.sleep(delay)
            if self._closed:
                return
            yield data

    async def aclose(self) -> None:
        self._closed = True


def _replayed(exchange: Exchange, request: httpx2.Request, stream: Any,
              extensions: dict[str, Any] | None = None) -> httpx2.Response:
    return httpx2.Response(exchange.status, headers=exchange.headers, stream=stream, request=request,
                           extensions=extensions or {})


class CassetteTransport(httpx2.BaseTransport):
    """The sync client's transport: replay from the cassette, or send through `live` and record."""

    def __init__(self, path: str | os.PathLike[str], *, mode: str = DEFAULT_MODE, speed: float = 1.0,
                 can_record: bool = True, live: httpx2.Client | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"cassette mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.policy = _Policy(cassette(path), mode, speed, can_record)
        self._live = live

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        started = self.policy._clock()
        canonical = canonical_request(request)
        exchange = self.policy.lookup(canonical)
        if exchange is not None:
            delay = self.policy.wait_until(started, exchange.latency)
            if delay:
                time.sleep(delay)
            stream = _ReplayStream(self.policy, exchange, started)
            return _replayed(exchange, request, stream,
                             {"network_stream": stream.wakeup} if stream.wakeup is not None else {})
        if self._live is None:
            import anthropic

            self._live = anthropic.DefaultHttpxClient()
        response = self._live.send(_sending(request), stream=True)
        recorder = _Recorder(self.policy, request, canonical, response, started)
        return httpx2.Response(response.status_code, headers=response.headers,
                               stream=_RecordingStream(response, recorder), extensions=response.extensions,
                               request=request)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()


class AsyncCassetteTransport(httpx2.AsyncBaseTransport):
    """`CassetteTransport` for `AsyncAnthropic` (ask_async, map): the same cassette, file and counts."""

    def __init__(self, path: str | os.PathLike[str], *, mode: str = DEFAULT_MODE, speed: float = 1.0,
                 can_record: bool = True, live: httpx2.AsyncClient | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"cassette mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.policy = _Policy(cassette(path), mode, speed, can_record)
        self._live = live

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        import asyncio

        started = self.policy._clock()
        await request.aread()
        canonical = canonical_request(request)
        exchange = self.policy.lookup(canonical)
        if exchange is not None:
            delay = self.policy.wait_until(started, exchange.latency)
            if delay:
                await asyncio.sleep(delay)
            return _replayed(exchange, request, _AsyncReplayStream(self.policy, exchange, started))
        if self._live is None:
            import anthropic

            self._live = anthropic.DefaultAsyncHttpxClient()
        response = await self._live.send(_sending(request), stream=True)
        recorder = _Recorder(self.policy, request, canonical, response, started)
        return httpx2.Response(response.status_code, headers=response.headers,
                               stream=_AsyncRecordingStream(response, recorder), extensions=response.extensions,
                               request=request)

    async def aclose(self) -> None:
        if self._live is not None:
            await self._live.aclose()


__all__ = ["DEFAULT_MODE", "MODES", "REQUEST_LABEL", "AsyncCassetteTransport", "Cassette", "CassetteMiss",
           "CassetteTransport", "Exchange", "append_line", "canonical_request", "cassette", "forget_cassettes",
           "labelled", "read_exchanges", "request_key"]
