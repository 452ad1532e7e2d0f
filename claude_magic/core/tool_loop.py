"""The tool loop: run every tool call of a message, send all results back, stream the next message.

`ToolLoop.after_round` / `after_round_async` plug into `core.stream.run_turn(_async)` (its `after_round`
hook), so every round streams into the same TurnState and output, with the same retries, Stop and
interrupt handling as a plain turn. The loop ends when a message's stop_reason is not `tool_use`, when
`max_tool_rounds` rounds ran (one line says so and how to raise the limit), or on Stop / Interrupt.

History: `exchange` collects the assistant messages and the user messages of results as they happen;
`committable` gives the whole exchange, or the longest prefix the API accepts (every `tool_use`
answered in the next message, ending on an assistant message), or None. Where tools run is documented
in `core.tools`.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from claude_magic.core.frames import NoFrames
from claude_magic.core.tools import (
    RESULT_LIMIT_CHARS,
    Outcome,
    ToolCallView,
    ToolSet,
    call_tool,
    call_tool_async,
    describe_call,
    result_param,
)
from claude_magic.core.turn import Block, ErrorInfo, TurnState, Usage

Message = dict[str, Any]
TICK_SECONDS = 0.5  # how often "running get_weather(…)… 1.5 s" is redrawn while a tool runs
ROUND_LIMIT_HINT = "raise it with %config ClaudeMagic.max_tool_rounds = {n} (or max_tool_rounds= in ask())"


class ToolLoop:
    """The bookkeeping of one turn's tool rounds (pure but for running the tools and drawing)."""

    def __init__(self, tools: ToolSet, request: dict[str, Any], *, max_rounds: int = 8,
                 result_limit: int = RESULT_LIMIT_CHARS, in_worker: bool = False, control: Any = None,
                 debug: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.tools = tools
        self.debug = debug  # %config ClaudeMagic.debug: a raising tool's traceback is shown under its line
        self.request = request
        self.max_rounds = max_rounds
        self.result_limit = result_limit
        self.in_worker = in_worker  # the panel: run sync tools in a thread of their own, so Stop is immediate
        self.control = control
        self.clock = clock
        self.exchange: list[Message] = []  # the messages after the prompt, as they happened
        self._resuming = False  # the message streaming now goes on with the paused one last in `exchange`

    # -- the hook ---------------------------------------------------------------------------------------

    def after_round(self, state: TurnState, frames: Any) -> dict[str, Any] | None:
        calls = self._close_message(state, frames)
        if calls is None:
            return None
        results = []
        for block in calls:
            if self._stopped():
                break
            view = self._show_call(state, frames, block)
            outcome = self._run_blocking(state, frames, view, block)
            if outcome is None:  # stopped while it ran
                break
            self._show_outcome(state, frames, view, outcome)
            results.append(result_param(block.tool_id, outcome))
        return self._next_request(state, frames, results, len(calls))

    async def after_round_async(self, state: TurnState, frames: Any) -> dict[str, Any] | None:
        calls = self._close_message(state, frames)
        if calls is None:
            return None
        results = []
        for block in calls:
            view = self._show_call(state, frames, block)
            ticker = asyncio.ensure_future(self._tick_async(state, frames, view))
            try:
                outcome = await call_tool_async(self.tools.get(block.tool_name), block.tool_name,
                                                _tool_input(block), self.result_limit)
            except BaseException:
                view.status = "interrupted"
                raise
            finally:
                ticker.cancel()
            self._show_outcome(state, frames, view, outcome)
            results.append(result_param(block.tool_id, outcome))
        return self._next_request(state, frames, results, len(calls))

    def resume_paused(self, state: TurnState, frames: Any) -> dict[str, Any] | None:
        """stop_reason pause_turn in a turn with tools: send the exchange so far back, ending with the paused
        assistant message, and the API goes on with it; what it sends joins that message (see
        `_close_message`). None when the paused message was empty: there is nothing to go on from."""
        if not self.exchange or self.exchange[-1]["role"] != "assistant":
            return None
        self._resuming = True
        with frames.lock:
            begin_round(state, tool_round=False)
        *before, paused = self.exchange
        return {**self.request, "messages": [*self.request["messages"], *before,
                                             {"role": "assistant", "content": as_prefill(paused["content"])}]}

    # -- history ----------------------------------------------------------------------------------------

    def committable(self, prompt: Any) -> list[Message] | None:
        """The exchange to commit (prompt first), cut back to what the API accepts; None: nothing valid."""
        return api_valid_prefix([{"role": "user", "content": prompt}, *self.exchange])

    def used_tool_names(self) -> set[str]:
        return {block["name"] for message in self.exchange if message["role"] == "assistant"
                for block in message["content"] if block.get("type") == "tool_use"}

    # -- steps ------------------------------------------------------------------------------------------

    def _close_message(self, state: TurnState, frames: Any) -> list[Block] | None:
        """Record the finished message; the tool calls to run, or None when the loop is over."""
        with frames.lock:
            blocks = state.blocks[state.round_start :]
            calls = []
            for block in blocks:
                if block.kind != "tool_use":
                    continue
                if block.to_param() is None:  # its input JSON was cut off (max_tokens): never run
                    block.cut_off = True
                    state.revision += 1
                else:
                    calls.append(block)
            content = [param for block in blocks if (param := block.to_param()) is not None]
        if self._resuming:  # the rest of a paused message: one assistant message in history, as the API sees it
            self._resuming = False
            self.exchange[-1] = {"role": "assistant", "content": [*self.exchange[-1]["content"], *content]}
        elif content:
            self.exchange.append({"role": "assistant", "content": content})
        if state.stop_reason != "tool_use" or not calls or not content:
            return None
        if state.tool_rounds >= self.max_rounds:
            names = ", ".join(dict.fromkeys(block.tool_name for block in calls))
            state.status = "error"
            state.finished_at = self.clock()
            state.error = ErrorInfo("tool_rounds", (
                f"Stopped after {self.max_rounds} tool round{'s' * (self.max_rounds != 1)} (max_tool_rounds): "
                f"Claude still wanted to call {names}; nothing was added to history"),
                hint=ROUND_LIMIT_HINT.format(n=self.max_rounds * 2)).finalize(partial=False)
            return None
        return calls

    def _show_call(self, state: TurnState, frames: Any, block: Block) -> ToolCallView:
        view = ToolCallView(block.tool_id, block.tool_name, describe_call(block.tool_name, _tool_input(block)),
                            started_at=self.clock())
        with frames.lock:
            state.blocks.append(Block("tool_result", call=view))
            state.revision += 1
            frames.force()
        return view

    def _show_outcome(self, state: TurnState, frames: Any, view: ToolCallView, outcome: Outcome) -> None:
        if not self.debug:
            outcome.traceback = ""  # one line in the cell unless debugging
        with frames.lock:
            view.elapsed = self.clock() - view.started_at
            view.outcome = outcome
            view.status = "error" if outcome.is_error else "done"
            state.blocks[-1].complete = True
            state.revision += 1
            frames.force()

    def _run_blocking(self, state: TurnState, frames: Any, view: ToolCallView, block: Block) -> Outcome | None:
        tool = self.tools.get(block.tool_name)
        tool_input = _tool_input(block)
        if not self.in_worker:
            # The calling thread (the kernel's main thread in a cell) runs the tool; a helper redraws
            # the elapsed time meanwhile.
            done = threading.Event()
            ticker = None
            try:  # from before the ticker starts: an Interrupt while it starts must still stop it
                if not isinstance(frames, NoFrames):
                    ticker = threading.Thread(target=contextvars.copy_context().run,
                                              args=(self._tick, state, frames, view, done), daemon=True,
                                              name="claude-tool-ticker")
                    ticker.start()
                return call_tool(tool, block.tool_name, tool_input, self.result_limit)
            except BaseException:
                view.status = "interrupted"
                raise
            finally:
                done.set()
                if ticker is not None and ticker.is_alive():  # not when an Interrupt cut its start short
                    ticker.join()
        # The panel: the tool runs in a thread of its own and this thread waits, redraws and watches Stop.
        # A stopped turn drops the result when the tool returns (a thread cannot be killed).
        result: dict[str, Outcome] = {}
        worker = threading.Thread(target=contextvars.copy_context().run, daemon=True, name="claude-tool",
                                  args=(lambda: result.setdefault("outcome", call_tool(
                                      tool, block.tool_name, tool_input, self.result_limit)),))
        worker.start()
        while True:
            worker.join(TICK_SECONDS)
            if not worker.is_alive():
                return result.get("outcome") or Outcome("The tool ended without a result.", is_error=True,
                                                        kind="error", preview="ended without a result")
            if self._stopped():
                with frames.lock:
                    view.status = "stopped"
                    view.elapsed = self.clock() - view.started_at
                return None
            self._redraw_elapsed(state, frames, view)

    def _tick(self, state: TurnState, frames: Any, view: ToolCallView, done: threading.Event) -> None:
        while not done.wait(TICK_SECONDS):
            self._redraw_elapsed(state, frames, view)

    async def _tick_async(self, state: TurnState, frames: Any, view: ToolCallView) -> None:
        if isinstance(frames, NoFrames):
            return
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self._redraw_elapsed(state, frames, view)

    def _redraw_elapsed(self, state: TurnState, frames: Any, view: ToolCallView) -> None:
        with frames.lock:
            if view.status != "running":
                return
            view.elapsed = self.clock() - view.started_at
            state.revision += 1
            frames.force()

    def _stopped(self) -> bool:
        return self.control is not None and self.control.stopped

    def _next_request(self, state: TurnState, frames: Any, results: list[dict[str, Any]],
                      calls: int) -> dict[str, Any] | None:
        if self._stopped() or len(results) < calls:
            with frames.lock:
                state.status = "stopped"
                state.finished_at = self.clock()
                state.error = ErrorInfo("stopped", "Stopped during a tool call").finalize(partial=True)
            return None
        self.exchange.append({"role": "user", "content": results})
        with frames.lock:
            begin_round(state)
        return {**self.request, "messages": [*self.request["messages"], *self.exchange]}


def begin_round(state: TurnState, *, tool_round: bool = True) -> None:
    """Make `state` ready for the next message of the same turn: earlier blocks stay, usage is summed.
    `tool_round`: the next message answers tool results (counted in the footer), not a paused turn."""
    if tool_round:
        state.tool_rounds += 1
    state.prior_usage = state.total_usage
    state.usage = Usage()
    state.usage_final = False
    state.deltas = 0
    state.round_start = len(state.blocks)
    state.status = "waiting"
    state.stop_reason = None
    state.stop_sequence = None
    state.finished_at = None
    state.revision += 1


def as_prefill(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An answer so far as the final assistant message of a request: the API rejects trailing whitespace."""
    content = list(content)
    while content and content[-1].get("type") == "text":
        text = content[-1]["text"].rstrip()
        if text:
            content[-1] = {**content[-1], "text": text}
            break
        content.pop()
    return content


def _tool_input(block: Block) -> Any:
    param = block.to_param()
    return param["input"] if param is not None else {}


def api_valid_prefix(messages: list[Message]) -> list[Message] | None:
    """`messages` (user first), cut back until the API accepts it as history: it ends on an assistant
    message, and that message has no `tool_use` left unanswered (those blocks are dropped; a message left
    empty goes, with the results message before it). None when nothing but the prompt would remain."""
    messages = list(messages)
    while len(messages) >= 2:
        last = messages[-1]
        if last["role"] == "user":
            messages.pop()  # results whose answer never came
            continue
        content = [block for block in last["content"] if block.get("type") != "tool_use"]
        if content:
            messages[-1] = {**last, "content": content}
            return messages
        messages.pop()
    return None

__all__ = ["ToolLoop", "api_valid_prefix", "begin_round"]
