"""Run one turn: stream it through the SDK, fold events into a TurnState, hand frames to a sink.

This is the one place that talks to the network. It owns the retry policy (the SDK's own retries
are switched off so the user can see each retry happen) and turns every way a stream can end —
completed, API error, connection loss, KeyboardInterrupt, Stop — into a final TurnState; it never
lets an API exception escape, so every surface draws failures the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

import anthropic

from claude_magic._wire import EMULATOR_HEADER
from claude_magic.core.errors import describe_error, retry_delay
from claude_magic.core.frames import FrameScheduler, LoopFrameScheduler, NoFrames
from claude_magic.core.throttle import Throttle
from claude_magic.core.turn import ErrorInfo, TurnState, Usage, reduce_event
from claude_magic.core.wire_events import tapping


class Sink(Protocol):
    """A surface that shows a turn: the cell, the panel, the terminal."""

    def start(self, state: TurnState) -> None: ...

    def frame(self, state: TurnState) -> None: ...

    def affords(self, state: TurnState) -> bool:
        """Whether a regular frame fits the surface's byte budget now (see `render.budget`)."""
        ...

    def finish(self, state: TurnState) -> None: ...


class TurnControl:
    """Lets another thread stop a running turn (the panel's Stop button), and an Interrupt end it cleanly.

    Setting the flag alone would wait for the next event, which never comes if the server stalls.
    Closing the response from another thread does not wake a read blocked in recv() either
    (measured: the turn ran on until the server's next byte), so stop() first shuts the socket
    down, which fails the blocked read at once; the reader sees the flag and reports "stopped".
    """

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        # Set by an Interrupt (see interrupts_end_the_stream), under a lock of their own that nothing else
        # takes: the SIGINT handler may run while the main thread holds any other lock. Reentrant, as a
        # second signal's handler can run inside the first's.
        self.interrupted = False
        self.finishing = False
        self._interrupt_lock = threading.RLock()
        self._ended_by_watcher = 0  # Interrupts the wakeup watcher acted on before their handler ran

    @property
    def stopped(self) -> bool:
        return self.interrupted or self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _shutdown_socket(stream)
            # Best effort: if closing fails, the reader still sees the flag at the next event.
            with contextlib.suppress(Exception):
                stream.close()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if stopped meanwhile."""
        return self._stopped.wait(seconds)

    def _attach(self, stream: Any) -> None:
        with self._lock:
            self._stream = stream
        if self.stopped:
            stream.close()

    def _detach(self) -> None:
        with self._lock:
            self._stream = None

    def _on_interrupt_signal(self) -> bool:
        """SIGINT's handler, on the main thread: True if the Interrupt was taken care of, False if the caller
        should raise KeyboardInterrupt (as Python would)."""
        with self._interrupt_lock:
            if self._ended_by_watcher:  # this Interrupt already ended the stream, from the watcher
                self._ended_by_watcher -= 1
                return True
            return self._end_for_interrupt()

    def _on_interrupt_wakeup(self) -> None:
        """The same Interrupt seen by the watcher thread, which acts at once even when the main thread is
        blocked in a read the signal did not interrupt. Without a stream to end it leaves the Interrupt to
        the handler."""
        with self._interrupt_lock:
            if self._end_for_interrupt():
                self._ended_by_watcher += 1

    def _end_for_interrupt(self) -> bool:
        """With a stream open, end it the way Stop does (flag, socket shut down: the blocked read fails at
        once) and return True: no KeyboardInterrupt is raised into whatever HTTP, SDK or drawing code
        happens to be running, where it could leave a lock held or a library half-way through. Without one
        (connecting, between tool rounds, waiting to retry) return False."""
        if self.finishing:
            return True  # the answer is complete and being committed: nothing left to interrupt
        stream = self._stream  # read without self._lock, which the main thread may hold
        if stream is None or self.interrupted:
            return False  # a second Interrupt while the first winds down is a plain KeyboardInterrupt
        self.interrupted = True
        _shutdown_socket(stream)
        return True


_WATCHER_DONE = b"\0"  # no signal has number 0


@contextlib.contextmanager
def interrupts_end_the_stream(control: TurnControl) -> Iterator[None]:
    """On the main thread, while Python's default SIGINT handler is installed (a kernel running a cell,
    terminal IPython), route SIGINT through `control` for the duration of the turn.

    Python runs a signal's handler on the main thread, but the OS may deliver the signal to any thread;
    then a read blocked in the main thread is not interrupted, and the handler waits for the next byte
    from the server (seen: a whole 60 s stall). So a watcher thread also reads the signal's wakeup fd,
    which CPython writes whichever thread received it, and ends the stream at once.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if not control._on_interrupt_signal():
            raise KeyboardInterrupt

    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=_watch_wakeups, args=(reader, previous_fd, control), daemon=True,
                               name="claude-interrupt-watcher")
    watcher.start()
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(previous_fd)
        writer.send(_WATCHER_DONE)
        watcher.join()
        reader.close()
        writer.close()


