"""The emulator, plus the one timestamp the benchmark needs from it: when the last token left.

The emulator does not record per-token timing, so the benchmark swaps in a request handler that
notes `time.time()` right after writing (and flushing) the SSE chunk that carries a watched marker.
Each answer ends with a unique one-token sentinel word, so "the chunk carrying the sentinel" is
exactly "the last token of this answer". Measurement only; the emulator's behaviour is unchanged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from claude_magic.emulator import Emulator, count_tokens, generate_markdown
from claude_magic.emulator._server import EmulatorHandler

SEED = 1  # the same answer text at every length, run after run


class LastTokenClock:
    """Thread-safe record of when a chunk containing a watched marker was written to the socket."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: set[bytes] = set()
        self._sent: dict[bytes, float] = {}

    def watch(self, *markers: str) -> None:
        with self._cond:
            self._watched.update(marker.encode() for marker in markers)

    def note(self, data: bytes) -> None:
        with self._cond:
            for marker in self._watched:
                if marker in data:
                    self._sent.setdefault(marker, time.time())
                    self._cond.notify_all()

    def wait(self, marker: str, timeout: float) -> float | None:
        """Epoch seconds when `marker` was sent, waiting up to `timeout`; None if it never was."""
        key = marker.encode()
        with self._cond:
            self._cond.wait_for(lambda: key in self._sent, timeout)
            return self._sent.get(key)


def start_emulator(clock: LastTokenClock) -> Emulator:
    """A started emulator whose streams report sentinel chunks to `clock`."""

    class TimedHandler(EmulatorHandler):
        def _write_chunk(self, data: bytes) -> None:
            super()._write_chunk(data)
            if b"text_delta" in data:
                clock.note(data)

    emulator = Emulator(chunk_tokens=1).start()
    # ThreadingHTTPServer builds a handler per connection from this attribute.
    emulator._server.RequestHandlerClass = TimedHandler  # type: ignore[union-attr]
    return emulator


@dataclass(frozen=True)
class Answer:
    """One scripted answer: realistic Markdown of exactly `tokens` tokens ending in `sentinel`."""

    tokens: int
    sentinel: str
    text: str

    @property
    def first_token(self) -> str:
        return self.text.split()[0]


def make_answer(tokens: int, sentinel: str) -> Answer:
    """`generate_markdown(tokens - 1)` plus the sentinel as its own last paragraph (one token).

    As its own paragraph, the sentinel cannot merge into a code fence or table the generated text
    may end with, and it shows up in the DOM as soon as the frame carrying it is rendered.
    """
    if not (sentinel.isalnum() and len(sentinel) <= 8):
        raise ValueError("the sentinel must be one token: at most 8 letters/digits")
    text = generate_markdown(tokens - 1, seed=SEED) + "\n\n" + sentinel
    assert count_tokens(text) == tokens, (count_tokens(text), tokens)
    return Answer(tokens, sentinel, text)


def script_for(turns: dict[str, Answer], tokens_per_second: float) -> dict[str, object]:
    """A script answering each prompt (matched as a substring) with its answer at the given pace."""
    pace = {"tokens_per_second": tokens_per_second, "chunk_tokens": 1}
    return {
        "turns": [
            {"match": prompt, "pace": pace, "content": [{"type": "text", "text": answer.text}]}
            for prompt, answer in turns.items()
        ]
    }
