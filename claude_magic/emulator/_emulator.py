"""The :class:`Emulator` object: owns the server thread and exposes the state to Python callers."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from ._script import Pace, Script, load_script
from ._server import EmulatorHTTPServer
from ._state import DEFAULT_MAX_BODY_BYTES, EmulatorState, RecordedRequest

ScriptSource = Script | Mapping[str, Any] | str | Path | None

# serve_forever checks for shutdown this often; short so stop() returns promptly.
_POLL_SECONDS = 0.05
_JOIN_SECONDS = 5.0


class Emulator:
    """A local Messages API server on a background thread.

    ``Emulator(...).start()`` binds ``host:port`` (port 0 picks a free one) and returns ``self``;
    ``stop()`` ends every connection, wakes stalled streams and joins all threads. Also a context
    manager. Thread-safe: ``set_script``/``set_pace`` may be called while requests are in flight.
    """

    def __init__(
        self,
        script: ScriptSource = None,
        tokens_per_second: float = 0.0,
        chunk_tokens: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        verbose: bool = False,
    ) -> None:
        self._state = EmulatorState(load_script(script), Pace(0.0, 1), max_body_bytes)
        self._state.set_pace(tokens_per_second, chunk_tokens)
        self._address = (host, port)
        self._verbose = verbose
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread. Returns ``self`` so ``Emulator().start()`` chains."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("Emulator already started")
            if self._state.stop_event.is_set():
                raise RuntimeError("A stopped Emulator cannot be restarted; create a new one")
            self._server = EmulatorHTTPServer(self._address, self._state, self._verbose)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": _POLL_SECONDS},
                name="claude-magic-emulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; idempotent. Open streams are cut, stalls end at once, threads are joined."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if self._state.stop_event.is_set() or server is None or thread is None:
                self._state.stop_event.set()
                return
            # First wake every waiting stream (pacing and stalls wait on this event) ...
            self._state.stop_event.set()
            server.shutdown()
            # ... then unblock handlers idling on keep-alive connections, and only then join them.
            server.close_connections()
            server.server_close()
            server.join_workers(_JOIN_SECONDS)
            thread.join(_JOIN_SECONDS)

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("Emulator not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port``, what the SDK takes as ``base_url`` (it appends ``/v1/messages``)."""
        host = str(self._address[0])
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # -- inspection and control ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the requests answered so far (credentials redacted)."""
        return self._state.requests()

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._state.clear_requests()

    def set_script(self, script: ScriptSource) -> None:
        """Replace the script (a Script, dict, JSON/YAML path, or None for default replies only)."""
        self._state.set_script(load_script(script))

    @property
    def script(self) -> Script:
        """The current script."""
        return self._state.script

    def set_pace(self, tokens_per_second: float | None = None, chunk_tokens: int | None = None) -> None:
        """Change the default pacing (script and turn ``pace`` still take precedence)."""
        self._state.set_pace(tokens_per_second, chunk_tokens)

    def set_batch_timing(self, seconds: float | None = None, expire: bool | None = None) -> None:
        """How Message Batches created from now on run: `seconds` from creation to the end (requests end in
        order over that time; 0: ended at once), and `expire`: the time runs out halfway, the rest expire."""
        self._state.batches.set_timing(seconds, expire)

    @property
    def active_streams(self) -> int:
        """Streaming responses currently being written; back to 0 once every stream has ended."""
        return self._state.active_streams

    @property
    def peak_streams(self) -> int:
        """The most streaming responses written at the same time since start (or `reset_peak_streams`):
        what a client's concurrency limit looks like from the server."""
        return self._state.peak_streams

    def reset_peak_streams(self) -> None:
        """Start measuring the peak again from the streams open now."""
        self._state.reset_peak_streams()

    @property
    def models(self) -> tuple[str, ...]:
        """Model ids this emulator accepts."""
        return self._state.models()