def _watch_wakeups(reader: socket.socket, forward_fd: int, control: TurnControl) -> None:
    """The watcher: each byte is a signal's number. SIGINT ends the stream; every byte is passed on to the
    wakeup fd that was set before the turn (an event loop's), so no one else misses a signal."""
    while data := reader.recv(256):
        signals, done = data.partition(_WATCHER_DONE)[0], _WATCHER_DONE in data
        if signal.SIGINT in signals:
            control._on_interrupt_wakeup()
        if signals and forward_fd != -1:
            with contextlib.suppress(OSError):
                os.write(forward_fd, signals)
        if done:
            return


def _shutdown_socket(stream: Any) -> None:
    # Must come before close(), which releases the socket; other transports have no socket to reach.
    # socket.socket's own shutdown: on a TLS socket it shuts the connection down without touching the
    # SSL object the reading thread is using.
    with contextlib.suppress(Exception):
        sock = stream.response.extensions["network_stream"].get_extra_info("socket")
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def run_turn(
    client: anthropic.Anthropic,
    request: dict[str, Any],
    state: TurnState,
    sink: Sink | None,
    *,
    throttle: Throttle,
    max_retries: int = 2,
    control: TurnControl | None = None,
    clock: Callable[[], float] = time.monotonic,
    after_round: Callable[[TurnState, Any], dict[str, Any] | None] | None = None,
    settle: Callable[[TurnState], None] | None = None,
) -> TurnState:
    """Stream `request` into `state`, drawing on `sink` (None: draw nothing); returns the finished state.

    `after_round(state, frames)` (tool use, see `core.tool_loop`) runs after each completed message, on
    this thread and under the same interrupt handling; it returns the next request to stream into the same
    state and output, or None when the turn is over.
    """
    control = control or TurnControl()
    frames: FrameScheduler | NoFrames = NoFrames()
    if sink is not None:
        sink.start(state)
        frames = FrameScheduler(state, sink, throttle)
    with interrupts_end_the_stream(control):
        try:
            while True:
                _stream_with_retries(client, request, state, frames, control, clock, max_retries)
                if control.interrupted and state.status == "complete":
                    # Interrupted as the message ended: no tool round or resumption starts after it.
                    _mark_interrupted(state, "Interrupted", clock())
                if after_round is None or state.status != "complete":
                    break
                next_request = after_round(state, frames)
                if next_request is None:
                    break
                request = next_request
        except KeyboardInterrupt:
            _mark_interrupted(state, "Interrupted", clock())
        finally:
            control.finishing = True
            frames.close()
        state.notice = None
        if settle is not None:
            settle(state)  # commit before the final draw, which says where the turn went
        if sink is not None:
            sink.finish(state)
    return state


def _stream_with_retries(
    client: anthropic.Anthropic,
    request: dict[str, Any],
    state: TurnState,
    frames: FrameScheduler | NoFrames,
    control: TurnControl,
    clock: Callable[[], float],
    max_retries: int,
) -> None:
    """One request's attempts (retried before the first token of this message); the caller handles
    KeyboardInterrupt."""
    attempt = 0
    while True:
        try:
            _stream_once(client, request, state, frames, control, clock)
            break
        except Exception as exc:  # noqa: BLE001 - every failure becomes a state the user sees
            if control.stopped:
                _mark_ended_by(control, state, clock())
                break
            info, delay = _retry_plan(exc, state, attempt, max_retries)
            if delay is not None:
                attempt += 1
                with frames.lock:
                    _show_retry(state, info, delay, attempt, max_retries)
                    frames.force()
                if control.wait(delay):
                    _mark_ended_by(control, state, clock())
                    break
                continue
            _mark_failed(state, info, clock())
            break


