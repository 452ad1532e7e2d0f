"""Drive a real IPython kernel through jupyter_client and reconstruct what a notebook would show.

A :class:`KernelSession` starts ``ipykernel`` (kernel spec ``python3``, which jupyter_client resolves to
``sys.executable``) and runs a single background thread that reads the IOPub channel and routes every
message into a per-parent buffer keyed by the parent ``msg_id``. Nothing is ever dropped: messages for
requests nobody is waiting on (concurrent cells, background threads of the kernel that still carry an
older cell's parent header) stay in their buffer and can be read with :meth:`KernelSession.messages_for`.

Shell replies are read only by the calling thread (zmq sockets are not thread safe and the shell socket is
also used for sending); replies for other requests are stashed by parent id as well.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

__all__ = ["ExecutionResult", "KernelSession", "reconstruct_outputs", "strip_ansi"]

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

Message = dict[str, Any]


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences (IPython colours tracebacks)."""
    return _ANSI_RE.sub("", text)


# ---------------------------------------------------------------------------------------------------------
# Output reconstruction (what JupyterLab's OutputArea shows)
# ---------------------------------------------------------------------------------------------------------


def _fix_overwritten_chars(text: str) -> str:
    """Apply backspaces and carriage returns like ``@jupyterlab/outputarea`` (removeOverwrittenChars).

    ``\\b`` deletes the previous character on the line; ``\\r\\n`` is a newline; text after a lone ``\\r``
    overwrites the start of the line character by character (``"abc\\rX"`` -> ``"Xbc"``); a trailing
    ``\\r`` is kept so that the next chunk of the same stream overwrites the line.
    """
    while True:
        new = re.sub(r"[^\n]\x08", "", text)
        if len(new) == len(text):
            break
        text = new
    text = re.sub(r"\r+\n", "\n", text)
    lines = []
    for line in text.split("\n"):
        parts = re.split(r"\r+", line)
        current = parts[0]
        for part in parts[1:]:
            current = part + current[len(part) :]
        if len(parts) > 1 and parts[-1] == "":
            current += "\r"
        lines.append(current)
    return "\n".join(lines)


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(value)
    return value if isinstance(value, str) else str(value)


