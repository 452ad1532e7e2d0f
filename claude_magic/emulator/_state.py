"""Everything the request handlers share: script, pacing, request log, id counters, stream count."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from ._batches import BatchStore
from ._script import Pace, Script, Turn, TurnPicker
from ._validate import served_models

# Credentials must never be stored: the log is shown in test failures and served over HTTP.
REDACTED_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})
REDACTED = "<redacted>"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024  # the API's own request size limit


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Header dict (lower-case names) with credential values replaced by ``<redacted>``."""
    return {name: REDACTED if name in REDACTED_HEADERS else value for name, value in headers.items()}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator answered, as the test or tool inspecting it needs to see it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    request_id: str

    @property
    def messages(self) -> list[Any]:
        """``body["messages"]``, or an empty list for bodies without one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return self.body["messages"]
        return []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``GET /_emulator/requests`` serves)."""
        return asdict(self)


class EmulatorState:
    """Shared, lock-protected state of one emulator instance."""

    def __init__(self, script: Script, pace: Pace, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.stop_event = threading.Event()
        self.max_body_bytes = max_body_bytes
        self._lock = threading.Lock()
        self._picker = TurnPicker(script)
        self._pace = pace
        self._log: list[RecordedRequest] = []
        self._counters: defaultdict[str, int] = defaultdict(int)
        self._active_streams = 0
        self._peak_streams = 0
        self._paused: set[str] = set()
        self.batches = BatchStore(self.next_id)  # Message Batches (its own lock)

    # -- script and pacing -----------------------------------------------------------------------

    def set_script(self, script: Script) -> None:
        """Swap the script; ``times`` counts start over."""
        with self._lock:
            self._picker = TurnPicker(script)

    @property
    def script(self) -> Script:
        with self._lock:
            return self._picker.script

    def pick_turn(self, prompt: str) -> Turn | None:
        with self._lock:
            picker = self._picker
        return picker.pick(prompt)

    def set_pace(self, tokens_per_second: float | None = None, chunk_tokens: int | None = None) -> None:
        """Change the emulator-level pace; ``None`` keeps a field as it is."""
        if tokens_per_second is not None and tokens_per_second < 0:
            raise ValueError("tokens_per_second must be >= 0")
        if chunk_tokens is not None and chunk_tokens < 1:
            raise ValueError("chunk_tokens must be >= 1")
        with self._lock:
            self._pace = Pace(tokens_per_second, chunk_tokens).over(self._pace)

    def pace_for(self, turn: Turn | None) -> tuple[float, int]:
        """Effective (tokens_per_second, chunk_tokens): turn over script over emulator."""
        with self._lock:
            pace = self._pace
            script_pace = self._picker.script.pace
        if script_pace is not None:
            pace = script_pace.over(pace)
        if turn is not None and turn.pace is not None:
            pace = turn.pace.over(pace)
        return float(pace.tokens_per_second or 0.0), int(pace.chunk_tokens or 1)

    def script_signatures(self) -> frozenset[str]:
        """Thinking signatures the script set by hand: the API would have issued them, so they verify."""
        script = self.script
        return frozenset(block["signature"] for turn in script.turns for block in (turn.content or ())
                         if block.get("type") == "thinking" and block.get("signature"))

    def remember_paused(self, digest: str) -> None:
        """An answer that stopped with pause_turn: sent back as it was, it continues its turn."""
        with self._lock:
            self._paused.add(digest)

    def paused(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._paused)

    def models(self) -> tuple[str, ...]:
        """Model ids accepted: those served (the SDK's and the contract table's) plus the script's ``models``."""
        return served_models() + self.script.models

    # -- ids -------------------------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        """``prefix`` + 24 hex digits from a per-prefix counter: unique and reproducible per run."""
        with self._lock:
            self._counters[prefix] += 1
            return f"{prefix}{self._counters[prefix]:024x}"

    # -- request log -----------------------------------------------------------------------------

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def reset(self) -> None:
        """Forget the log and rewind the script's ``times`` counts, as if freshly started."""
        with self._lock:
            self._log.clear()
            self._paused.clear()
            self._picker = TurnPicker(self._picker.script)
        self.batches.reset()

    # -- streams ---------------------------------------------------------------------------------

    def stream_opened(self) -> None:
        with self._lock:
            self._active_streams += 1
            self._peak_streams = max(self._peak_streams, self._active_streams)

    def stream_closed(self) -> None:
        with self._lock:
            self._active_streams -= 1

    @property
    def active_streams(self) -> int:
        with self._lock:
            return self._active_streams

    @property
    def peak_streams(self) -> int:
        with self._lock:
            return self._peak_streams

    def reset_peak_streams(self) -> None:
        with self._lock:
            self._peak_streams = self._active_streams
