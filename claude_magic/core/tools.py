"""Tools: Python functions Claude may call, turned into API definitions, run, and their results converted.

    tools = make_toolset([get_weather, lookup])          # callables (sync or async), beta_tool objects, dicts
    tools.definitions()                                  # the request's `tools`
    outcome = call_tool(tools.get("get_weather"), {"city": "Tokyo"})   # never raises for the tool's errors
    result_param("toolu_1", outcome)                     # the tool_result block that goes back

Schemas come from the SDK's own `anthropic.beta_tool` / `beta_async_tool` (signature, type hints and the
docstring's `Args:` section through pydantic), not from a generator of ours: it is what
`client.beta.messages.tool_runner` uses, so a function that works there works here, and its `.call()`
validates Claude's input against the same schema before the function runs.

Where tools run (the rule every surface follows, see `ToolLoop`):

- `%%claude`, `ask`: on the calling thread, the kernel's main thread (the cell is running anyway, and
  matplotlib or GUI state expects it); an `async def` tool runs to completion on a private event loop.
- The chat panel: in a worker thread of its own, so Stop ends the turn at once (the tool's result is
  then dropped when it returns); an `async def` tool on a private event loop there.
- `ask_async`, `map`, `map_async`: `async def` tools are awaited on the turn's event loop; plain
  functions run in a worker thread (`asyncio.to_thread`) so the loop stays free.
- Everywhere: two calls of the same function never run at once (a lock per function, across threads),
  unless the function says it is safe: `fn.concurrency_safe = True`.

Nothing here touches the display; results are converted by duck typing (pandas, PIL and matplotlib are
never imported here).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from claude_magic.core.errors import redact_secrets

# The API's rule for client tool names.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
RESULT_LIMIT_CHARS = 20_000  # default of `%config ClaudeMagic.tool_result_limit`
DISPLAY_PREVIEW_CHARS = 2_000  # what a cell shows of a result (the size of the whole is stated)
CALL_TEXT_CHARS = 120  # "get_weather(city='Tokyo')" in a status line
TOOL_CHOICES = ("auto", "any", "none")
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


class ToolSetupError(ValueError):
    """A tool that cannot be offered (unknown name, unusable signature): one line, before anything is sent."""


@dataclass(frozen=True)
class Tool:
    """One tool offered to Claude."""

    name: str
    definition: dict[str, Any]  # the API's tool param
    runner: Any = None  # the SDK's BetaFunctionTool / BetaAsyncFunctionTool; None: a definition only
    is_async: bool = False
    concurrency_safe: bool = False
    function: Any = None  # the user's function (the lock key)


class ToolSet:
    """The tools of one turn, by name, in the order given."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ToolSetupError(f"Two tools are named {tool.name!r}: tool names must be unique.")
            self._tools[tool.name] = tool

    def __bool__(self) -> bool:
        return bool(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def definitions(self) -> list[dict[str, Any]]:
        return [dict(tool.definition) for tool in self._tools.values()]


def make_tool(item: Any) -> Tool:
    """A Tool from a callable (sync or `async def`), an SDK `beta_tool` object, or a ready tool dict (a Tool
    passes through: an MCP server's, see core.mcp)."""
    from anthropic.lib.tools import BetaAsyncFunctionTool, BetaFunctionTool

    if isinstance(item, Tool):
        return item
    if isinstance(item, Mapping):
        definition = dict(item)
        name = definition.get("name")
        if not isinstance(name, str) or not name:
            raise ToolSetupError(f"A tool dict needs a 'name': {sorted(definition)!r}.")
        if "type" not in definition and "input_schema" not in definition:
            raise ToolSetupError(f"Tool {name!r}: a tool dict needs an 'input_schema' (or a server tool 'type').")
        return Tool(name, definition)
    if isinstance(item, (BetaFunctionTool, BetaAsyncFunctionTool)):
        runner = item
    elif callable(item):
        runner = _sdk_tool(item)
    else:
        raise ToolSetupError(f"Not a tool: {item!r} (give a function, a beta_tool, or a tool dict).")
    function = runner.func
    name = runner.name
    if not TOOL_NAME.match(name):
        raise ToolSetupError(f"Tool name {name!r} is not allowed: use letters, digits, '_' or '-' (at most 64).")
    return Tool(name, dict(runner.to_dict()), runner, isinstance(runner, BetaAsyncFunctionTool),
                bool(getattr(function, "concurrency_safe", False)), function)


def _sdk_tool(function: Callable[..., Any]) -> Any:
    from anthropic import beta_async_tool, beta_tool

    name = getattr(function, "__name__", type(function).__name__)
    wrap = beta_async_tool if inspect.iscoroutinefunction(function) else beta_tool
    try:
        tool = wrap(function)
        tool.to_dict()  # the schema is built lazily in some SDK versions: fail here, not mid-turn
    except Exception as exc:  # noqa: BLE001 - pydantic's errors for unusable hints are many kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ToolSetupError(f"Tool {name!r}: its signature cannot become a JSON schema ({first}). "
                             "Give every parameter a JSON-friendly type hint (str, int, float, bool, list, "
                             "dict, a TypedDict or a pydantic model).") from None
    return tool


