"""MCP servers: started once per kernel, their tools offered through the tool loop, their resources attached.

    servers = parse_servers({"notes": {"command": "python", "args": ["-m", "claude_magic.examples.notes_server"]}})
    tools = MANAGER.tools_for(servers, ["notes"], timeout=30)   # core.tools.Tool objects, for a ToolSet
    MANAGER.report(servers)                                      # what `%claude mcp` prints

Configuration (the shape Claude Desktop and Claude Code use) is read by core/mcp_config.py, which imports
neither SDK, so that `%config ClaudeMagic.mcp_servers = ...` is checked at once.

Threads: the `mcp` SDK is asyncio code whose sessions live as long as their server. Every session runs on
ONE event loop in a daemon thread of this process (started with the first server, stopped at exit by an
`atexit` hook, which stops the servers with it), whichever surface asks: the kernel's main thread (a cell),
the panel's turn thread, a worker thread of `ask_async`/`map`, or an ipykernel 7 subshell. Sync code reaches
it with `asyncio.run_coroutine_threadsafe(...).result(timeout)`, so no caller's own event loop is touched and
every wait is bounded by `mcp_timeout`.

Tools: converted with the Anthropic SDK's `anthropic.lib.tools.mcp.async_mcp_tool` (schema, content and
`isError` → `ToolError`), and named `mcp__SERVER__TOOL` as Claude Code names them, so that two servers' tools
(or a server's and a notebook function) never clash; characters the API does not take in a tool name
(`^[a-zA-Z0-9_-]{1,64}$`, e.g. an MCP name's dots) become `_`, and a name too long is cut and ends in a short
hash. Names, descriptions and results are untrusted: they reach the page only through the escaping views.

Failures are one line: a server that cannot start, or is gone, stops the turn before anything is sent
(`McpUnavailable`, a ClaudeError); a call that fails, times out or reaches a server that crashed is an
`is_error` tool_result Claude reads, and the server shows as failed (it is started again by the next turn
that names it).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from anthropic.lib.tools import ToolError

from claude_magic.core.errors import ClaudeError
from claude_magic.core.mcp_config import (
    ServerConfig,
    api_tool_name,
    load_servers_setting,
    parse_servers,
    plain,
    split_server_names,
)
from claude_magic.core.tools import ContentBlocks, Tool

INSTALL_HINT = 'MCP servers need the mcp package: pip install "claude_magic[mcp]"'
DEFAULT_TIMEOUT = 30.0  # `%config ClaudeMagic.mcp_timeout`: seconds to start a server, or for one call
PING_SECONDS = 5.0  # a running server is pinged before a turn offers its tools (never longer than this)
RECENT_SECONDS = 1.0  # ... unless it answered a ping less than this ago
STOP_SECONDS = 6.0  # the SDK's stdio shutdown: close stdin, wait 2 s, terminate, wait 2 s, kill


class McpUnavailable(ClaudeError):
    """A server a turn names cannot be used (not installed, cannot start, gone): one line, nothing sent."""


class McpCallFailed(ToolError):
    """A tool call that got no answer (timeout, the server gone): Claude gets the message as an error result
    (the SDK's ToolError: its text is the tool_result, with no exception name or traceback around it)."""


def check_installed() -> None:
    try:
        import mcp  # noqa: F401 - only whether it can be imported
    except ImportError:
        raise McpUnavailable(INSTALL_HINT) from None


# -- servers ------------------------------------------------------------------------------------------------


@dataclass
class McpServerState:
    """One server of this kernel: what it was started with, how it is, what it offers."""

    config: ServerConfig
    state: str = "not started"  # not started | starting | running | failed | stopped
    reason: str = ""  # why it failed
    tools: list[Tool] = field(default_factory=list)
    mcp_names: dict[str, str] = field(default_factory=dict)  # API name → the server's own tool name
    descriptions: dict[str, str] = field(default_factory=dict)  # API name → the server's description
    session: Any = None
    task: Any = None  # the asyncio task that holds the session open
    closing: Any = None  # an asyncio.Event: set, the task closes the session and the transport
    errlog: Any = None  # the stdio server's stderr (a temporary file), read for why it failed
    started_at: float = 0.0
    answered_at: float = -1e9  # when it last answered a ping (time.monotonic())

    def stderr_tail(self) -> str:
        """The last line the server wrote to stderr (its own explanation of a failure), if any."""
        if self.errlog is None:
            return ""
        try:
            self.errlog.flush()
            self.errlog.seek(0)
            lines = [line.strip(" │╭╮╰╯─\t") for line in self.errlog.read()[-4000:].splitlines()]
        except (OSError, ValueError):
            return ""
        lines = [line for line in lines if line]
        return plain(lines[-1], 160) if lines else ""


class McpManager:
    """The servers of this process and the event loop they run on (one of each, shared by every surface)."""

    def __init__(self) -> None:
        self.servers: dict[str, McpServerState] = {}
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- the loop ---------------------------------------------------------------------------------------

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                # The SDK logs what it recovers from (a session DELETE that found the server gone, a pipe that
                # broke) through `logging`; with no handler configured Python prints those to stderr, which in
                # a kernel lands in whichever cell runs. What matters reaches the user as our own one line.
                sdk_log = logging.getLogger("mcp")
                if not sdk_log.handlers:
                    sdk_log.addHandler(logging.NullHandler())
                # A daemon thread with a context of its own: nothing of the cell that started it (ipykernel's
                # output routing) follows the servers.
                self._thread = threading.Thread(target=run, name="claude-mcp", daemon=True)
                self._thread.start()
                ready.wait(5)
                self._loop = loop
                atexit.register(self.shutdown)
            return self._loop

    def _run(self, coroutine: Any, timeout: float) -> Any:
        """Run `coroutine` on the servers' loop and wait at most `timeout` s (FutureTimeout then; the
        coroutine is cancelled). An Interrupt while waiting cancels it too and goes through."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    # -- starting ---------------------------------------------------------------------------------------

    def tools_for(self, configs: Mapping[str, ServerConfig], names: Iterable[str], *,
                  timeout: float = DEFAULT_TIMEOUT) -> list[Tool]:
        """The tools of the named servers, each started (or started again) as needed and checked alive.
        ValueError for a name not configured; McpUnavailable when one cannot be used: nothing is sent."""
        names = list(names)
        unknown = [name for name in names if name not in configs]
        if unknown:
            known = ", ".join(configs) or "none configured: set %config ClaudeMagic.mcp_servers"
            raise ValueError(f"--mcp: no MCP server named {', '.join(map(repr, unknown))} (servers: {known})")
        check_installed()
        with self._lock:
            chosen = [self._prepared(configs[name]) for name in names]
            self._start_all([server for server in chosen if server.state == "not started"], timeout)
            return [tool for server in chosen for tool in server.tools]

    def ensure(self, config: ServerConfig, *, timeout: float = DEFAULT_TIMEOUT) -> McpServerState:
        """The server running with `config`: started when it is not, restarted when its configuration changed
        or it stopped answering. McpUnavailable (with the reason) when it cannot be."""
        with self._lock:
            server = self._prepared(config)
            self._start_all([server] if server.state == "not started" else [], timeout)
            return server

    def _prepared(self, config: ServerConfig) -> McpServerState:
        """The server running with `config` when it still answers a ping; else a new one, not started yet,
        in its place (one whose configuration changed, or that stopped answering, is stopped first)."""
        server = self.servers.get(config.name)
        if server is not None and server.state == "running" and server.config == config and self._alive(server):
            return server
        if server is not None and server.state in ("running", "starting"):
            self._stop(server)
        server = McpServerState(config)
        self.servers[config.name] = server
        return server

    def _alive(self, server: McpServerState, *, recheck: bool = False) -> bool:
        if not recheck and time.monotonic() - server.answered_at < RECENT_SECONDS:
            return True  # `map` prepares many turns at once: one ping stands for all of them
        try:
            self._run(server.session.send_ping(), PING_SECONDS)
            server.answered_at = time.monotonic()
            return True
        except Exception as exc:  # noqa: BLE001 - any failure: the server is not answering
            self._mark_failed(server, f"stopped answering ({_reason(exc)})")
            return False

    def _start_all(self, starting: list[McpServerState], timeout: float) -> None:
        """Start `starting` at once (a turn that names two servers waits for the slower one, not for both),
        within `timeout` together. McpUnavailable for the first that failed; the others keep running."""
        if not starting:
            return
        for server in starting:
            server.state, server.started_at = "starting", time.monotonic()

        async def open_all() -> list[Any]:
            return await asyncio.gather(*(self._open(server) for server in starting), return_exceptions=True)

        try:
            outcomes: list[Any] = self._run(open_all(), timeout)
        except FutureTimeout:
            outcomes = [FutureTimeout() for _server in starting]
        except BaseException:
            for server in starting:
                if server.state != "running":
                    self._stop(server)
                    server.state, server.reason = "failed", "interrupted while starting"
            raise
        failures = []
        for server, outcome in zip(starting, outcomes, strict=True):
            if server.state == "running":
                continue
            self._stop(server)
            reason = (f"did not start within {timeout:g} s (mcp_timeout)" if isinstance(outcome, FutureTimeout)
                      else _reason(outcome) if isinstance(outcome, BaseException) else "it ended while starting")
            failures.append(self._failed_start(server, reason))
        if failures:
            raise failures[0]

    def _failed_start(self, server: McpServerState, reason: str) -> McpUnavailable:
        tail = server.stderr_tail()
        server.state = "failed"
        server.reason = f"{reason}; its stderr: {tail}" if tail and tail not in reason else reason
        fix = "check its command in %config ClaudeMagic.mcp_servers" if server.config.transport == "stdio" \
            else "check that it is running at that url"
        return McpUnavailable(f"MCP server {server.config.name!r} could not start: {server.reason} ({fix}); "
                              "nothing was sent")

    async def _open(self, server: McpServerState) -> None:
        """Start the task that holds the session, and wait until the session is ready (or failed)."""
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        server.closing = asyncio.Event()
        server.task = asyncio.ensure_future(self._hold(server, started))
        await asyncio.shield(started)

    async def _hold(self, server: McpServerState, started: asyncio.Future[None]) -> None:
        """The session's whole life, in one task (the SDK's transports are entered and left in the same
        task): open, list the tools, then wait until asked to close."""
        from contextlib import AsyncExitStack

        from mcp import ClientSession

        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(server))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await _all_tools(session)
                server.session = session
                self._set_tools(server, session, listed)
                server.state = "running"
                started.set_result(None)
                await server.closing.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the starter, or as the server's state
            if not started.done():
                started.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            elif server.state == "running":
                self._mark_failed(server, f"the connection ended ({_reason(exc)})")
            if not isinstance(exc, Exception):
                raise
        finally:
            server.session = None

    def _transport(self, server: McpServerState) -> Any:
        config = server.config
        if config.transport == "http":
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            # The MCP transports' own timeouts: a server may hold a response stream open.
            client = httpx2.AsyncClient(headers=dict(config.headers), timeout=httpx2.Timeout(30.0, read=300.0))
            return _owning(client, streamable_http_client(config.url, http_client=client))
        from mcp import StdioServerParameters, stdio_client

        # The server's stderr goes to a file, not to whichever cell runs now: its log lines are not the
        # answer, and its last line says why it failed.
        server.errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace",  # noqa: SIM115 - kept open
                                               prefix=f"claude-mcp-{config.name}-")  # as long as the server runs
        params = StdioServerParameters(command=config.command, args=list(config.args),
                                       env=dict(config.env) or None, cwd=config.cwd)
        return stdio_client(params, errlog=server.errlog)

    def _set_tools(self, server: McpServerState, session: Any, listed: list[Any]) -> None:
        from anthropic.lib.tools.mcp import async_mcp_tool

        taken: set[str] = set()
        for mcp_tool in listed:
            name = api_tool_name(server.config.name, mcp_tool.name, taken)
            taken.add(name)
            runner = async_mcp_tool(mcp_tool, session)
            definition = {**runner.to_dict(), "name": name}
            server.tools.append(Tool(name, definition, _McpRunner(self, server, runner), concurrency_safe=True))
            server.mcp_names[name] = mcp_tool.name
            server.descriptions[name] = mcp_tool.description or ""

    # -- calling ----------------------------------------------------------------------------------------

    def call(self, server: McpServerState, runner: Any, tool_input: Any, timeout: float) -> Any:
        """One tool call, as `Tool.runner.call` is made by the tool loop: the content blocks of the result
        (ContentBlocks), the SDK's ToolError for an `isError` result, McpCallFailed when no answer came."""
        if server.state != "running" or server.session is None:
            raise McpCallFailed(f"MCP server {server.config.name!r} is not running ({server.reason or server.state})")
        try:
            value = self._run(runner.call(tool_input), timeout)
        except FutureTimeout:
            raise McpCallFailed(f"MCP server {server.config.name!r} did not answer within {timeout:g} s "
                                "(mcp_timeout); the call was cancelled") from None
        except Exception as exc:
            if type(exc).__name__ in ("ToolError", "ValidationError", "UnsupportedMCPValueError"):
                raise  # the tool's own error, or its input did not fit the schema: Claude reads it
            if server.state == "running" and not self._alive(server, recheck=True):
                raise McpCallFailed(f"MCP server {server.config.name!r} stopped during the call: "
                                    f"{server.reason}") from None
            raise McpCallFailed(f"MCP server {server.config.name!r}: {_reason(exc)}") from None
        return value if isinstance(value, str) else ContentBlocks(value)

    def read_resource(self, config: ServerConfig, uri: str, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The server's `resources/read` result for `uri` (the SDK's ReadResourceResult)."""
        check_installed()
        server = self.ensure(config, timeout=timeout)
        try:
            return self._run(server.session.read_resource(uri), timeout)
        except FutureTimeout:
            raise McpCallFailed(f"MCP server {config.name!r} did not answer within {timeout:g} s") from None
        except Exception as exc:  # noqa: BLE001
            raise McpCallFailed(f"MCP server {config.name!r} could not read {uri!r}: {_reason(exc)}") from None

    def _mark_failed(self, server: McpServerState, reason: str) -> None:
        tail = server.stderr_tail()
        server.state = "failed"
        server.reason = f"{reason}; its stderr: {tail}" if tail else reason

    # -- stopping ---------------------------------------------------------------------------------------

    def _stop(self, server: McpServerState) -> None:
        self._stop_many([server])

    def _stop_many(self, stopping: list[McpServerState]) -> None:
        """Ask each session to close (its transport stops the process or ends the HTTP session), all at once;
        what has not closed after STOP_SECONDS is cancelled."""
        loop = self._loop
        tasks = [(server, server.task) for server in stopping if server.task is not None and not server.task.done()]
        if loop is None or not tasks:
            return

        async def close(server: McpServerState, task: Any) -> None:
            if server.state == "running" and server.closing is not None:
                server.closing.set()  # a clean close: the session ends, then the transport
            else:
                task.cancel()  # still starting (or stuck): there is no session to close cleanly
            try:  # either way the SDK's transport stops the process (bounded waits, then SIGKILL)
                await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - cancel what hangs
                task.cancel()

        async def close_all() -> None:
            await asyncio.gather(*(close(server, task) for server, task in tasks), return_exceptions=True)

        with contextlib.suppress(Exception):  # a server that will not stop must not stop the caller
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(STOP_SECONDS + 2)
        for server, _task in tasks:
            if server.state in ("running", "starting"):
                server.state = "stopped"

    def stop_all(self) -> None:
        with self._lock:
            self._stop_many(list(self.servers.values()))

    def shutdown(self) -> None:
        """At exit: stop every server (their processes end with them), then the loop."""
        self.stop_all()
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        self._loop = None

    # -- the listing --------------------------------------------------------------------------------------

    def report(self, configs: Mapping[str, ServerConfig]) -> str:
        """`%claude mcp`: every configured server, its state and its tools, as plain text (untrusted names and
        descriptions folded to one line each, control characters removed)."""
        if not configs:
            return ("No MCP servers configured. Add one the way Claude Desktop does:\n"
                    '  %config ClaudeMagic.mcp_servers = {"name": {"command": "...", "args": [...]}}\n'
                    "then offer its tools with --mcp name (or %config ClaudeMagic.mcp = [\"name\"]).")
        lines = []
        for name, config in configs.items():
            server = self.servers.get(name)
            if server is None or server.config != config:
                state = "not started" if server is None else "configuration changed: restarts on next use"
            else:
                state = server.state + (f": {server.reason}" if server.reason else "")
            lines.append(f"{plain(name)} ({plain(config.describe(), 120)}) — {plain(state, 300)}")
            if server is not None and server.config == config and server.tools:
                for tool in server.tools:
                    description = plain(server.descriptions.get(tool.name, "").strip().split("\n")[0], 100)
                    lines.append(f"    {plain(tool.name, 80)}" + (f"  {description}" if description else ""))
        return "\n".join(lines)


class _McpRunner:
    """What `Tool.runner` is for an MCP tool: `.call(input)` from any thread, bounded by the timeout."""

    def __init__(self, manager: McpManager, server: McpServerState, runner: Any) -> None:
        self.manager = manager
        self.server = server
        self.runner = runner
        self.timeout = DEFAULT_TIMEOUT

    def call(self, tool_input: Any) -> Any:
        return self.manager.call(self.server, self.runner, tool_input, self.timeout)


async def _all_tools(session: Any) -> list[Any]:
    """tools/list, every page."""
    from mcp.types import PaginatedRequestParams

    tools: list[Any] = []
    cursor = None
    for _page in range(100):
        result = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if not cursor:
            break
    return tools


class _owning:
    """An async context manager that enters `inner` and closes `client` after it (the HTTP transport does
    not close a client it was given)."""

    def __init__(self, client: Any, inner: Any) -> None:
        self.client = client
        self.inner = inner

    async def __aenter__(self) -> Any:
        await self.client.__aenter__()
        try:
            return await self.inner.__aenter__()
        except BaseException:
            await self.client.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.inner.__aexit__(*exc_info)
        finally:
            await self.client.__aexit__(None, None, None)


def _reason(exc: BaseException) -> str:
    """One line for an exception: the first leaf of an exception group (anyio's task groups wrap them)."""
    while getattr(exc, "exceptions", None):  # BaseExceptionGroup (a backport's on Python 3.10)
        exc = exc.exceptions[0]
    message = str(exc).strip()
    if type(exc).__name__ == "MCPError" and getattr(exc, "error", None) is not None:
        message = exc.error.message
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return plain(text, 240)


MANAGER = McpManager()
"""This process's servers: module state, like the conversations, because they belong to the kernel."""


def offered_tools(setting: Any, names: str | Iterable[str] | None, *, timeout: float = DEFAULT_TIMEOUT) -> list[Tool]:
    """The tools of the servers `names` picks from the `mcp_servers` setting, each call bounded by `timeout`."""
    chosen = split_server_names(names)
    if not chosen:
        return []
    tools = MANAGER.tools_for(parse_servers(setting), chosen, timeout=timeout)
    for tool in tools:
        tool.runner.timeout = timeout
    return tools


def read_resource(setting: Any, server_name: str, uri: str, *, timeout: float = DEFAULT_TIMEOUT) -> tuple[str, Any]:
    """A resource of a configured server as ("text", str), ("image", bytes) or ("pdf", bytes): the first of
    its contents the API takes, picked and converted by the SDK's `mcp_resource_to_content`. ValueError
    (one line) for an unknown server or a resource that cannot be sent; McpUnavailable, McpCallFailed."""
    import base64

    configs = parse_servers(setting)
    if server_name not in configs:
        raise ValueError(f"no MCP server named {server_name!r} (servers: {', '.join(configs) or 'none configured'})")
    result = MANAGER.read_resource(configs[server_name], uri, timeout=timeout)
    from anthropic.lib.tools.mcp import UnsupportedMCPValueError, mcp_resource_to_content

    try:
        block = mcp_resource_to_content(result)
    except UnsupportedMCPValueError as exc:
        raise ValueError(f"{uri}: {plain(exc)}") from None
    source = block.get("source", {})
    if block.get("type") == "image":
        return "image", base64.b64decode(source["data"])
    if source.get("type") == "text":
        return "text", str(source.get("data", ""))
    return "pdf", base64.b64decode(source["data"])


__all__ = ["DEFAULT_TIMEOUT", "INSTALL_HINT", "MANAGER", "McpCallFailed", "McpManager", "McpUnavailable",
           "ServerConfig", "api_tool_name", "load_servers_setting", "offered_tools", "parse_servers", "plain",
           "read_resource", "split_server_names"]
