"""The plain-Python surface: one question, or many at once.

    import claude_magic
    reply = claude_magic.ask("Explain HTTP caching")          # streams into the cell like %%claude
    reply = await claude_magic.ask_async("Explain ETags")      # the same on the event loop
    replies = claude_magic.map(["Summarize: ...", ...], concurrency=8)   # a batch, in input order
    [r.text for r in replies]

`ask` and `ask_async` continue the kernel's conversation (the one `%%claude` uses, or `conversation=`);
`map` sends each prompt as a fresh one-turn conversation and never touches history. Settings not given
come from `%config ClaudeMagic.*` (see `claude_magic.settings`).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterable
from typing import Any

from claude_magic.core.client import close_async_clients
from claude_magic.core.context import Attachment, attach_objects
from claude_magic.core.engine import ONE_OFF, PreparedTurn, prepare_turn, run_exchange, run_exchange_async
from claude_magic.core.errors import redacted_exception, turn_failed
from claude_magic.core.stream import SharedBackoff
from claude_magic.core.structured import output_spec
from claude_magic.core.turn import ErrorInfo, TurnState
from claude_magic.settings import ClaudeMagic, current_settings
from claude_magic.surfaces.context_line import attachment_bundle, show_attachments
from claude_magic.surfaces.display import current_cell, make_sink, resolve_display
from claude_magic.surfaces.replies import Replies, prompts_from
from claude_magic.surfaces.reply import ClaudeError, ClaudeInterrupted, Reply, remember_last

PROGRESS_REFRESH_SECONDS = 0.5  # the bar's redraws: a few per second whatever the batch's pace


def ask(
    prompt: str,
    *,
    model: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    conversation: str | None = None,
    new: bool = False,
    display: str | None = None,
    raise_on_error: bool | None = None,
    attach: Iterable[Any] | None = None,
    tools: Iterable[Any] | None = None,
    tool_choice: str | None = None,
    max_tool_rounds: int | None = None,
    thinking: str | int | None = None,
    thinking_display: str | None = None,
    effort: str | None = None,
    output: Any = None,
    mcp: str | Iterable[str] | None = None,
    web_search: Any = None,
    web_fetch: Any = None,
    code_execution: Any = None,
    cite: bool | None = None,
) -> Reply:
    """Ask Claude and stream the answer into the cell, exactly as `%%claude` does; returns the Reply.

    >>> reply = ask("What is a ZIP file?", max_tokens=300)

    display: "auto" (live in a notebook, text in a terminal), "live", "final", "terminal" or "none"
    (default: `%config ClaudeMagic.display_mode`); "events" shows the stream's events as they arrive
    instead of the answer, one line each, then the footer (`%%claude --raw`), drawn as display_mode
    says. A failed turn raises ClaudeError (its `.reply` holds the partial answer) unless
    `raise_on_error=False`, which returns the Reply with `.error` set.
    attach: objects and file paths to put before the prompt, as `%%claude -a` does
    (`ask("What stands out?", attach=[df, fig, "notes.md"])`); a bad one raises ValueError, nothing sent.
    tools: functions Claude may call (sync or `async def`; also `anthropic.beta_tool` objects, tool dicts
    or names of the notebook's functions), default `%config ClaudeMagic.tools`; they run on this thread.
    tool_choice: auto, any, none or a tool's name. max_tool_rounds: default `%config
    ClaudeMagic.max_tool_rounds`. thinking: "adaptive", "between_tools", "off" (the least the model allows)
    or a token budget (default `%config ClaudeMagic.thinking`: the model's own default), streamed in a folding
    block above the answer. thinking_display: "summarized" (default) or "omitted". effort: low, medium, high,
    xhigh or max (default `%config ClaudeMagic.effort`: the model's). A value the model does not take raises
    ValueError naming the ones it does, before anything is sent.
    output: a pydantic model, dataclass, TypedDict or JSON-schema dict: the answer is that object (the API's
    structured output; the JSON streams live, then shows as a table), validated into `reply.parsed`
    (`ask("Rate: great service", output=Review).parsed.stars`). A refusal, a cut-off or an invalid object
    leaves `parsed` None with the reason in `reply.error` (raised as ClaudeError unless raise_on_error=False).
    mcp: names of MCP servers (`%config ClaudeMagic.mcp_servers`) whose tools Claude may call, named
    mcp__SERVER__TOOL (default `%config ClaudeMagic.mcp`); a server that cannot start raises ClaudeError
    (one line) before anything is sent. `attach` takes their resources as "@SERVER:URI".
    web_search, web_fetch, code_execution: Claude's server tools, run by the API (True, or options as a dict or
    the flags' text: `web_search="max_uses=3,allowed=example.com,python.org"`; default: the settings of the
    same names); their calls and results are drawn live and the answer's citations become numbered links.
    cite: turn on citations for attached PDFs and text files (`ask("Summarise", attach=["report.pdf"],
    cite=True)`; default `%config ClaudeMagic.cite`).
    """
    settings = current_settings()
    raising = settings.raise_on_error if raise_on_error is None else raise_on_error
    turn, sink = _prepare(prompt, settings, model, system, max_tokens, temperature, conversation, new,
                          display, raising, attach, tool_options=(tools, tool_choice, max_tool_rounds),
                          thinking=(thinking, thinking_display, effort), output=output, mcp=mcp,
                          server=(web_search, web_fetch, code_execution, cite))
    cell = current_cell() if sink is not None else None
    run_exchange(turn, sink)
    return _finish(turn.state, cell, raising, settings)


async def ask_async(
    prompt: str,
    *,
    model: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    conversation: str | None = None,
    new: bool = False,
    display: str | None = None,
    raise_on_error: bool | None = None,
    attach: Iterable[Any] | None = None,
    tools: Iterable[Any] | None = None,
    tool_choice: str | None = None,
    max_tool_rounds: int | None = None,
    thinking: str | int | None = None,
    thinking_display: str | None = None,
    effort: str | None = None,
    output: Any = None,
    mcp: str | Iterable[str] | None = None,
    web_search: Any = None,
    web_fetch: Any = None,
    code_execution: Any = None,
    cite: bool | None = None,
) -> Reply:
    """`ask` through `anthropic.AsyncAnthropic`: streams live while the event loop stays free.

    >>> first, second = await asyncio.gather(ask_async("Explain ETags", conversation="a"),
    ...                                      ask_async("Explain Vary", conversation="b"))

    Each call draws into an output of its own. `task.cancel()` ends the turn "interrupted": the partial
    answer stays, marked, nothing is added to history, and CancelledError propagates as usual.
    Two concurrent calls on the *same* conversation both see its history as it was when they started.
    """
    settings = current_settings()
    raising = settings.raise_on_error if raise_on_error is None else raise_on_error
    turn, sink = _prepare(prompt, settings, model, system, max_tokens, temperature, conversation, new,
                          display, raising, attach, tool_options=(tools, tool_choice, max_tool_rounds),
                          thinking=(thinking, thinking_display, effort), output=output, mcp=mcp,
                          server=(web_search, web_fetch, code_execution, cite))
    cell = current_cell() if sink is not None else None
    await run_exchange_async(turn, sink)
    return _finish(turn.state, cell, raising, settings)


def _prepare(prompt: str, settings: ClaudeMagic, model: str | None, system: str | None, max_tokens: int | None,
             temperature: float | None, conversation: str | None, new: bool, display: str | None,
             raising: bool, attach: Iterable[Any] | None = None, *,
             tool_options: tuple[Any, str | None, int | None] = (None, None, None),
             thinking: tuple[str | int | None, str | None, str | None] = (None, None, None),
             output: Any = None, mcp: str | Iterable[str] | None = None,
             server: tuple[Any, Any, Any, bool | None] = (None, None, None, None)) -> tuple[PreparedTurn, Any]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("ask() needs a non-empty prompt string")
    attachments = _attachments(attach, settings)
    display = display or settings.display_mode
    events = display.lower() == "events"  # the raw view, drawn where display_mode draws the answer
    if events:
        display = settings.display_mode
    sink = make_sink(display, events=events, above=[attachment_bundle(attachments)] if attachments else [])
    turn = prepare_turn(prompt, settings, model=model, system=system, max_tokens=max_tokens,
                        temperature=temperature, conversation=conversation or "", new=new,
                        error_raised=raising and sink is not None, attachments=attachments,
                        source="code", output=output, mcp=mcp, **_server_arguments(*server),
                        **_thinking_arguments(*thinking), **_tool_arguments(*tool_options))
    show_attachments(attachments, display)
    return turn, sink


def _thinking_arguments(thinking: str | int | None = None, thinking_display: str | None = None,
                        effort: str | None = None) -> dict[str, Any]:
    return {"thinking": thinking, "thinking_display": thinking_display, "effort": effort}


def _server_arguments(web_search: Any = None, web_fetch: Any = None, code_execution: Any = None,
                      cite: bool | None = None) -> dict[str, Any]:
    return {"web_search": web_search, "web_fetch": web_fetch, "code_execution": code_execution, "cite": cite}


def _tool_arguments(tools: Iterable[Any] | None, tool_choice: str | None,
                    max_tool_rounds: int | None) -> dict[str, Any]:
    """prepare_turn's tool arguments; names among `tools` are looked up in the notebook's namespace."""
    return {"tools": None if tools is None else list(tools), "tool_choice": tool_choice,
            "max_tool_rounds": max_tool_rounds, "namespace": _user_namespace()}


def _user_namespace() -> dict[str, Any]:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return {}
    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


def _attachments(attach: Iterable[Any] | None, settings: ClaudeMagic) -> list[Attachment]:
    if not attach:
        return []
    if isinstance(attach, (str, bytes)) or not isinstance(attach, Iterable):
        attach = [attach]
    from IPython import get_ipython

    shell = get_ipython()
    namespace = shell.user_ns if shell is not None else {}
    return attach_objects(list(attach), namespace, budget=settings.attachment_chars,
                          mcp=(settings.mcp_servers, settings.mcp_timeout))


def _finish(state: TurnState, cell: str | None, raising: bool, settings: ClaudeMagic) -> Reply:
    reply = remember_last(Reply(state, streamed_into=cell))
    if state.error is None or not raising:
        return reply
    cause = state.error.exception
    if settings.debug and cause is not None:
        raise turn_failed(reply) from redacted_exception(cause)
    raise turn_failed(reply) from None  # the line says it all; the SDK's traceback would bury it


# -- many prompts ------------------------------------------------------------------------------------------


def map(  # noqa: A001 - claude_magic.map reads as what it does, like the builtin over prompts
    prompts: Iterable[str],
    *,
    concurrency: int = 8,
    model: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    display: str = "progress",
    tools: Iterable[Any] | None = None,
    tool_choice: str | None = None,
    max_tool_rounds: int | None = None,
    thinking: str | int | None = None,
    thinking_display: str | None = None,
    effort: str | None = None,
    output: Any = None,
    batch: bool = False,
    resubmit: bool = False,
    mcp: str | Iterable[str] | None = None,
    web_search: Any = None,
    web_fetch: Any = None,
    code_execution: Any = None,
    cite: bool | None = None,
) -> Replies:
    """Ask every prompt, at most `concurrency` at a time; one Reply per prompt, in input order.

    >>> replies = map(df["review"], concurrency=8, system="Classify the sentiment in one word.")
    >>> df["sentiment"] = [r.text for r in replies]
    >>> frame = map(prompts_from(df, "Review: {review}"), output=Sentiment).to_frame()

    prompts: any iterable of strings, e.g. a pandas Series (its index becomes the frame's index), or
    `prompts_from(df, template)`. Each prompt is a fresh one-turn conversation, never added to the kernel's
    history. A failed prompt gives a Reply with `.error` set and does not stop the others; nothing raises.
    429/529 answers are retried honouring retry-after, and while one prompt waits, the batch starts no new
    requests. output: a pydantic model, dataclass, TypedDict or JSON-schema dict, as for `ask`: each
    reply's `.parsed`, and `.to_frame()` has its fields as columns.
    Interrupting (the kernel's Interrupt, Ctrl+C) keeps every answer already received: the Replies come
    back as the result, marked, and also from `claude_magic.last_map()`; running the same `map` again asks
    only for the prompts still missing.
    batch: send the prompts as Message Batches instead (half the price, answered within 24 hours; see
    `claude_magic.batch_results`); the batch is recorded on disk when created, and running the same cell
    again collects it instead of submitting it again, unless `resubmit=True`.
    display: "progress" (a progress bar, then a summary line) or "none". Works in a notebook cell,
    where an event loop is already running: the batch then runs on a private loop in a worker thread.
    tools, tool_choice, max_tool_rounds: as for `ask`; here `async def` tools are awaited on the batch's
    loop and plain functions run in worker threads (one call of a function at a time, unless it sets
    `concurrency_safe = True`). thinking, thinking_display, effort, mcp: as for `ask`.
    web_search, web_fetch, code_execution: Claude's server tools, as for `ask`, offered to every prompt
    (`map(questions, web_search="max_uses=2")`); each reply's `.state.blocks` holds its calls, results and
    cited passages. cite: citations for the pages web_fetch reads (map attaches no documents).
    """
    index = _pandas_index(prompts)
    turns = _prepare_batch(prompts, model, system, max_tokens, temperature, concurrency,
                           (tools, tool_choice, max_tool_rounds), (thinking, thinking_display, effort), output, mcp,
                           (web_search, web_fetch, code_execution, cite))
    if batch:
        from claude_magic.surfaces.batch_jobs import run_batch_job

        return _remember(run_batch_job(turns, index=index, display=display, resubmit=resubmit))
    kept = _take_kept(turns)
    progress = _Progress(len(turns), display, already=kept)  # built here: its widget must land in the calling cell
    interrupted = False
    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(_map_on_private_loop(turns, concurrency, progress))
        else:
            _run_in_worker_thread(_map_on_private_loop(turns, concurrency, progress))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    replies = _replies(turns, index, interrupted)
    progress.report(interrupted)
    return replies


async def map_async(
    prompts: Iterable[str],
    *,
    concurrency: int = 8,
    model: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    display: str = "progress",
    tools: Iterable[Any] | None = None,
    tool_choice: str | None = None,
    max_tool_rounds: int | None = None,
    thinking: str | int | None = None,
    thinking_display: str | None = None,
    effort: str | None = None,
    output: Any = None,
    batch: bool = False,
    resubmit: bool = False,
    mcp: str | Iterable[str] | None = None,
    web_search: Any = None,
    web_fetch: Any = None,
    code_execution: Any = None,
    cite: bool | None = None,
) -> Replies:
    """`map` on the running event loop (`replies = await map_async(prompts)`); same arguments and results.
    Cancelling it keeps the answers received so far in `claude_magic.last_map()` (CancelledError propagates)."""
    index = _pandas_index(prompts)
    turns = _prepare_batch(prompts, model, system, max_tokens, temperature, concurrency,
                           (tools, tool_choice, max_tool_rounds), (thinking, thinking_display, effort), output, mcp,
                           (web_search, web_fetch, code_execution, cite))
    if batch:
        from claude_magic.surfaces.batch_jobs import run_batch_job_async

        return _remember(await run_batch_job_async(turns, index=index, display=display, resubmit=resubmit))
    kept = _take_kept(turns)
    progress = _Progress(len(turns), display, already=kept)
    try:
        await _run_batch(turns, concurrency, progress)
    except asyncio.CancelledError:
        _replies(turns, index, interrupted=True)
        progress.report(True)
        raise
    replies = _replies(turns, index, interrupted=False)
    progress.report()
    return replies


# Completed answers of an interrupted map, by request digest: the next map asking the same requests reuses
# them, so running the cell again asks only for what is missing. Emptied by that next map.
_KEPT: dict[str, TurnState] = {}
_LAST: list[Replies] = []


def last_map() -> Replies | None:
    """The Replies of the kernel's last `map` / `map_async` / `batch_results` (also an interrupted one's)."""
    return _LAST[0] if _LAST else None


def _remember(replies: Replies) -> Replies:
    _LAST[:] = [replies]
    return replies


def _take_kept(turns: list[PreparedTurn]) -> int:
    """Put the kept answers of an interrupted earlier run into `turns`; how many were reused."""
    if not _KEPT:
        return 0
    reused = 0
    for turn in turns:
        state = _KEPT.get(request_digest(turn.request))
        if state is not None:
            turn.state = state
            reused += 1
    _KEPT.clear()
    return reused


def _replies(turns: list[PreparedTurn], index: Any, interrupted: bool) -> Replies:
    for turn in turns:
        state = turn.state
        if state.status == "waiting":  # never started: the run ended first
            state.status = "interrupted"
            state.error = ErrorInfo("interrupted", "Not asked: the run was interrupted first")
        elif state.status == "complete" and state.error is None and interrupted:
            _KEPT[request_digest(turn.request)] = state
    return _remember(Replies((Reply(turn.state) for turn in turns), index=index, interrupted=interrupted))


def _prepare_batch(prompts: Iterable[str], model: str | None, system: str | None, max_tokens: int | None,
                   temperature: float | None, concurrency: int,
                   tool_options: tuple[Any, str | None, int | None] = (None, None, None),
                   thinking: tuple[str | int | None, str | None, str | None] = (None, None, None),
                   output: Any = None, mcp: str | Iterable[str] | None = None,
                   server: tuple[Any, Any, Any, bool | None] = (None, None, None, None)) -> list[PreparedTurn]:
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    settings = current_settings()
    spec = output_spec(output)  # built once: every prompt shares the schema
    turns = []
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"map() takes strings; item {index} is {type(prompt).__name__}")
        turns.append(prepare_turn(prompt, settings, model=model, system=system, max_tokens=max_tokens,
                                  temperature=temperature, conversation=ONE_OFF, output=spec, mcp=mcp,
                                  **_server_arguments(*server), **_thinking_arguments(*thinking),
                                  **_tool_arguments(*tool_options)))
    return turns


async def _run_batch(turns: list[PreparedTurn], concurrency: int, progress: _Progress) -> None:
    # The semaphore is the whole concurrency control: a prompt holds one of `concurrency` slots from its
    # first attempt to its last (backoff waits included), so at most that many requests are in flight.
    slots = asyncio.Semaphore(concurrency)
    backoff = SharedBackoff()

    async def one(turn: PreparedTurn) -> None:
        async with slots:
            progress.started(turn.state)
            try:
                await run_exchange_async(turn, None, backoff=backoff)
            finally:
                progress.finished(turn.state)

    refresher = asyncio.ensure_future(progress.refresh_periodically())
    try:
        await asyncio.gather(*(one(turn) for turn in turns if turn.state.status == "waiting"))
    finally:
        refresher.cancel()
        progress.close()


async def _map_on_private_loop(turns: list[PreparedTurn], concurrency: int, progress: _Progress) -> None:
    try:
        await _run_batch(turns, concurrency, progress)
    finally:
        await close_async_clients()  # this loop ends with the batch; its connections go with it


def _run_in_worker_thread(batch: Any) -> Any:
    """Run `batch` (a coroutine) on a new event loop in a worker thread and wait for it: the calling
    thread's loop is busy running this very cell. Ctrl+C / Interrupt cancels the batch, then re-raises."""
    loop = asyncio.new_event_loop()
    result: dict[str, Any] = {}
    task_ready = threading.Event()

    def work() -> None:
        try:
            task = loop.create_task(batch)
            result["task"] = task
            task_ready.set()
            result["replies"] = loop.run_until_complete(task)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            result["error"] = exc
        finally:
            task_ready.set()
            loop.close()

    # The copied context carries the cell's parent header, so anything the batch shows lands in this cell.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="claude-map", daemon=True)
    worker.start()
    try:
        worker.join()
    except KeyboardInterrupt:
        task_ready.wait()
        if "task" in result:
            loop.call_soon_threadsafe(result["task"].cancel)
        worker.join()
        raise
    if "error" in result:
        raise result["error"]
    return result["replies"]


class _Progress:
    """A batch's counters and, with display="progress", a tqdm bar (a widget in a notebook, text in a
    terminal) and a summary line at the end.

    The bar is updated when a prompt starts or ends and redrawn by tqdm at most every
    PROGRESS_REFRESH_SECONDS, plus a periodic redraw so the token count moves while answers stream;
    nothing runs per token. With display_mode "final" (nbval, nbconvert: they record outputs as first
    sent, so a bar would be saved at 0 %) only the summary line is shown.
    """

    def __init__(self, total: int, display: str, *, already: int = 0) -> None:
        if display not in ("progress", "none"):
            raise ValueError(f"display must be 'progress' or 'none', got {display!r}")
        self.total = total
        self.already = already  # answers kept from an interrupted earlier run: not asked again
        self.done = 0
        self.failed = 0
        self._running: dict[int, TurnState] = {}
        self._tokens_finished = 0
        self._started_at = time.monotonic()
        self._elapsed: float | None = None
        self._show = display == "progress"
        self._bar: Any = None
        if self._show:
            mode = resolve_display(current_settings().display_mode)
            if mode != "final":
                self._bar = _make_bar(total, text=mode == "terminal")
                if already:
                    self._bar.update(already)

    @property
    def tokens(self) -> int:
        return self._tokens_finished + sum(state.tokens_so_far for state in self._running.values())

    def started(self, state: TurnState) -> None:
        self._running[id(state)] = state
        self._set_postfix()

    def finished(self, state: TurnState) -> None:
        self._running.pop(id(state), None)
        self._tokens_finished += state.tokens_so_far
        if state.status == "complete" and state.error is None:  # a typed answer that did not parse failed
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._set_postfix()
            self._bar.update(1)

    async def refresh_periodically(self) -> None:
        if self._bar is None:
            return
        while True:
            await asyncio.sleep(PROGRESS_REFRESH_SECONDS)
            self._set_postfix()
            self._bar.refresh()

    def _set_postfix(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"failed {self.failed} · in flight {len(self._running)} · "
                                      f"{self.tokens:,} tokens", refresh=False)

    def close(self) -> None:
        self._elapsed = time.monotonic() - self._started_at
        if self._bar is not None:
            self._set_postfix()
            self._bar.close()
            self._bar = None

    def summary(self, interrupted: bool = False) -> str:
        elapsed = self._elapsed if self._elapsed is not None else time.monotonic() - self._started_at
        prompts = f"{self.total} prompt{'s' * (self.total != 1)}"
        kept = f" · {self.already} kept from the interrupted run" if self.already else ""
        line = (f"claude_magic.map: {prompts} · {self.done} done{kept} · {self.failed} failed · "
                f"{self.tokens:,} tokens out · elapsed {elapsed:.1f} s")
        if interrupted:
            missing = self.total - self.already - self.done - self.failed
            line += (f" · interrupted: {missing} not asked. The answers received are kept (the result, and "
                     "claude_magic.last_map()); run the same map again to ask only for the missing ones")
        return line

    def report(self, interrupted: bool = False) -> None:
        if self._show or interrupted:
            print(self.summary(interrupted))


def _make_bar(total: int, *, text: bool, desc: str = "claude_magic.map") -> Any:
    if text:
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="prompt", mininterval=PROGRESS_REFRESH_SECONDS,
                smoothing=0.1)


def _pandas_index(prompts: Any) -> Any:
    """The index of a pandas Series of prompts (the frame's rows line up with it); None for other iterables."""
    index = getattr(prompts, "index", None)
    return None if index is None or callable(index) else index


def request_digest(request: dict[str, Any]) -> str:
    """A request's fingerprint: the same prompt with the same options gives the same digest."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


__all__ = ["ClaudeError", "ClaudeInterrupted", "Replies", "Reply", "ask", "ask_async", "last_map", "map", "map_async",
           "prompts_from"]
