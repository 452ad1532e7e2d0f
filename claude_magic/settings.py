"""Every claude_magic option, in one traitlets Configurable that every surface reads.

The class is named `ClaudeMagic` because that is the configuration section users know:

    %config ClaudeMagic.model = "claude-opus-5-5"     # in a notebook, once the extension is loaded
    %config ClaudeMagic                               # lists the options with their help
    c.ClaudeMagic.max_tokens = 2000                   # ipython_config.py

`current_settings()` returns the instance in force: the one the extension registered in the shell's
`configurables` (so `%config` applies to the magic, the panel and the Python API alike), else a fresh
one with the environment's defaults.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from claude_magic._wire import CASSETTE_MODES
from claude_magic.core.history import DEFAULT_CONVERSATION
from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.core.pricing import parse_overrides
from claude_magic.core.request import DEFAULT_MAX_TOKENS, DISPLAYS, EFFORTS, THINKING_DEFAULT, thinking_param

_TRUE = {"1", "true", "yes", "on"}
DISPLAY_MODES = ("auto", "live", "final", "terminal")
DEFAULT_HISTORY_DIR = ".claude_magic/history"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def check_max_tokens(value: int) -> int:
    if value < 1:
        raise ValueError(f"max_tokens must be at least 1, got {value}")
    return int(value)


def check_temperature(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"temperature must be between 0 and 1, got {value}")
    return value


def _validated(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise TraitError(str(exc)) from None


class ClaudeMagic(Configurable):
    """Settings of claude_magic (`%config ClaudeMagic.<name> = value`); per-call flags override them."""

    model = Unicode(help="Model id (env CLAUDE_MAGIC_MODEL).").tag(config=True)
    max_tokens = Int(None, allow_none=True, help=f"Maximum output tokens per answer, thinking included (None: "
                     f"{DEFAULT_MAX_TOKENS:,}, or the model's maximum output when that is lower).").tag(config=True)
    system = Unicode("", help="System prompt for every turn.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature, 0 to 1 (None: API default).").tag(
        config=True
    )
    conversation = Unicode(DEFAULT_CONVERSATION, help="Name of the conversation turns go to.").tag(config=True)
    display_mode = CaselessStrEnum(
        list(DISPLAY_MODES),
        help="auto: live in a notebook, text in a terminal; final: only the finished answer "
        "(for nbval/nbconvert runs, which ignore display updates). Env CLAUDE_MAGIC_DISPLAY.",
    ).tag(config=True)
    throttle_interval = Float(0.1, help="Seconds between redraws while streaming.").tag(config=True)
    max_retries = Int(2, help="Retries for connection errors and 429/5xx before the first token.").tag(
        config=True
    )
    connect_timeout = Float(5.0, help="Seconds to wait for the connection.").tag(config=True)
    read_timeout = Float(600.0, help="Seconds to wait for the next piece of a stream.").tag(config=True)
    offline = Bool(help="Answer from the bundled emulator instead of Claude (env CLAUDE_MAGIC_OFFLINE=1).").tag(
        config=True
    )
    emulator_script = Unicode(
        help="Offline mode: answer from this emulator script (YAML/JSON, see the emulator's SCRIPT_FORMAT.md) "
        "instead of the bundled one. Env CLAUDE_MAGIC_EMULATOR_SCRIPT."
    ).tag(config=True)
    prompt_caching = Bool(True, help="Mark the newest message as a prompt-cache breakpoint.").tag(config=True)
    raise_on_error = Bool(True, help="Raise after a failed turn, so Run All and nbval stop there.").tag(
        config=True
    )
    debug = Bool(False, help="On API errors raise the original exception with its traceback; a raising "
                 "tool's traceback is shown under its line.").tag(config=True)
    # Tools (see core/tools.py and core/tool_loop.py).
    tools = List(AnyTrait(), help="Tools Claude may call in every turn: names of functions in the notebook "
                 "(or the functions themselves). Per cell: --tools NAME[,NAME...].").tag(config=True)
    max_tool_rounds = Int(8, help="Tool rounds (Claude calls tools, gets the results) per turn at most.").tag(
        config=True
    )
    tool_result_limit = Int(20_000, help="Characters of one tool result sent to Claude; longer results are "
                            "cut, with a note saying so.").tag(config=True)
    # MCP servers (see core/mcp.py).
    mcp_servers = AnyTrait({}, help="MCP servers, as Claude Desktop and Claude Code configure them: {name: "
                           "{command, args, env, cwd}} (stdio) or {name: {url, headers}} (streamable HTTP), an "
                           "optional 'type', or a path to such a JSON file (with 'mcpServers'). Needs "
                           "pip install \"claude_magic[mcp]\".").tag(config=True)
    mcp = List(Unicode(), help="MCP servers (names in mcp_servers) whose tools every turn offers. Per cell: "
               "--mcp NAME[,NAME...].").tag(config=True)
    mcp_timeout = Float(30.0, help="Seconds an MCP server may take to start, or to answer one tool call.").tag(
        config=True
    )
    # The notebook as context (see core/context.py and core/tokens.py).
    interpolate = Bool(False, help="Replace {name} and {expression} in prompts from the notebook's variables "
                       "(also {In[n]}, {Out[n]}, {Err[n]}); {{ and }} are literal braces. Per cell: -i.").tag(
        config=True
    )
    attachment_chars = Int(20_000, help="Character budget of one text attachment (-a): longer ones are cut, "
                           "and say what was cut.").tag(config=True)
    history_images = Bool(True, help="Keep attached images and PDFs of earlier turns in the requests; False "
                          "sends them only with the turn they were attached to (saves tokens).").tag(config=True)
    # Conversations (see core/history.py and core/persist.py).
    thinking = Unicode("", help="Thinking for every turn: empty for the model's default (on from Claude 5), "
                       "adaptive, between_tools, off (the least the model allows), or a token budget (Claude 4.6 "
                       "and earlier; at least 1024, less than max_tokens). Per cell: --thinking.").tag(config=True)
    thinking_display = CaselessStrEnum(list(DISPLAYS), allow_none=True,
                                       help="What thinking blocks carry: summarized (default: the model's "
                                       "reasoning, streamed above the answer) or omitted (only a signature); "
                                       "None: the model's default. Applied where the model takes it. Env "
                                       "CLAUDE_MAGIC_THINKING_DISPLAY. Per cell: --thinking-display.").tag(config=True)
    effort = Unicode("", help=f"output_config.effort for every turn: {', '.join(EFFORTS)} (which ones, by "
                     "model: the contract table); empty: the model's default. Per cell: --effort.").tag(config=True)
    history_dir = Unicode(help="Folder (relative to the notebook's) where every committed turn is saved, so "
                          "`%claude resume` can load a conversation after a restart; empty: do not save. "
                          "Env CLAUDE_MAGIC_HISTORY_DIR; default .claude_magic/history.").tag(config=True)
    prices = Dict(help="Prices used for the footer's cost estimate, by model id prefix: {model: {input, output, "
                  "cache_write, cache_read}} in US dollars per million tokens; they extend and override the "
                  "built-in table (core/pricing.py).").tag(config=True)
    max_input_tokens = Int(None, allow_none=True, help="Refuse a turn before sending when its input tokens "
                           "would exceed this (None: the model's context window when known; 0: off).").tag(
        config=True
    )

    # Reproducible notebooks (see core/transport.py).
    cassette = Unicode(help="Record Claude's answers into this file (relative to the notebook's folder) and replay "
                       "them: a notebook that replays needs no key and no network (nbval in CI). Empty: off. Env "
                       "CLAUDE_MAGIC_CASSETTE.").tag(config=True)
    cassette_mode = CaselessStrEnum(list(CASSETTE_MODES), help="replay_or_record (default): replay what the "
                                    "cassette holds, send and record the rest (strict without an API key); replay: "
                                    "strict, a request not recorded fails in one line and nothing is sent; "
                                    "record: send every request, record every answer. Env "
                                    "CLAUDE_MAGIC_CASSETTE_MODE.").tag(config=True)
    cassette_speed = Float(help="Replay pace: 1 as recorded (default), 10 ten times faster, 0 without waiting. Env "
                           "CLAUDE_MAGIC_CASSETTE_SPEED.").tag(config=True)

    # Claude's server tools and citations (core.server_tools): off when empty; "on", or options as the flags
    # take them ("max_uses=3,allowed=example.com,python.org").
    web_search = Unicode("", help="Web search in every turn: empty (off), on, or options such as "
                         "max_uses=3,allowed=example.com,python.org (or blocked=...).").tag(config=True)
    web_fetch = Unicode("", help="Web fetch in every turn: empty (off), on, or options such as "
                        "max_uses=2,allowed=python.org.").tag(config=True)
    code_execution = Unicode("", help="Code execution (in Anthropic's sandbox, not this kernel) in every turn: "
                             "empty (off) or on.").tag(config=True)
    cite = Bool(False, help="Turn on citations for attached PDFs and text files (and fetched pages): the "
                "answer's cited passages get numbered links to where they come from.").tag(config=True)

    @validate("web_search", "web_fetch", "code_execution")
    def _check_server_tool(self, proposal: Any) -> str:
        from claude_magic.core.server_tools import parse_spec

        _validated(lambda text: parse_spec(proposal["trait"].name, text), proposal["value"])
        return str(proposal["value"]).strip()

    @default("model")
    def _default_model(self) -> str:
        return os.environ.get("CLAUDE_MAGIC_MODEL") or DEFAULT_MODEL

    @default("thinking_display")
    def _default_thinking_display(self) -> str:
        value = os.environ.get("CLAUDE_MAGIC_THINKING_DISPLAY", "").strip().lower()
        return value if value in DISPLAYS else "summarized"

    @default("display_mode")
    def _default_display_mode(self) -> str:
        return os.environ.get("CLAUDE_MAGIC_DISPLAY", "auto").strip().lower() or "auto"

    @default("offline")
    def _default_offline(self) -> bool:
        return _env_flag("CLAUDE_MAGIC_OFFLINE")

    @default("emulator_script")
    def _default_emulator_script(self) -> str:
        return os.environ.get("CLAUDE_MAGIC_EMULATOR_SCRIPT", "").strip()

    @default("history_dir")
    def _default_history_dir(self) -> str:
        return os.environ.get("CLAUDE_MAGIC_HISTORY_DIR", DEFAULT_HISTORY_DIR).strip()

    @default("cassette")
    def _default_cassette(self) -> str:
        return os.environ.get("CLAUDE_MAGIC_CASSETTE", "").strip()

    @default("cassette_mode")
    def _default_cassette_mode(self) -> str:
        value = os.environ.get("CLAUDE_MAGIC_CASSETTE_MODE", "").strip().lower()
        if not value:
            return CASSETTE_MODES[0]
        # A misspelt mode (in CI, say) must not fall back to one that may reach the API: the strict one.
        return value if value in CASSETTE_MODES else "replay"

    @default("cassette_speed")
    def _default_cassette_speed(self) -> float:
        try:
            return max(0.0, float(os.environ.get("CLAUDE_MAGIC_CASSETTE_SPEED", "1")))
        except ValueError:
            return 1.0

    @validate("thinking")
    def _check_thinking(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip().lower()
        # Checked on its own here; against max_tokens and temperature when a turn is asked.
        _validated(lambda text: thinking_param(text, max_tokens=2**31, temperature=None), value)
        return "" if value in THINKING_DEFAULT else value

    @validate("effort")
    def _check_effort(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip().lower()
        if value and value not in EFFORTS:
            raise TraitError(f"effort must be one of {', '.join(EFFORTS)} (or empty), got {proposal['value']!r}")
        return value

    @validate("mcp_servers")
    def _check_mcp_servers(self, proposal: Any) -> Any:
        from claude_magic.core.mcp_config import parse_servers

        _validated(parse_servers, proposal["value"])  # a path is read again at each use: edits apply
        return proposal["value"]

    @validate("mcp")
    def _check_mcp(self, proposal: Any) -> list[str]:
        from claude_magic.core.mcp_config import split_server_names

        return split_server_names(proposal["value"])

    @validate("prices")
    def _check_prices(self, proposal: Any) -> dict[str, Any]:
        _validated(parse_overrides, proposal["value"])
        return dict(proposal["value"])

    @validate("max_tokens")
    def _check_max_tokens(self, proposal: Any) -> int | None:
        return None if proposal["value"] is None else _validated(check_max_tokens, proposal["value"])

    @validate("temperature")
    def _check_temperature(self, proposal: Any) -> float | None:
        return _validated(check_temperature, proposal["value"])

    @validate("throttle_interval", "connect_timeout", "read_timeout", "cassette_speed", "mcp_timeout")
    def _check_non_negative(self, proposal: Any) -> float:
        if proposal["value"] < 0:
            raise TraitError(f"{proposal['trait'].name} must not be negative")
        return float(proposal["value"])

    @validate("attachment_chars", "max_input_tokens")
    def _check_limits(self, proposal: Any) -> int | None:
        value = proposal["value"]
        if value is not None and value < 0:
            raise TraitError(f"{proposal['trait'].name} must not be negative")
        return value if value is None else int(value)

    @validate("max_tool_rounds", "tool_result_limit")
    def _check_positive(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1")
        return int(proposal["value"])

    @validate("max_retries")
    def _check_retries(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError("max_retries must not be negative")
        return int(proposal["value"])


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def registered_settings() -> ClaudeMagic | None:
    """The settings `%load_ext claude_magic` registered with the running shell, if any."""
    shell = _shell()
    for configurable in getattr(shell, "configurables", ()):
        if isinstance(configurable, ClaudeMagic):
            return configurable
    return None


def current_settings() -> ClaudeMagic:
    """The settings in force: the extension's (so `%config` applies), else the environment's defaults."""
    return registered_settings() or ClaudeMagic()


def register_settings(shell: Any) -> ClaudeMagic:
    """Create the shell's settings once (parented to it, so ipython_config.py applies) and list them
    in `shell.configurables`, which is what `%config` searches."""
    settings = next((c for c in shell.configurables if isinstance(c, ClaudeMagic)), None)
    if settings is None:
        settings = ClaudeMagic(parent=shell)
        shell.configurables.append(settings)
    return settings


__all__ = ["ClaudeMagic", "check_max_tokens", "check_temperature", "current_settings", "register_settings",
           "registered_settings"]