def _stream_once(
    client: anthropic.Anthropic,
    request: dict[str, Any],
    state: TurnState,
    frames: FrameScheduler | NoFrames,
    control: TurnControl,
    clock: Callable[[], float],
) -> None:
    # The raw view's tap (a no-op unless the turn records events) is set before the stream opens.
    with tapping(state, clock, frames.lock) as tap, client.messages.stream(**request) as stream:
        control._attach(stream)
        try:
            _note_response(state, stream)
            tap.response(stream.response)
            for event in stream:
                with frames.lock:
                    tap.drain(state)  # the wire events up to this one, pings included
                    _fold(state, event, clock())
                    if control.stopped:
                        _mark_ended_by(control, state, clock())
                        return
                    frames.after_event()
            if state.status == "complete":
                state.final_message = stream.get_final_message()
        finally:
            control._detach()
    _check_ended(state, stream)


class SharedBackoff:
    """Turns of one batch back off together (`map`): a wait one of them was told to keep (a 429/529's
    retry-after, or the backoff after it) holds every request of the batch that starts meanwhile, so a
    rate limit slows the batch down instead of failing each prompt in turn."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        self._until = max(self._until, self._clock() + seconds)

    async def wait(self) -> None:
        while (remaining := self._until - self._clock()) > 0:
            await asyncio.sleep(remaining)


async def run_turn_async(
    client: anthropic.AsyncAnthropic,
    request: dict[str, Any],
    state: TurnState,
    sink: Sink | None,
    *,
    throttle: Throttle,
    max_retries: int = 2,
    backoff: SharedBackoff | None = None,
    clock: Callable[[], float] = time.monotonic,
    after_round: Callable[[TurnState, Any], Awaitable[dict[str, Any] | None]] | None = None,
    settle: Callable[[TurnState], None] | None = None,
) -> TurnState:
    """`run_turn` on an event loop: the same reducer, retry policy, error mapping and final states.

    Cancelling the task (`task.cancel()`) or an interrupt ends the turn as "interrupted", partial answer
    kept and marked, with its final draw; a CancelledError is then raised again, as asyncio expects.
    """
    frames: LoopFrameScheduler | NoFrames = NoFrames()
    if sink is not None:
        sink.start(state)
        frames = LoopFrameScheduler(state, sink, throttle, clock)
    cancelled: asyncio.CancelledError | None = None
    try:
        while True:
            await _stream_with_retries_async(client, request, state, frames, clock, max_retries, backoff)
            if after_round is None or state.status != "complete":
                break
            next_request = await after_round(state, frames)
            if next_request is None:
                break
            request = next_request
    except asyncio.CancelledError as exc:
        cancelled = exc
        state.error_raised = False  # the caller gets CancelledError, not this line: the drawing must say it
        _mark_interrupted(state, "Cancelled", clock())
    except KeyboardInterrupt:
        _mark_interrupted(state, "Interrupted", clock())
    finally:
        frames.close()
    state.notice = None
    if settle is not None:
        settle(state)
    if sink is not None:
        sink.finish(state)
    if cancelled is not None:
        raise cancelled
    return state


async def _stream_with_retries_async(
    client: anthropic.AsyncAnthropic,
    request: dict[str, Any],
    state: TurnState,
    frames: LoopFrameScheduler | NoFrames,
    clock: Callable[[], float],
    max_retries: int,
    backoff: SharedBackoff | None,
) -> None:
    attempt = 0
    while True:
        try:
            if backoff is not None:
                await backoff.wait()
            await _stream_once_async(client, request, state, frames, clock)
            break
        except Exception as exc:  # noqa: BLE001 - every failure becomes a state the user sees
            info, delay = _retry_plan(exc, state, attempt, max_retries)
            if delay is not None:
                attempt += 1
                if backoff is not None and info.status_code in (429, 529):
                    backoff.hold(delay)
                _show_retry(state, info, delay, attempt, max_retries)
                frames.force()
                await asyncio.sleep(delay)
                continue
            _mark_failed(state, info, clock())
            break


async def _stream_once_async(
    client: anthropic.AsyncAnthropic,
    request: dict[str, Any],
    state: TurnState,
    frames: LoopFrameScheduler | NoFrames,
    clock: Callable[[], float],
) -> None:
    with tapping(state, clock, frames.lock) as tap:
        async with client.messages.stream(**request) as stream:
            _note_response(state, stream)
            tap.response(stream.response)
            async for event in stream:
                tap.drain(state)
                _fold(state, event, clock())
                frames.after_event()
            if state.status == "complete":
                state.final_message = await stream.get_final_message()
    _check_ended(state, stream)


# -- what the sync and async paths share -----------------------------------------------------------------


def _note_response(state: TurnState, stream: Any) -> None:
    state.request_id = stream.request_id
    if stream.response.headers.get(EMULATOR_HEADER):
        state.offline = True


def _fold(state: TurnState, event: Any, now: float) -> None:
    reduce_event(state, event, now)
    if state.notice is not None and state.first_token_at is not None:
        state.notice = None  # a retry notice goes once text flows again


def _check_ended(state: TurnState, stream: Any) -> None:
    if state.status != "complete":
        # The SDK ended iteration without message_stop: the body ended early.
        raise anthropic.APIConnectionError(
            message="the stream ended before message_stop", request=stream.response.request
        )


def _retry_plan(exc: Exception, state: TurnState, attempt: int, max_retries: int) -> tuple[ErrorInfo, float | None]:
    """What went wrong, and the delay before retrying (None: no retry). Only failures before this
    message's first token are retried: after it, a retry would silently send the question again."""
    info = describe_error(exc, model=state.model, output_tokens=state.tokens_so_far)
    if info.retryable and not state.round_has_content and attempt < max_retries:
        return info, retry_delay(exc, attempt)
    return info, None


