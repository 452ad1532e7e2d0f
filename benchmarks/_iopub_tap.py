"""A second subscriber on a running kernel's IOPub socket: every message, its wire size, its arrival time.

JupyterLab owns the kernel; IOPub is a PUB socket, so one more SUB socket sees exactly what the
Jupyter server sees, without going through the browser (measuring in the page would cost the page
the very time we are measuring). Only the connection file's address and port are used; messages are
not signature-checked or fully decoded here (naive runs push hundreds of MB), just split into frames.

`time.time()` at arrival is "when the message left the kernel" up to one loopback ZMQ hop (~0.1 ms).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

DELIMITER = b"<IDS|MSG>"
# What a frontend renders or applies: output messages and widget (comm) traffic.
OUTPUT_TYPES = frozenset({
    "display_data", "update_display_data", "clear_output", "execute_result", "stream", "error",
    "comm_open", "comm_msg", "comm_close",
})  # fmt: skip


@dataclass
class TapMessage:
    t: float  # epoch seconds at arrival
    msg_type: str
    parent_id: str
    wire_bytes: int  # all ZMQ frames: topic, delimiter, signature, header, parent, metadata, content, buffers
    content: bytes  # the raw JSON content frame

    def json(self) -> Any:
        return json.loads(self.content)


class IOPubTap:
    """Usage::

        tap = IOPubTap(connection_file).start()
        mark = tap.mark()
        ...                                    # something runs in the kernel
        messages = tap.since(mark)
        tap.close()
    """

    def __init__(self, connection_file: str | Path) -> None:
        info = json.loads(Path(connection_file).read_text())
        self._address = f"{info['transport']}://{info['ip']}:{info['iopub_port']}"
        self._context = zmq.Context()
        self._cond = threading.Condition()
        self._messages: list[TapMessage] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> IOPubTap:
        socket = self._context.socket(zmq.SUB)
        socket.setsockopt(zmq.RCVHWM, 0)  # never drop: a slow reader queues instead
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(self._address)
        self._thread = threading.Thread(target=self._read, args=(socket,), name="iopub-tap", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._context.term()

    def _read(self, socket: zmq.Socket[bytes]) -> None:
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(50):
                    continue
                frames = socket.recv_multipart()
                arrived = time.time()
                try:
                    parts = frames[frames.index(DELIMITER) + 1 :]
                    header, parent = json.loads(parts[1]), json.loads(parts[2])
                except (ValueError, IndexError):
                    continue
                message = TapMessage(
                    arrived, header.get("msg_type", ""), parent.get("msg_id", ""),
                    sum(len(frame) for frame in frames), parts[4],
                )
                with self._cond:
                    self._messages.append(message)
                    self._cond.notify_all()
        finally:
            socket.close(linger=0)

    def mark(self) -> int:
        """Index of the next message to arrive."""
        with self._cond:
            return len(self._messages)

    def since(self, mark: int) -> list[TapMessage]:
        with self._cond:
            return self._messages[mark:]

    def forget(self) -> None:
        """Drop stored messages (their content can be large); marks taken before are invalid."""
        with self._cond:
            self._messages = []

    def wait_for(self, predicate: Callable[[TapMessage], bool], mark: int, timeout: float) -> TapMessage:
        deadline = time.monotonic() + timeout
        seen = mark
        with self._cond:
            while True:
                for message in self._messages[seen:]:
                    if predicate(message):
                        return message
                seen = len(self._messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching IOPub message within {timeout:.0f} s")
                self._cond.wait(min(remaining, 0.5))

    def execution(self, marker: str, mark: int, timeout: float) -> tuple[str, list[TapMessage]]:
        """Wait for the execution whose code contains `marker` to go idle: (msg_id, its messages)."""
        needle = marker.encode()
        started = self.wait_for(lambda m: m.msg_type == "execute_input" and needle in m.content, mark, timeout)
        msg_id = started.parent_id

        def idle(m: TapMessage) -> bool:
            return m.msg_type == "status" and m.parent_id == msg_id and b'"idle"' in m.content

        self.wait_for(idle, mark, timeout)
        return msg_id, [m for m in self.since(mark) if m.parent_id == msg_id]
