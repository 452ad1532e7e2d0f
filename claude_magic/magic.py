"""The `%%claude` cell magic and `%claude` line magic.

Usage::

    %load_ext claude_magic
    %%claude --max-tokens 500
    Explain HTTP caching in three bullet points.

    %claude history        # show the conversation
    %claude reset          # start over
    %config ClaudeMagic.model = "claude-opus-5-5"
"""

from __future__ import annotations

import html
import io
import os
import shlex
import time
import uuid
from argparse import Namespace
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, default, validate

from ._client import ClientSettings, get_client
from ._errors import redacted_exception, user_error
from ._history import DEFAULT_CONVERSATION, STORE, Conversation
from ._markdown import render_markdown
from ._models import DEFAULT_MODEL
from ._request import TurnOptions, build_request
from ._sinks import IPythonDisplay, TerminalSink, make_cell_sink
from ._stream import Sink, run_turn
from ._throttle import Throttle
from ._turn import TurnState

_TRUE = {"1", "true", "yes", "on"}
_SUBCOMMANDS = ("history", "reset", "panel")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


@magics_class
class ClaudeMagic(Magics):
    """Ask Claude from a notebook; every option is also a `%config ClaudeMagic.<name>` setting."""

    model = Unicode(help="Model id (env CLAUDE_MAGIC_MODEL).").tag(config=True)
    max_tokens = Int(4096, help="Maximum output tokens per answer.").tag(config=True)
    system = Unicode("", help="System prompt for every turn.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature, 0 to 1 (None: API default).").tag(
        config=True
    )
    conversation = Unicode(DEFAULT_CONVERSATION, help="Name of the conversation turns go to.").tag(config=True)
    display_mode = CaselessStrEnum(
        ["auto", "live", "final", "terminal"],
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
    prompt_caching = Bool(True, help="Mark the newest message as a prompt-cache breakpoint.").tag(config=True)
    raise_on_error = Bool(True, help="Raise after a failed turn, so Run All and nbval stop there.").tag(
        config=True
    )
    debug = Bool(False, help="On API errors raise the original exception with its traceback.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.last_turn: TurnState | None = None

    @default("model")
    def _default_model(self) -> str:
        return os.environ.get("CLAUDE_MAGIC_MODEL") or DEFAULT_MODEL

    @default("display_mode")
    def _default_display_mode(self) -> str:
        return os.environ.get("CLAUDE_MAGIC_DISPLAY", "auto").strip().lower() or "auto"

    @default("offline")
    def _default_offline(self) -> bool:
        return _env_flag("CLAUDE_MAGIC_OFFLINE")

    @validate("max_tokens")
    def _check_max_tokens(self, proposal: Any) -> int:
        return _validated(check_max_tokens, proposal["value"])

    @validate("temperature")
    def _check_temperature(self, proposal: Any) -> float | None:
        return _validated(check_temperature, proposal["value"])

    @validate("throttle_interval", "connect_timeout", "read_timeout")
    def _check_non_negative(self, proposal: Any) -> float:
        if proposal["value"] < 0:
            raise TraitError(f"{proposal['trait'].name} must not be negative")
        return float(proposal["value"])

    @validate("max_retries")
    def _check_retries(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError("max_retries must not be negative")
        return int(proposal["value"])

    @magic_arguments()
    @argument("-m", "--model", help="Model id for this turn (default: %%config ClaudeMagic.model).")
    @argument("--max-tokens", type=int, help="Maximum output tokens for this turn.")
    @argument("--system", help="System prompt for this turn.")
    @argument("--temperature", type=float, help="Sampling temperature, 0 to 1.")
    @argument("--new", action="store_true", help="Start a fresh conversation before this prompt.")
    @argument("-c", "--conversation", help="Conversation name (default: %%config ClaudeMagic.conversation).")
    @argument("--display", choices=["auto", "live", "final", "terminal"], help="How to show the answer.")
    @argument("--no-raise", action="store_true", help="Do not raise when the turn fails.")
    @argument(
        "prompt",
        nargs="*",
        help="Line magic only: the prompt, or one of `history`, `reset`, `panel`. "
        "The cell magic takes the prompt from the cell body.",
    )
    @line_cell_magic
    def claude(self, line: str, cell: str | None = None) -> Any:
        """Stream Claude's answer into this cell, rendered as Markdown, with a usage footer.

        The conversation is kept per kernel: each turn sees the earlier ones.
        """
        args, prompt = self._parse(line, cell)
        if cell is None and prompt in _SUBCOMMANDS:
            return self._subcommand(prompt, args)
        if not prompt.strip():
            where = "in the cell body below %%claude" if cell is not None else "after %claude"
            raise UsageError(f"Empty prompt: write the question {where}.")
        check_encodable(prompt)
        self._ask(prompt, args)
        return None

    # -- parsing -----------------------------------------------------------------------------------

    def _parse(self, line: str, cell: str | None) -> tuple[Namespace, str]:
        option_args, rest = split_options(line, self.claude.parser)
        args = self.claude.parser.parse_args(option_args)
        if cell is not None:
            if rest:
                raise UsageError(
                    f"Unexpected text on the %%claude line: {rest!r}. Put the prompt in the cell body."
                )
            # Trailing newlines are an artifact of the cell, not part of the question.
            return args, cell.strip("\n").rstrip()
        return args, rest

    def _options(self, args: Namespace) -> TurnOptions:
        try:
            max_tokens = check_max_tokens(self.max_tokens if args.max_tokens is None else args.max_tokens)
            temperature = check_temperature(self.temperature if args.temperature is None else args.temperature)
        except ValueError as exc:
            raise UsageError(f"Invalid option: {exc}") from None
        return TurnOptions(
            model=args.model or self.model,
            max_tokens=max_tokens,
            system=self.system if args.system is None else args.system,
            temperature=temperature,
            prompt_caching=self.prompt_caching,
        )

    # -- turns ---------------------------------------------------------------------------------------

    def _ask(self, prompt: str, args: Namespace) -> None:
        options = self._options(args)
        conversation = STORE.get(args.conversation or self.conversation)
        if args.new:
            conversation.reset()
        client = get_client(ClientSettings(self.offline, self.connect_timeout, self.read_timeout))
        request = build_request(options, conversation.request_messages(prompt))
        state = TurnState(model=options.model, prompt=prompt, started_at=time.monotonic(), offline=self.offline)
        self.last_turn = state
        run_turn(client, request, state, self._sink(args.display), throttle=Throttle(self.throttle_interval),
                 max_retries=self.max_retries)
        if state.status == "complete":
            conversation.commit(prompt, state.assistant_content())
        elif state.error is not None and self.raise_on_error and not args.no_raise:
            if self.debug and state.error.exception is not None:
                raise redacted_exception(state.error.exception)
            raise user_error(state.error.message)

    def _sink(self, requested: str | None) -> Sink:
        mode = (requested or self.display_mode).lower()
        if mode == "auto":
            in_kernel = type(self.shell).__name__ == "ZMQInteractiveShell"
            mode = "live" if in_kernel else "terminal"
        if mode == "terminal":
            return TerminalSink()
        return make_cell_sink(mode, IPythonDisplay(), f"claude-{uuid.uuid4().hex[:12]}")

    # -- subcommands -------------------------------------------------------------------------------

    def _subcommand(self, name: str, args: Namespace) -> Any:
        conversation = STORE.get(args.conversation or self.conversation)
        if name == "reset":
            turns = len(conversation)
            conversation.reset()
            print(f"Conversation {conversation.name!r} cleared ({turns} exchange{'s' * (turns != 1)} removed).")
            return None
        if name == "history":
            return HistoryView(conversation)
        from .panel import ChatPanel

        return ChatPanel(conversation=conversation.name)


def check_max_tokens(value: int) -> int:
    if value < 1:
        raise ValueError(f"max_tokens must be at least 1, got {value}")
    return int(value)


def check_temperature(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"temperature must be between 0 and 1, got {value}")
    return value


def check_encodable(prompt: str) -> None:
    """The API takes UTF-8; a lone surrogate (e.g. from bytes decoded with surrogateescape) cannot be sent."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"The prompt has a character that is not valid Unicode at position {exc.start} "
            f"({prompt[exc.start]!r}): decode bytes with errors='replace' before interpolating them."
        ) from None


def _validated(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise TraitError(str(exc)) from None


class HistoryView:
    """A conversation rendered for display (`%claude history`)."""

    def __init__(self, conversation: Conversation) -> None:
        self.name = conversation.name
        self.messages = conversation.messages

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if not self.messages:
            empty = f"Conversation {self.name!r} is empty."
            return {"text/plain": empty, "text/html": f"<p><em>{html.escape(empty)}</em></p>"}
        text_parts, html_parts = [], []
        for message in self.messages:
            body = _message_text(message["content"])
            text_parts.append(f"{message['role']}:\n{body}")
            html_parts.append(f"<div><strong>{html.escape(message['role'])}</strong></div>{render_markdown(body)}")
        return {"text/plain": "\n\n".join(text_parts), "text/html": "<hr>".join(html_parts)}


def _message_text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.get("type") == "text":
            parts.append(block["text"])
        else:
            parts.append(f"[{block.get('type')} block]")
    return "\n\n".join(parts)


def split_options(line: str, parser: Any) -> tuple[list[str], str]:
    """Split a magic line into leading option tokens and the verbatim rest (the prompt).

    A line magic's prompt is free text ("what's a ZIP file?"), which shell-style splitting would
    choke on or reflow, so only the leading options are tokenized and the rest is kept as typed.
    """
    lexer = shlex.shlex(io.StringIO(line), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    options: list[str] = []
    consumed = 0
    needs_value = False
    while True:
        try:
            token = lexer.get_token()
        except ValueError:  # an unbalanced quote: it belongs to the prompt
            break
        if token is None or token == lexer.eof:
            consumed = len(line)
            break
        if not needs_value and not _looks_like_option(token):
            break
        options.append(token)
        if needs_value:
            needs_value = False
        else:
            action = parser._option_string_actions.get(token.split("=", 1)[0])
            needs_value = action is not None and action.nargs != 0 and "=" not in token
        consumed = lexer.instream.tell()
    return options, line[consumed:].strip()


def _looks_like_option(token: str) -> bool:
    return token.startswith("--") or (len(token) >= 2 and token[0] == "-" and token[1].isalpha())


__all__ = ["ClaudeMagic", "HistoryView", "split_options"]
