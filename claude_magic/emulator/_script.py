"""Scripts: what the emulator answers, parsed, validated and matched against prompts.

A script is a JSON or YAML file, or the same structure as a dict::

    pace: {tokens_per_second: 40, chunk_tokens: 1}   # optional pacing for the whole script
    models: [claude-test-model]                       # optional extra model ids to accept
    turns:
      - match: "Explain HTTP caching"    # substring of the prompt (case-sensitive);
                                         # "re:<regex>" searches a regex; omitted = matches anything
        times: 1                         # optional: only the first N matching requests use this turn,
                                         # later ones fall through to the following turns
        pace: {tokens_per_second: 0, chunk_tokens: 3}    # optional override for this turn
        content:                         # the reply blocks (a plain string means one text block)
          - {type: thinking, thinking: "...", signature: "sig..."}   # signature optional
          - {type: text, text: "..."}
          - {type: tool_use, id: toolu_1, name: get_weather, input: {city: Paris}}  # id optional
          - {type: redacted_thinking, data: "..."}
        generate: {tokens: 8000, seed: 1}  # instead of content: a deterministic Markdown answer of
                                           # exactly N tokens (headings, paragraphs, lists, code, tables)
        stop_reason: end_turn            # default: tool_use if content has a tool_use block, else end_turn
        stop_sequence: null
        usage: {input_tokens: 12, output_tokens: 40, cache_read_input_tokens: 0,
                cache_creation_input_tokens: 0}   # optional, any subset; the rest is computed
        fault: {kind: http, status: 529}          # optional, see below

The prompt a turn is matched against is the text of the *last user message*: a string content, or
the concatenation of its text blocks and the text inside its tool_result blocks. Turns are tried in
order; the first that matches (and has ``times`` left) wins. No match, or a turn with neither
``content`` nor ``generate``, gives the emulator's default reply. A reply longer than the request's
``max_tokens`` is cut there with stop_reason ``max_tokens``; a request ``stop_sequences`` entry found
in a text block cuts the reply before it with stop_reason ``stop_sequence``.

Pacing precedence: turn ``pace`` > script ``pace`` > the emulator's own setting, field by field.
``tokens_per_second: 0`` means as fast as possible; ``chunk_tokens`` is tokens per delta event.

Faults (all deterministic):

- ``{kind: http, status: 529, error_type: overloaded_error, message: "...", retry_after: 2}``: answer
  with that status and an API error body; ``error_type`` defaults from the status, ``retry_after`` sets
  the ``retry-after`` header. ``echo_api_key: true`` puts the received API key into the message (to
  check that a client never displays it). With ``times: N`` the first N attempts fail and the next
  matching turn answers the retry.
- ``{kind: error_event, after_tokens: 5, error_type: overloaded_error, message: "Overloaded"}``:
  stream normally, then send ``event: error`` and end the response cleanly.
- ``{kind: disconnect, after_tokens: 5}``: close the socket abruptly (no terminating chunk).
- ``{kind: stall, after_tokens: 5, seconds: 30}``: send nothing (not even pings) for ``seconds``, then
  carry on; stopping the emulator cuts the stall short.
- ``{kind: malformed, after_tokens: 5}``: send an SSE event whose data is not JSON, then end.

``after_tokens`` counts output tokens already streamed; 0 means right after the response headers,
before ``message_start``; a value beyond the reply's length fires just before ``message_delta``.
Without ``stream: true`` the stream faults map to the closest plain-HTTP behaviour: ``error_event``
answers with the HTTP status of its error type, ``disconnect`` closes without a response, ``stall``
delays the response and ``malformed`` sends a body that is not JSON.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ._errors import ERROR_TYPE_BY_STATUS

FAULT_KINDS = ("http", "error_event", "disconnect", "stall", "malformed")
STOP_REASONS = (
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
)
# The names a server_tool_use block can carry: a fixed set, the `name` enum of the server tool use block in the
# Messages API reference (https://platform.claude.com/docs/en/api/messages), which the SDK's ServerToolUseBlock
# is generated from (tests/test_emulator_server_tools.py compares them). A script naming another tool would
# stream what the API never sends, and which some SDK releases (2.5) cannot read.
SERVER_TOOL_NAMES = ("web_search", "web_fetch", "code_execution", "bash_code_execution", "text_editor_code_execution",
                     "tool_search_tool_regex", "tool_search_tool_bm25")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_BLOCK_KEYS: dict[str, tuple[set[str], set[str]]] = {
    # block type: (required keys, optional keys)
    "text": ({"text"}, {"citations"}),
    "thinking": ({"thinking"}, {"signature"}),
    "redacted_thinking": ({"data"}, set()),
    "tool_use": ({"name", "input"}, {"id"}),
    # Server tools (_server_tools.py): a shorthand for the call and its result, or the blocks written out.
    "web_search": ({"query"}, {"results", "error"}),
    "web_fetch": ({"url"}, {"title", "text", "error"}),
    "code_execution": ({"command"}, {"stdout", "stderr", "return_code", "error"}),
    "server_tool_use": ({"name", "input"}, {"id"}),
    **{kind: ({"tool_use_id", "content"}, set()) for kind in (
        "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
        "bash_code_execution_tool_result", "text_editor_code_execution_tool_result")},
}
# Keys whose values are not strings: checked where they are used, or passed through as written.
_STRUCTURED_KEYS = {"input", "citations", "results", "return_code", "content"}


class ScriptError(ValueError):
    """A script that does not follow the format; the message names the offending place."""


@dataclass(frozen=True)
class Pace:
    """Streaming speed. ``None`` fields defer to the next level (turn > script > emulator)."""

    tokens_per_second: float | None = None
    chunk_tokens: int | None = None

    def over(self, base: Pace) -> Pace:
        """This pace with its unset fields taken from ``base``."""
        return Pace(
            self.tokens_per_second if self.tokens_per_second is not None else base.tokens_per_second,
            self.chunk_tokens if self.chunk_tokens is not None else base.chunk_tokens,
        )


@dataclass(frozen=True)
class Generate:
    """Ask for a generated Markdown answer of ``tokens`` tokens, reproducible from ``seed``."""

    tokens: int
    seed: int = 0


@dataclass(frozen=True)
class Fault:
    """A deliberate failure; see the module docstring for each ``kind``."""

    kind: str
    after_tokens: int = 0
    status: int | None = None
    error_type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    echo_api_key: bool = False


@dataclass(frozen=True)
class Turn:
    """One scripted reply and the prompts it answers."""

    match: str | None = None
    times: int | None = None
    pace: Pace | None = None
    content: tuple[dict[str, Any], ...] | None = None
    generate: Generate | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    fault: Fault | None = None
    replay: str | None = None  # a recorded SSE transcript (a file) sent verbatim instead of a reply
    # Compiled once at load time so a bad regex fails when the script loads, not mid-request.
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, prompt: str) -> bool:
        """Whether this turn's ``match`` fits ``prompt`` (ignoring ``times``)."""
        if self.match is None:
            return True
        if self._regex is not None:
            return self._regex.search(prompt) is not None
        return self.match in prompt