def reconstruct_outputs(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Fold IOPub messages into the final nbformat-like outputs of one output area.

    Follows ``@jupyterlab/outputarea``: ``display_data``/``execute_result``/``stream``/``error`` are added
    (consecutive streams of the same name are merged, ``\\r``/``\\b`` applied); ``update_display_data``
    replaces data and metadata of every output in this area that was displayed with that ``display_id``
    (unknown ids are ignored); ``clear_output`` with ``wait=False`` clears now, with ``wait=True`` clears
    just before the next output is *added* (updates in between are applied to the old outputs). Clearing
    also forgets the display ids, as JupyterLab does.
    """
    outputs: list[dict[str, Any]] = []
    display_ids: dict[str, list[int]] = {}
    clear_next = False
    last_stream: str | None = None  # name of the stream output that is last in `outputs`, if any

    def clear() -> None:
        nonlocal last_stream
        outputs.clear()
        display_ids.clear()
        last_stream = None

    for msg in messages:
        msg_type = msg["header"]["msg_type"] if "header" in msg else msg.get("msg_type")
        content = msg.get("content", {})
        transient = content.get("transient") or {}
        display_id = transient.get("display_id")

        if msg_type in ("display_data", "execute_result", "stream", "error"):
            if clear_next:
                clear()
                clear_next = False
            if msg_type == "stream":
                name = content.get("name", "stdout")
                text = _as_text(content.get("text", ""))
                if last_stream == name and outputs and outputs[-1].get("output_type") == "stream":
                    merged = outputs[-1]["text"] + text
                    outputs[-1]["text"] = _fix_overwritten_chars(merged)
                else:
                    outputs.append({"output_type": "stream", "name": name, "text": _fix_overwritten_chars(text)})
                last_stream = name
                continue
            last_stream = None
            if msg_type == "error":
                outputs.append(
                    {
                        "output_type": "error",
                        "ename": content.get("ename", ""),
                        "evalue": content.get("evalue", ""),
                        "traceback": list(content.get("traceback", [])),
                    }
                )
                continue
            out: dict[str, Any] = {
                "output_type": msg_type,
                "data": dict(content.get("data", {})),
                "metadata": dict(content.get("metadata", {})),
            }
            if msg_type == "execute_result":
                out["execution_count"] = content.get("execution_count")
            if display_id:
                out["transient"] = {"display_id": display_id}
            outputs.append(out)
            if display_id and msg_type == "display_data":
                display_ids.setdefault(display_id, []).append(len(outputs) - 1)
        elif msg_type == "update_display_data":
            for index in display_ids.get(display_id or "", []):
                if index < len(outputs):
                    outputs[index] = {
                        "output_type": "display_data",
                        "data": dict(content.get("data", {})),
                        "metadata": dict(content.get("metadata", {})),
                        "transient": {"display_id": display_id},
                    }
        elif msg_type == "clear_output":
            if content.get("wait"):
                clear_next = True
            else:
                clear()
                clear_next = False
    return outputs


def outputs_text(outputs: Iterable[Mapping[str, Any]], mime: str = "text/plain") -> str:
    """Concatenate ``data[mime]`` of display outputs and the text of stream outputs."""
    parts: list[str] = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out and mime in out["data"]:
            parts.append(_as_text(out["data"][mime]))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------------
# ExecutionResult
# ---------------------------------------------------------------------------------------------------------


@dataclass
class ExecutionResult:
    """Everything one ``execute_request`` produced.

    ``messages`` are the IOPub messages whose parent ``msg_id`` is ``msg_id``, in arrival order, each with an
    extra key ``"t"`` (``time.monotonic()`` when the harness received it). It is a snapshot taken when the
    request finished; messages that arrive later (background threads) are in
    :meth:`KernelSession.messages_for` / :meth:`KernelSession.result_for`.
    """

    msg_id: str
    messages: list[Message]
    reply: dict[str, Any]
    status: str
    sent_at: float = 0.0
    reply_at: float = 0.0
    idle_at: float = 0.0

    def of_type(self, *msg_types: str) -> list[Message]:
        return [m for m in self.messages if m["header"]["msg_type"] in msg_types]

    def displays(self) -> list[Message]:
        """display_data, update_display_data and execute_result messages, in arrival order."""
        return self.of_type("display_data", "update_display_data", "execute_result")

    def stdout(self) -> str:
        return "".join(
            _as_text(m["content"]["text"]) for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    def stderr(self) -> str:
        return "".join(
            _as_text(m["content"]["text"]) for m in self.of_type("stream") if m["content"]["name"] == "stderr"
        )

    def error(self) -> dict[str, Any] | None:
        """Content of the ``error`` IOPub message (ename, evalue, traceback), if any."""
        errors = self.of_type("error")
        if errors:
            return errors[-1]["content"]
        if self.reply.get("status") == "error":
            return {k: self.reply.get(k) for k in ("ename", "evalue", "traceback")}
        return None

    def traceback_text(self) -> str:
        err = self.error()
        if not err:
            return ""
        return strip_ansi("\n".join(err.get("traceback") or [f"{err.get('ename')}: {err.get('evalue')}"]))

    def final_outputs(self) -> list[dict[str, Any]]:
        """The outputs the notebook's output area shows at the end (see :func:`reconstruct_outputs`)."""
        return reconstruct_outputs(self.messages)

    def final_text(self, mime: str = "text/plain") -> str:
        """Concatenation of the final outputs' ``data[mime]`` and stream texts."""
        return outputs_text(self.final_outputs(), mime)

    def duration(self) -> float:
        """Seconds from sending the request to its idle status."""
        return self.idle_at - self.sent_at

    def first_time(self, msg_type: str) -> float | None:
        """Arrival time (monotonic) of the first message of that type, or None."""
        for m in self.messages:
            if m["header"]["msg_type"] == msg_type:
                return m["t"]
        return None


# ---------------------------------------------------------------------------------------------------------
# KernelSession
# ---------------------------------------------------------------------------------------------------------


class KernelSession:
    """A real ipykernel started with ``jupyter_client.KernelManager``.

    ``env`` is added to (and overrides) ``os.environ`` for the kernel process; ``cwd`` is its working
    directory. Use as a context manager, or call :meth:`start` / :meth:`shutdown` (both idempotent).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60,
        kernel_name: str = "python3",
    ) -> None:
        self.env = dict(env or {})
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.startup_timeout = startup_timeout
        self.kernel_name = kernel_name
        self.km: KernelManager | None = None
        self.kc: Any = None  # BlockingKernelClient
        self._cond = threading.Condition()
        self._buffers: dict[str, list[Message]] = {}
        self._all: list[Message] = []
        self._idle: dict[str, float] = {}
        self._replies: dict[str, tuple[float, Message]] = {}
        self._sent: dict[str, float] = {}
        self._shell_lock = threading.Lock()
        self._stop = threading.Event()
        self._stacks_path = ""
        self._reader: threading.Thread | None = None
        self._reader_error: BaseException | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> KernelSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(now=True)

    @property
    def is_alive(self) -> bool:
        return bool(self.km is not None and self.km.is_alive())

    def start(self) -> KernelSession:
        if self._started:
            return self
        if self._closed:
            raise RuntimeError("KernelSession was shut down; create a new one")
        self._started = True
        env = dict(os.environ)
        env.update(self.env)
        # A kernel must not inherit the parent's "I am a kernel" markers.
        env.pop("JPY_PARENT_PID", None)
        self.km = KernelManager(kernel_name=self.kernel_name)
        # If a request hangs, `collect` asks the kernel for every thread's stack (faulthandler on
        # SIGUSR1, written to a file of this session) and puts it in the error.
        with tempfile.NamedTemporaryFile(prefix="kernel-stacks-", suffix=".txt", delete=False) as stacks:
            self._stacks_path = stacks.name
        dump_on_sigusr1 = (f"__import__('faulthandler').register(__import__('signal').SIGUSR1, "
                           f"file=open({self._stacks_path!r}, 'w'), all_threads=True)")
        kwargs: dict[str, Any] = {"env": env, "extra_arguments": [f"--IPKernelApp.exec_lines={[dump_on_sigusr1]!r}"]}
        if self.cwd is not None:
            kwargs["cwd"] = self.cwd
        try:
            self.km.start_kernel(**kwargs)
            self.kc = self.km.client()
            self.kc.allow_stdin = False
            self.kc.start_channels()
            # wait_for_ready reads IOPub itself: do it before the reader thread owns the socket.
            self.kc.wait_for_ready(timeout=self.startup_timeout)
        except BaseException:
            self.shutdown(now=True)
            raise
        self._reader = threading.Thread(target=self._read_iopub, name="KernelSession-iopub", daemon=True)
        self._reader.start()
        return self

    def shutdown(self, now: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        if self.km is not None:
            try:
                if self.km.has_kernel:
                    self.km.shutdown_kernel(now=now)
            except Exception:
                pass
            with contextlib.suppress(Exception):
                self.km.cleanup_resources()
        if self._stacks_path:
            with contextlib.suppress(OSError):
                os.unlink(self._stacks_path)

    # -- IOPub reader -----------------------------------------------------------------------------------------

    def _read_iopub(self) -> None:
        channel = self.kc.iopub_channel
        while not self._stop.is_set():
            try:
                msg = channel.get_msg(timeout=0.05)
            except queue.Empty:
                continue
            except Exception as exc:  # socket closed during shutdown, or a real failure
                if not self._stop.is_set():
                    self._reader_error = exc
                return
            msg["t"] = time.monotonic()
            parent = (msg.get("parent_header") or {}).get("msg_id", "")
            with self._cond:
                self._buffers.setdefault(parent, []).append(msg)
                self._all.append(msg)
                if msg["header"]["msg_type"] == "status" and msg["content"].get("execution_state") == "idle" and parent:
                    self._idle.setdefault(parent, msg["t"])
                self._cond.notify_all()

    def _check_reader(self) -> None:
        if self._reader_error is not None:
            raise RuntimeError(f"IOPub reader failed: {self._reader_error!r}") from self._reader_error

    # -- executing ------------------------------------------------------------------------------------------

    def execute_async(
        self,
        code: str,
        stop_on_error: bool = True,
        store_history: bool = True,
        silent: bool = False,
        user_expressions: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Send an execute_request and return its msg_id without waiting. ``metadata`` goes in the request's
        metadata as a frontend sends it (JupyterLab: ``{"cellId": ..., "deletedCells": [...]}``)."""
        if not self._started or self._closed:
            raise RuntimeError("kernel is not running; call start() first")
        with self._shell_lock:
            sent_at = time.monotonic()  # before sending: the reader thread may see replies before we return
            if metadata is None:
                msg_id: str = self.kc.execute(
                    code,
                    silent=silent,
                    store_history=store_history,
                    user_expressions=user_expressions,
                    allow_stdin=False,
                    stop_on_error=stop_on_error,
                )
            else:  # jupyter_client's execute() sends no metadata: build the request it would send, plus ours
                content = {"code": code, "silent": silent, "store_history": store_history,
                           "user_expressions": user_expressions or {}, "allow_stdin": False,
                           "stop_on_error": stop_on_error}
                message = self.kc.session.msg("execute_request", content, metadata=metadata)
                self.kc.shell_channel.send(message)
                msg_id = message["header"]["msg_id"]
        with self._cond:
            self._sent[msg_id] = sent_at
        return msg_id

    def _wait_reply(self, msg_id: str, deadline: float) -> tuple[float, Message]:
        while True:
            with self._cond:
                if msg_id in self._replies:
                    return self._replies[msg_id]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            # Only one thread reads the shell socket at a time; replies for others are stashed.
            if not self._shell_lock.acquire(timeout=min(remaining, 0.1)):
                continue
            try:
                try:
                    reply = self.kc.shell_channel.get_msg(timeout=min(remaining, 0.1))
                except queue.Empty:
                    continue
                arrived = time.monotonic()
                parent = (reply.get("parent_header") or {}).get("msg_id", "")
                with self._cond:
                    self._replies[parent] = (arrived, reply)
                    self._cond.notify_all()
            finally:
                self._shell_lock.release()

    def collect(self, msg_id: str, timeout: float = 60) -> ExecutionResult:
        """Wait for that request's execute_reply and its idle status; return everything it produced."""
        deadline = time.monotonic() + timeout
        try:
            reply_at, reply = self._wait_reply(msg_id, deadline)
            status = reply["content"].get("status", "")
            with self._cond:
                # Aborted requests also publish idle in ipykernel, but do not hang if one does not.
                idle_deadline = min(deadline, time.monotonic() + 5) if status == "aborted" else deadline
                while msg_id not in self._idle:
                    self._check_reader()
                    remaining = idle_deadline - time.monotonic()
                    if remaining <= 0:
                        if status == "aborted":
                            break
                        raise TimeoutError
                    self._cond.wait(min(remaining, 0.2))
                messages = list(self._buffers.get(msg_id, []))
                idle_at = self._idle.get(msg_id, reply_at)
                sent_at = self._sent.get(msg_id, 0.0)
        except TimeoutError:
            got = self.messages_for(msg_id)
            summary = "\n".join(f"  {m['header']['msg_type']}: {str(m.get('content'))[:200]}" for m in got[-20:])
            raise TimeoutError(
                f"execute request {msg_id} did not finish within {timeout} s "
                f"(reply received: {msg_id in self._replies}); last IOPub messages:\n{summary}"
                f"\nthe kernel's threads:\n{self._kernel_stacks()}"
            ) from None
        return ExecutionResult(
            msg_id=msg_id,
            messages=messages,
            reply=reply["content"],
            status=status,
            sent_at=sent_at,
            reply_at=reply_at,
            idle_at=idle_at,
        )

    def execute(
        self,
        code: str,
        timeout: float = 60,
        allow_error: bool = False,
        stop_on_error: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run ``code`` and wait for it. Unless ``allow_error``, a status other than "ok" (an exception, or
        "aborted" behind a failed cell) raises AssertionError showing the traceback (ANSI codes stripped)."""
        msg_id = self.execute_async(code, stop_on_error=stop_on_error, metadata=metadata)
        result = self.collect(msg_id, timeout=timeout)
        if result.status != "ok" and not allow_error:
            raise AssertionError(
                f"cell ended with status {result.status!r}:\n{result.traceback_text()}\n--- code ---\n{code}"
            )
        return result

    def _kernel_stacks(self) -> str:
        """Every thread's stack in the kernel process, as faulthandler writes it (for a hang's report)."""
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if pid is None or not self.is_alive:
            return "  (kernel not running)"
        os.kill(pid, signal.SIGUSR1)
        time.sleep(1)
        return Path(self._stacks_path).read_text(errors="replace")[:12000] or "  (nothing written)"

    def interrupt(self) -> None:
        """Send SIGINT (or the kernel's interrupt mode) via ``KernelManager.interrupt_kernel()``."""
        assert self.km is not None
        self.km.interrupt_kernel()

    # -- reading buffers --------------------------------------------------------------------------------------

    def messages_for(self, msg_id: str) -> list[Message]:
        """All IOPub messages received so far whose parent msg_id is ``msg_id`` (a copy)."""
        with self._cond:
            return list(self._buffers.get(msg_id, []))

    def all_messages(self) -> list[Message]:
        """Every IOPub message received since start, in arrival order (a copy)."""
        with self._cond:
            return list(self._all)

    def result_for(self, result_or_id: ExecutionResult | str) -> ExecutionResult:
        """A fresh ExecutionResult for a finished request, including messages that arrived after it
        finished (e.g. from background threads that kept the cell's parent header)."""
        msg_id = result_or_id if isinstance(result_or_id, str) else result_or_id.msg_id
        with self._cond:
            if msg_id not in self._replies:
                raise KeyError(f"no reply collected for {msg_id}")
            reply_at, reply = self._replies[msg_id]
            return ExecutionResult(
                msg_id=msg_id,
                messages=list(self._buffers.get(msg_id, [])),
                reply=reply["content"],
                status=reply["content"].get("status", ""),
                sent_at=self._sent.get(msg_id, 0.0),
                reply_at=reply_at,
                idle_at=self._idle.get(msg_id, reply_at),
            )

    def wait_for(
        self,
        predicate: Callable[[Message], bool],
        msg_id: str | None = None,
        timeout: float = 10,
    ) -> Message:
        """Wait until an IOPub message (of ``msg_id``'s buffer, or any) satisfies ``predicate``.
        Already received messages count. Returns the first match; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                self._check_reader()
                source = self._buffers.get(msg_id, []) if msg_id is not None else self._all
                for msg in source[seen:]:
                    if predicate(msg):
                        return msg
                seen = len(source)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching IOPub message within {timeout} s")
                self._cond.wait(min(remaining, 0.2))