def make_toolset(items: Iterable[Any] | None) -> ToolSet:
    return ToolSet(make_tool(item) for item in items or ())


def resolve_names(names: str | Iterable[Any], namespace: Mapping[str, Any]) -> list[Any]:
    """`--tools a,b` / `%config ClaudeMagic.tools`: names looked up in the user namespace (callables and
    tool objects given directly pass through). Only what is named becomes callable."""
    items = [part.strip() for part in names.split(",")] if isinstance(names, str) else list(names)
    found = []
    for item in items:
        if not isinstance(item, str):
            found.append(item)
            continue
        if not item:
            continue
        if item not in namespace:
            raise ToolSetupError(f"--tools: no function named {item!r} in the notebook: define it first "
                                 "(or check the spelling).")
        value = namespace[item]
        if not (callable(value) or isinstance(value, Mapping)):
            raise ToolSetupError(f"--tools: {item!r} is a {type(value).__name__}, not a function.")
        found.append(value)
    return found


def tool_choice_param(choice: str | None, tools: ToolSet) -> dict[str, Any] | None:
    """`--tool-choice auto|any|none|NAME` as the API's tool_choice (None: leave it to the API's default)."""
    if not choice:
        return None
    if choice in TOOL_CHOICES:
        return {"type": choice}
    if tools.get(choice) is None:
        raise ToolSetupError(f"--tool-choice {choice!r}: no such tool in this turn (tools: "
                             f"{', '.join(tools.names()) or 'none'}); or use auto, any or none.")
    return {"type": "tool", "name": choice}


# -- results ----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a tool call gave: the tool_result content for Claude, and what a cell shows of it."""

    content: str | list[dict[str, Any]]
    is_error: bool = False
    kind: str = "text"  # text | json | table | image | repr | error
    preview: str = ""  # what a cell shows (already cut to DISPLAY_PREVIEW_CHARS, secrets redacted)
    size: str = ""  # "1,234 characters" / "PNG image, 12.3 kB"
    truncated_for_claude: bool = False
    traceback: str = ""  # a raising tool's traceback (secrets redacted): shown only in debug mode, never sent


class ContentBlocks(list):  # type: ignore[type-arg]
    """A tool's value that is already tool_result content blocks (text, image, document): an MCP tool's
    result as the SDK's `anthropic.lib.tools.mcp` converted it. Sent as blocks, not as JSON of them."""


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    note = f"\n[truncated by claude_magic: the first {limit:,} of {len(text):,} characters are shown]"
    return text[:limit] + note, True


def _text_outcome(text: str, kind: str, limit: int) -> Outcome:
    text = redact_secrets(text)
    sent, truncated = _cut(text, limit)
    return Outcome(sent or "(empty)", kind=kind, preview=text[:DISPLAY_PREVIEW_CHARS],
                   size=f"{len(text):,} characters", truncated_for_claude=truncated)


def _image_bytes(value: Any) -> tuple[bytes, str] | None:
    """PNG/JPEG bytes of an image-like value: raw bytes, a PIL image, a matplotlib figure (duck-typed)."""
    import io

    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        if data.startswith(_PNG):
            return data, "image/png"
        if data.startswith(_JPEG):
            return data, "image/jpeg"
        return None
    if hasattr(value, "savefig") and hasattr(value, "get_axes"):  # matplotlib Figure
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue(), "image/png"
    if hasattr(value, "save") and hasattr(value, "mode") and hasattr(value, "size"):  # PIL Image
        buffer = io.BytesIO()
        image = value.convert("RGBA") if value.mode not in ("RGB", "RGBA", "L") else value
        image.save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"
    return None