@dataclass(frozen=True)
class Script:
    """A parsed script. Immutable: per-turn ``times`` bookkeeping lives in :class:`TurnPicker`."""

    turns: tuple[Turn, ...] = ()
    pace: Pace | None = None
    models: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------------
# Parsing


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        # Typos such as "stop_reasons" would otherwise be silently ignored.
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScriptError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScriptError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ScriptError(f"{where}: expected a number >= 0, got {value!r}")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ScriptError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def parse_pace(data: Any, where: str = "pace") -> Pace:
    """Parse a ``pace`` mapping."""
    data = _mapping(data, where)
    _check_keys(data, {"tokens_per_second", "chunk_tokens"}, where)
    tps = data.get("tokens_per_second")
    chunk = data.get("chunk_tokens")
    return Pace(
        None if tps is None else _number(tps, f"{where}.tokens_per_second"),
        None if chunk is None else _int(chunk, f"{where}.chunk_tokens", 1),
    )


def _parse_block(data: Any, where: str) -> dict[str, Any]:
    block = dict(_mapping(data, where))
    kind = block.get("type")
    if kind not in _BLOCK_KEYS:
        raise ScriptError(f"{where}.type: expected one of {', '.join(_BLOCK_KEYS)}, got {kind!r}")
    required, optional = _BLOCK_KEYS[kind]
    _check_keys(block, required | optional | {"type"}, where)
    missing = sorted(required - set(block))
    if missing:
        raise ScriptError(f"{where}: {kind} block needs {', '.join(missing)}")
    for key in required | optional:
        if key == "input":
            block[key] = dict(_mapping(block[key], f"{where}.input"))
        elif key in ("citations", "results") and key in block:
            if not isinstance(block[key], list) or not all(isinstance(item, Mapping) for item in block[key]):
                raise ScriptError(f"{where}.{key}: expected a list of mappings")
            block[key] = [dict(item) for item in block[key]]
        elif key == "return_code" and key in block:
            block[key] = _int(block[key], f"{where}.return_code")
        elif key in block and key not in _STRUCTURED_KEYS:
            _str(block[key], f"{where}.{key}")
    if kind == "server_tool_use" and block["name"] not in SERVER_TOOL_NAMES:
        raise ScriptError(f"{where}.name: expected one of {', '.join(SERVER_TOOL_NAMES)}, got {block['name']!r}")
    for n, result in enumerate(block.get("results") or []):
        if "url" not in result:
            raise ScriptError(f"{where}.results[{n}]: a search result needs url (title and text are optional)")
    return block