def _show_retry(state: TurnState, info: ErrorInfo, delay: float, attempt: int, max_retries: int) -> None:
    _reset_for_retry(state)
    state.notice = f"{info.message}: retrying in {delay:.3g} s (retry {attempt} of {max_retries})"
    state.revision += 1


def _mark_interrupted(state: TurnState, what: str, now: float) -> None:
    state.error = _ended_early("interrupted", what, state)
    state.status = "interrupted"
    state.finished_at = now


def _reset_for_retry(state: TurnState) -> None:
    # Only the current message is repeated; earlier tool rounds, and the answer a continuation goes on
    # from, stay drawn and counted.
    del state.blocks[max(state.round_start, state.kept_blocks) :]
    if state.kept_blocks > state.round_start:  # the continued block takes the retried message's text again
        state.blocks[-1].complete = True
        state.seam = True
    state.usage = Usage()
    state.usage_final = False
    state.deltas = 0
    state.chars = 0
    state.status = "waiting"
    state.stop_reason = None
    state.first_token_at = None


def _ended_early(kind: str, what: str, state: TurnState) -> ErrorInfo:
    if state.has_content:
        return ErrorInfo(kind, f"{what} after {state.tokens_so_far} tokens").finalize(partial=True)
    return ErrorInfo(kind, f"{what} before the first token: nothing was added to history")


def _mark_ended_by(control: TurnControl, state: TurnState, now: float) -> None:
    if control.interrupted:
        _mark_interrupted(state, "Interrupted", now)
    else:
        _mark_stopped(state, now)


def _mark_stopped(state: TurnState, now: float) -> None:
    state.status = "stopped"
    state.finished_at = now
    state.error = _ended_early("stopped", "Stopped", state)


def _mark_failed(state: TurnState, info: ErrorInfo, now: float) -> None:
    state.error = info.finalize(partial=state.has_content)
    state.status = "error"
    state.finished_at = now