def _is_dataframe(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("to_string", "columns", "shape", "iloc"))


def content_outcome(blocks: list[Any], limit: int = RESULT_LIMIT_CHARS) -> Outcome:
    """Content blocks as tool_result content: text blocks within `limit` characters together (the rest cut,
    with the note), secrets redacted; image and document blocks as they are. The cell shows the text and
    says what else there was."""
    sent: list[dict[str, Any]] = []
    shown: list[str] = []
    others: list[str] = []
    room, total, truncated = limit, 0, False
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            text = redact_secrets(str(block.get("text", "")))
            total += len(text)
            shown.append(text)
            if room <= 0:
                truncated = True
                continue
            piece, cut = _cut(text, room)
            truncated = truncated or cut
            room -= len(text)
            sent.append({"type": "text", "text": piece or "(empty)"})
        else:
            sent.append(dict(block))
            others.append(str(block.get("type", "block")))
    if not sent:
        sent = [{"type": "text", "text": "(empty)"}]
    preview = "\n".join(shown)[:DISPLAY_PREVIEW_CHARS]
    extra = f" and {len(others)} {'/'.join(dict.fromkeys(others))} block{'s' * (len(others) != 1)}" if others else ""
    if others and not shown:
        preview = f"{len(others)} {'/'.join(dict.fromkeys(others))} block{'s' * (len(others) != 1)}"
    kind = "image" if "image" in others and not shown else "text"
    return Outcome(sent, kind=kind, preview=preview, size=f"{total:,} characters{extra}",
                   truncated_for_claude=truncated)


def convert_result(value: Any, limit: int = RESULT_LIMIT_CHARS) -> Outcome:
    """A tool's return value as tool_result content: str as is, dict/list as JSON, a DataFrame as a compact
    table, an image as image content, anything else as its repr; text over `limit` is cut with a note."""
    if isinstance(value, ContentBlocks):
        return content_outcome(value, limit)
    if isinstance(value, str):
        return _text_outcome(value, "text", limit)
    image = _image_bytes(value)
    if image is not None:
        data, media_type = image
        label = f"{media_type.split('/')[1].upper()} image, {len(data) / 1000:,.1f} kB"
        block = {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                             "data": base64.b64encode(data).decode()}}
        return Outcome([block], kind="image", preview=label, size=label)
    if _is_dataframe(value):
        rows, columns = value.shape
        table = value.to_string(max_rows=60, max_cols=20, max_colwidth=60)
        return _text_outcome(f"DataFrame, {rows} rows × {columns} columns\n{table}", "table", limit)
    if isinstance(value, (dict, list, tuple)):
        try:
            return _text_outcome(json.dumps(value, ensure_ascii=False, default=repr), "json", limit)
        except (TypeError, ValueError):  # circular, or keys JSON cannot hold
            pass
    return _text_outcome(repr(value), "repr", limit)


def error_outcome(exc: BaseException) -> Outcome:
    """A tool that raised: type and message for Claude (is_error), one line for the cell. The SDK's
    `ToolError` (an MCP tool's `isError` result, or a function's own) sends its content as it is, as the
    SDK's tool runner does."""
    from anthropic.lib.tools import ToolError

    if isinstance(exc, ToolError):
        content = exc.content
        outcome = content_outcome(content if isinstance(content, list) else [{"type": "text", "text": str(content)}])
        outcome.is_error, outcome.kind = True, "error"
        outcome.preview = " ".join(outcome.preview.split())[:DISPLAY_PREVIEW_CHARS] or "error"
        return outcome
    cause = exc.__cause__
    message = str(exc)
    if cause is not None and type(cause).__name__ == "ValidationError":  # the SDK's input validation
        message = f"{message}: {' '.join(str(cause).split())}"
    line = redact_secrets(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    return Outcome(line, is_error=True, kind="error", preview=line[:DISPLAY_PREVIEW_CHARS],
                   traceback=redact_secrets(_user_traceback(exc)))


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the first frame outside claude_magic and the SDK (the user's function), so debug
    mode shows where the tool failed, not how it was called; all frames when none is the user's."""
    import traceback
    from pathlib import Path

    import anthropic

    sdk = Path(anthropic.__file__).resolve().parent
    # pydantic (next to the SDK) validates the input before the function runs: its frames are the call too.
    internal = (str(Path(__file__).resolve().parents[1]), str(sdk), str(sdk.parent / "pydantic"))
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(internal):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__)).rstrip("\n")