def _parse_fault(data: Any, where: str) -> Fault:
    data = _mapping(data, where)
    kind = data.get("kind")
    if kind not in FAULT_KINDS:
        raise ScriptError(f"{where}.kind: expected one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    allowed = {"kind", "after_tokens", "error_type", "message"}
    if kind == "http":
        allowed = {"kind", "status", "error_type", "message", "retry_after", "echo_api_key"}
    elif kind == "stall":
        allowed = {"kind", "after_tokens", "seconds"}
    elif kind in ("disconnect", "malformed"):
        allowed = {"kind", "after_tokens"}
    _check_keys(data, allowed, where)
    status = data.get("status")
    if kind == "http":
        status = _int(500 if status is None else status, f"{where}.status", 400)
        if status > 599:
            raise ScriptError(f"{where}.status: expected an HTTP error status, got {status}")
    error_type = data.get("error_type")
    if error_type is not None:
        _str(error_type, f"{where}.error_type")
    elif kind == "error_event":
        error_type = ERROR_TYPE_BY_STATUS[529]
    message = data.get("message")
    retry_after = data.get("retry_after")
    return Fault(
        kind=kind,
        after_tokens=_int(data.get("after_tokens", 0), f"{where}.after_tokens"),
        status=status,
        error_type=error_type,
        message=None if message is None else _str(message, f"{where}.message"),
        retry_after=None if retry_after is None else _number(retry_after, f"{where}.retry_after"),
        seconds=_number(data.get("seconds", 0), f"{where}.seconds"),
        echo_api_key=bool(data.get("echo_api_key", False)),
    )


def _parse_turn(data: Any, where: str) -> Turn:
    data = _mapping(data, where)
    _check_keys(
        data,
        {"match", "times", "pace", "content", "generate", "stop_reason", "stop_sequence", "usage", "fault",
         "replay"},
        where,
    )
    match = data.get("match")
    regex = None
    if match is not None:
        match = _str(match, f"{where}.match")
        if match.startswith("re:"):
            try:
                regex = re.compile(match[3:])
            except re.error as exc:
                raise ScriptError(f"{where}.match: bad regular expression: {exc}") from exc
    if "content" in data and "generate" in data:
        raise ScriptError(f"{where}: give either content or generate, not both")
    content = None
    if "content" in data:
        raw = data["content"]
        if isinstance(raw, str):
            raw = [{"type": "text", "text": raw}]
        if not isinstance(raw, list):
            raise ScriptError(f"{where}.content: expected a list of blocks or a string")
        content = tuple(_parse_block(block, f"{where}.content[{i}]") for i, block in enumerate(raw))
    generate = None
    if "generate" in data:
        gen = _mapping(data["generate"], f"{where}.generate")
        _check_keys(gen, {"tokens", "seed"}, f"{where}.generate")
        generate = Generate(
            _int(gen.get("tokens"), f"{where}.generate.tokens", 1),
            _int(gen.get("seed", 0), f"{where}.generate.seed"),
        )
    stop_reason = data.get("stop_reason")
    if stop_reason is not None and stop_reason not in STOP_REASONS:
        raise ScriptError(f"{where}.stop_reason: expected one of {', '.join(STOP_REASONS)}")
    stop_sequence = data.get("stop_sequence")
    if stop_sequence is not None:
        _str(stop_sequence, f"{where}.stop_sequence")
    usage = _mapping(data.get("usage", {}), f"{where}.usage")
    _check_keys(usage, set(USAGE_KEYS), f"{where}.usage")
    times = data.get("times")
    return Turn(
        match=match,
        times=None if times is None else _int(times, f"{where}.times", 1),
        pace=None if data.get("pace") is None else parse_pace(data["pace"], f"{where}.pace"),
        content=content,
        generate=generate,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage={key: _int(value, f"{where}.usage.{key}") for key, value in usage.items()},
        fault=None if data.get("fault") is None else _parse_fault(data["fault"], f"{where}.fault"),
        replay=None if data.get("replay") is None else _str(data["replay"], f"{where}.replay"),
        _regex=regex,
    )


def parse_script(data: Any) -> Script:
    """Validate a script structure (as loaded from JSON/YAML) and build a :class:`Script`."""
    if data is None:
        return Script()
    data = _mapping(data, "script")
    _check_keys(data, {"pace", "models", "turns"}, "script")
    models = data.get("models", [])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list):
        raise ScriptError("models: expected a list of model ids")
    turns = data.get("turns", [])
    if not isinstance(turns, list):
        raise ScriptError("turns: expected a list")
    return Script(
        turns=tuple(_parse_turn(turn, f"turns[{i}]") for i, turn in enumerate(turns)),
        pace=None if data.get("pace") is None else parse_pace(data["pace"]),
        models=tuple(_str(model, f"models[{i}]") for i, model in enumerate(models)),
    )