def result_param(tool_use_id: str, outcome: Outcome) -> dict[str, Any]:
    param: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": outcome.content}
    if outcome.is_error:
        param["is_error"] = True
    return param


def describe_call(name: str, tool_input: Any, limit: int = CALL_TEXT_CHARS) -> str:
    """`get_weather(city='Tokyo', unit='c')`, cut to `limit` characters (for status lines)."""
    if isinstance(tool_input, Mapping):
        arguments = ", ".join(f"{key}={value!r}" for key, value in tool_input.items())
    else:
        arguments = "" if tool_input is None else repr(tool_input)
    text = f"{name}({arguments})"
    return text if len(text) <= limit else text[: limit - 2] + "…)"


# -- running ------------------------------------------------------------------------------------------------

_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(tool: Tool) -> threading.Lock | None:
    if tool.concurrency_safe or tool.function is None:
        return None
    with _locks_guard:
        return _locks.setdefault(id(tool.function), threading.Lock())


def call_tool(tool: Tool | None, name: str, tool_input: Any, limit: int = RESULT_LIMIT_CHARS) -> Outcome:
    """Run one call on this thread and convert what it gives. The tool's exceptions become error outcomes;
    KeyboardInterrupt (Interrupt in the kernel) goes through, it ends the turn."""
    if tool is None or tool.runner is None:
        return Outcome(f"Tool {name!r} is not available in this turn: it cannot be called now.", is_error=True,
                       kind="error", preview=f"{name} is not available in this turn")
    lock = _lock_for(tool)
    try:
        if lock is not None:
            lock.acquire()
        try:
            if tool.is_async:
                value = _run_on_private_loop(lambda: tool.runner.call(tool_input))
            else:
                value = tool.runner.call(tool_input)
        finally:
            if lock is not None:
                lock.release()
        return convert_result(value, limit)
    except Exception as exc:  # noqa: BLE001 - Claude is told, so it can react
        return error_outcome(exc)


def _run_on_private_loop(make_coroutine: Callable[[], Any]) -> Any:
    """Run a coroutine to completion on a new event loop in a worker thread: the calling thread may be
    running the kernel's own loop (a cell), where asyncio.run would refuse. The join wakes up every
    0.1 s so an Interrupt still reaches the calling thread."""
    import contextvars

    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = asyncio.run(make_coroutine())
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            result["error"] = exc

    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="claude-tool", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def call_tool_async(tool: Tool | None, name: str, tool_input: Any,
                          limit: int = RESULT_LIMIT_CHARS) -> Outcome:
    """`call_tool` on an event loop: async tools awaited here, plain ones in a worker thread."""
    if tool is None or tool.runner is None or not tool.is_async:
        return await asyncio.to_thread(call_tool, tool, name, tool_input, limit)
    lock = _lock_for(tool)
    try:
        if lock is not None:
            while not lock.acquire(blocking=False):  # a threading lock, never blocking the loop
                await asyncio.sleep(0.01)
        try:
            value = await tool.runner.call(tool_input)
        finally:
            if lock is not None:
                lock.release()
        return convert_result(value, limit)
    except Exception as exc:  # noqa: BLE001
        return error_outcome(exc)


@dataclass
class ToolCallView:
    """A tool call as the surfaces draw it (the state of a `tool_result` display block)."""

    tool_use_id: str
    name: str
    call_text: str
    status: str = "running"  # running | done | error | interrupted | stopped
    started_at: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    outcome: Outcome | None = None


__all__ = ["DISPLAY_PREVIEW_CHARS", "RESULT_LIMIT_CHARS", "TOOL_CHOICES", "ContentBlocks", "Outcome", "Tool",
           "ToolCallView", "content_outcome",
           "ToolSet", "ToolSetupError", "call_tool", "call_tool_async", "convert_result", "describe_call",
           "error_outcome", "make_tool", "make_toolset", "resolve_names", "result_param", "tool_choice_param"]