def load_script(source: Script | Mapping[str, Any] | str | Path | None) -> Script:
    """Load a script from a file path (``.json``, ``.yaml``/``.yml``), a dict, or pass a Script through."""
    if source is None or isinstance(source, Script):
        return source or Script()
    if isinstance(source, Mapping):
        return parse_script(source)
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    try:
        # YAML is (nearly) a superset of JSON, but json gives better messages for .json files.
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ScriptError(f"{path}: cannot parse: {exc}") from exc
    try:
        script = parse_script(data)
    except ScriptError as exc:
        raise ScriptError(f"{path}: {exc}") from None
    # A relative `replay` transcript is found next to the script.
    turns = tuple(replace(turn, replay=str(path.parent / turn.replay))
                  if turn.replay and not Path(turn.replay).is_absolute() else turn for turn in script.turns)
    return replace(script, turns=turns)


def replay_events(path: str) -> list[bytes]:
    """A recorded SSE transcript's events, each as sent (``event:``/``data:`` lines and the blank line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"replay: cannot read {path}: {exc}") from None
    events = [chunk.strip("\n") for chunk in text.replace("\r\n", "\n").split("\n\n") if chunk.strip()]
    return [f"{event}\n\n".encode() for event in events]


# ---------------------------------------------------------------------------------------------------
# Matching


class TurnPicker:
    """Chooses the turn for each request and counts ``times`` uses; thread-safe."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._used = [0] * len(script.turns)
        self._lock = threading.Lock()

    def pick(self, prompt: str) -> Turn | None:
        """The first turn that matches ``prompt`` and has uses left (consuming one), else None."""
        with self._lock:
            for index, turn in enumerate(self.script.turns):
                if turn.times is not None and self._used[index] >= turn.times:
                    continue
                if turn.matches(prompt):
                    self._used[index] += 1
                    return turn
        return None


def prompt_text(messages: Any) -> str:
    """The text of the last user message: the string content, or its text and tool_result texts."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def content_text(content: Any) -> str:
    """Plain text of a content value (string or blocks), including text nested in tool results."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(content_text(block.get("content", "")))
    return "".join(parts)


def user_prompts(messages: Any) -> list[str]:
    """Texts of all user messages in order (the default reply quotes the previous one)."""
    if not isinstance(messages, list):
        return []
    return [content_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
