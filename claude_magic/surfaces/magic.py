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

import io
import re
import shlex
import uuid
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import MagicHelpFormatter, argument, kwds, magic_arguments

from claude_magic.core.context import ERRORS, ContextError, interpolate, resolve_attachments, split_names
from claude_magic.core.history import STORE, Conversation
from claude_magic.core.persist import HistoryFileError, export_json, export_markdown, read_export
from claude_magic.core.persist import install as install_saver
from claude_magic.settings import DISPLAY_MODES, ClaudeMagic
from claude_magic.surfaces import warm_up
from claude_magic.surfaces.display import in_kernel, notebook_cell_id, resolve_display

# `%load_ext` imports this module: what brings the SDK (the engine, the client, the error texts) or the
# renderers is imported where a turn needs it, after the extension's background warm-up has loaded it
# (claude_magic/surfaces/warm_up.py), so that loading the extension never waits for `import anthropic`.
if TYPE_CHECKING:
    from claude_magic.core.context import Attachment
    from claude_magic.core.engine import PreparedTurn
    from claude_magic.core.turn import TurnState
    from claude_magic.surfaces.reply import Reply

# Every subcommand of the line magic: (its argument, what it does). The help text, the parser of a line and
# its usage errors are all made from this table.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "history": ("", "show the conversation: numbered turns, where each came from, tokens and cost"),
    "reset": ("", "clear the conversation"),
    "continue": ("", "go on with the last answer where max_tokens cut it off"),
    "conversations": ("", "list this kernel's conversations and the ones saved for this notebook"),
    "resume": ("[NAME]", "load a saved conversation back (after a kernel restart)"),
    "export": ("FILE", "write the conversation to FILE.json (to import again) or FILE.md (to read)"),
    "import": ("FILE", "load a conversation from FILE.json"),
    "panel": ("", "open the chat panel on the conversation"),
    "last": ("", "show the last reply (a claude_magic.Reply)"),
    "tokens": ("", "count the input tokens the next request would carry (-a NAME counts attachments too)"),
    "mcp": ("", "list the MCP servers (%config ClaudeMagic.mcp_servers), their state and their tools"),
    "batches": ("[cancel ID]", "list this notebook's Message Batches (map(..., batch=True)) with status and counts; "
                "cancel ID cancels one that is still running"),
}
# The file suffixes a subcommand's FILE takes.
_SUFFIXES = {"export": (".json", ".md"), "import": (".json",)}
FORMATS = ("markdown", "text", "code", "json")


def _subcommand_lines() -> str:
    return "\n".join(f"  {f'{name} {argument}'.strip():<20}{what}" for name, (argument, what) in SUBCOMMANDS.items())


_USAGE = f"""
  %%claude [options]
  PROMPT (the cell body, any number of lines)

  %claude [options] PROMPT        a one-line question; a trailing ? is part of it
  answer = %claude [options] PROMPT
  %claude SUBCOMMAND
  %claude [options] -- PROMPT     a question that starts with a subcommand's word ("-- reset my password?")

Subcommands (line magic):
{_subcommand_lines()}

Re-running a %%claude cell replaces that cell's turn in the conversation (--append adds a new one)."""


class _HelpFormatter(MagicHelpFormatter):
    """IPython's magic help formatter, with a plain "Usage:" heading instead of an RST `::` block
    (the help is read in a pager or a notebook, not rendered by Sphinx)."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = "Usage:") -> None:
        argparse_formatter = super(MagicHelpFormatter, self)
        argparse_formatter.add_usage(usage, actions, groups, prefix)


@magics_class
class ClaudeMagics(Magics):
    """`%%claude` and `%claude`. The options' session defaults are `%config ClaudeMagic.<name>` settings
    (`claude_magic.settings.ClaudeMagic`), shared with the panel and the Python API."""

    def __init__(self, shell: Any = None, settings: ClaudeMagic | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.settings = settings or ClaudeMagic()
        self.last_turn: TurnState | None = None
        self._run_key: tuple[str, int] | None = None  # the cell run whose %claude calls are being counted
        self._asked_in_run = 0

    @magic_arguments()
    @kwds(usage=_USAGE.replace("%", "%%"), formatter_class=_HelpFormatter)  # argparse %-formats usage
    @argument("-m", "--model", help="Model id for this turn (default: %%config ClaudeMagic.model).")
    @argument("--max-tokens", type=int, help="Maximum output tokens for this turn.")
    @argument("--system", help="System prompt for this turn.")
    @argument("--temperature", type=float, help="Sampling temperature, 0 to 1.")
    @argument("--new", action="store_true", help="Start a fresh conversation before this prompt.")
    @argument("-c", "--conversation", help="Conversation name (default: %%config ClaudeMagic.conversation).")
    @argument("--display", choices=list(DISPLAY_MODES), help="How to show the answer.")
    @argument("--raw", action="store_true",
              help="Show the stream's events as they arrive instead of the answer: one line each (type, index, "
              "delta kind, a short payload; pings included), then the footer.")
    @argument("--out", metavar="NAME", help="Also store the reply (a claude_magic.Reply) in the variable NAME.")
    @argument("--output", metavar="NAME",
              help="A typed answer: NAME is a pydantic model, dataclass, TypedDict or JSON-schema dict of the "
              "notebook; the answer is that object (shown as a table), in reply.parsed (keep it with --out).")
    @argument("--no-raise", action="store_true", help="Do not raise when the turn fails.")
    @argument("--thinking", metavar="adaptive|between_tools|off|N",
              help="Thinking: adaptive (Claude 4.6 and later), between_tools (Sonnet 5.5), off (the least the "
              "model allows), or a token budget N (Claude 4.6 and earlier; at least 1024, less than "
              "--max-tokens). Default: %%config ClaudeMagic.thinking, else the model's own.")
    @argument("--thinking-display", choices=["summarized", "omitted"],
              help="summarized: stream the model's reasoning above the answer; omitted: only a signature (the "
              "answer starts sooner). Default: %%config ClaudeMagic.thinking_display (summarized).")
    @argument("--effort", choices=["low", "medium", "high", "xhigh", "max"],
              help="output_config.effort: how hard the model works (default: %%config ClaudeMagic.effort, "
              "else the model's).")
    @argument("--key", metavar="NAME",
              help="Name this cell's turn: a later cell with the same --key replaces it (by default the "
              "notebook's cell id does this; use it where the frontend sends none, e.g. nbconvert).")
    @argument("--append", action="store_true",
              help="Add this turn at the end of the conversation even when this cell ran before (by default a "
              "re-run cell replaces its own turn).")
    @argument("--tools", metavar="NAME[,NAME...]",
              help="Functions of the notebook Claude may call in this turn (default: %%config ClaudeMagic.tools).")
    @argument("--tool-choice", metavar="auto|any|none|NAME",
              help="Whether Claude must call a tool: auto (default), any, none, or one tool's name.")
    @argument("--mcp", metavar="NAME[,NAME...]",
              help="MCP servers (%%config ClaudeMagic.mcp_servers) whose tools Claude may call in this turn, "
              "named mcp__SERVER__TOOL (default: %%config ClaudeMagic.mcp); %%claude mcp lists them.")
    @argument("-i", "--interpolate", action="store_true",
              help="Replace {name} and {expression} (also {In[n]}, {Out[n]}, {Err[n]}) from the notebook's "
              "variables; {{ and }} are literal braces (default: %%config ClaudeMagic.interpolate).")
    @argument("-a", "--attach", action="append", metavar="NAME[,NAME...]",
              help="Attach variables (DataFrame, array, figure, image, ...), files (.png .pdf .csv .py ...), "
              "Err / Err[n] (a traceback), In[n] / Out[n], or an MCP server's resource as @SERVER:URI before "
              "the prompt.")
    @argument("-f", "--format", choices=list(FORMATS), default="markdown",
              help="markdown (default) or text: how the answer is shown; code: also put its code blocks in a "
              "new cell below; json: parse the answer as JSON into reply.json.")
    # Claude's server tools and citations (core.server_tools). An option's value follows `=` only, so a line
    # magic's prompt is never taken for one: `%claude --web-search What changed in Python 3.14`.
    @argument("--web-search", nargs="?", const="on", metavar="=OPTIONS",
              help="Let Claude search the web (run by the API): --web-search, or --web-search=max_uses=3,"
              "allowed=example.com,python.org (or blocked=...). Default: %%config ClaudeMagic.web_search.")
    @argument("--web-fetch", nargs="?", const="on", metavar="=OPTIONS",
              help="Let Claude fetch web pages: --web-fetch, or --web-fetch=max_uses=2,allowed=python.org. "
              "Default: %%config ClaudeMagic.web_fetch.")
    @argument("--code-execution", nargs="?", const="on", metavar="=on|off",
              help="Let Claude run code in Anthropic's sandbox (not this kernel). Default: %%config "
              "ClaudeMagic.code_execution.")
    @argument("--cite", action="store_true", default=None,
              help="Citations for the attached PDFs and text files (-a report.pdf --cite) and fetched pages: "
              "cited passages get numbered links. Default: %%config ClaudeMagic.cite.")
    @argument(
        "prompt",
        nargs="*",
        help="Line magic only: the prompt, or a subcommand (listed above). "
        "The cell magic takes the prompt from the cell body.",
    )
    @no_var_expand  # the prompt is sent exactly as typed; -i expands it, with its own rules
    @line_cell_magic
    def claude(self, line: str, cell: str | None = None) -> Any:
        """Stream Claude's answer into this cell, rendered as Markdown, with a usage footer.

        The conversation is kept per kernel: each turn sees the earlier ones. The line magic returns the
        reply (`answer = %claude ...`), which is not drawn a second time on the cell's last line.
        """
        args, prompt, verbatim = self._parse(line, cell)
        warm_up.wait()  # the SDK and the renderers are loaded (or being loaded) in the background
        command = subcommand(prompt) if cell is None and not verbatim else None
        if command is not None:
            return self._subcommand(*command, args)
        if not prompt.strip():
            where = "in the cell body below %%claude" if cell is not None else "after %claude"
            raise UsageError(f"Empty prompt: write the question {where}.")
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"--out needs a variable name, got {args.out!r}.")
        if args.raw and args.format == "text":
            raise UsageError("--raw shows the stream's events, -f text the answer as text: use one of them.")
        try:
            if args.interpolate or self.settings.interpolate:
                prompt = interpolate(prompt, self.shell.user_ns, ERRORS)
            attachments = self._attachments(args)
        except ContextError as exc:
            raise UsageError(str(exc)) from None
        check_encodable(prompt)
        reply = self._ask(prompt, args, attachments)
        # The line magic's value is the reply (`answer = %claude ...`); a %%claude cell keeps its value
        # None, so a terminal prints no empty `Out[n]:` after every answer (`--out NAME` keeps it there).
        # So does a terminal's bare `%claude question` line, whose answer is on screen already.
        if cell is not None or (not in_kernel() and _bare_magic_line(self.shell)):
            return None
        return reply

    # -- parsing -----------------------------------------------------------------------------------

    def _parse(self, line: str, cell: str | None) -> tuple[Namespace, str, bool]:
        """The options, the prompt, and whether the prompt is a question whatever its first word (`--`
        ends the options, or a cell body)."""
        option_args, rest = split_options(line, self.claude.parser)
        args = self.claude.parser.parse_args(option_args)
        if cell is not None:
            if rest:
                raise UsageError(
                    f"Unexpected text on the %%claude line: {rest!r}. Put the prompt in the cell body."
                )
            # Trailing newlines are an artifact of the cell, not part of the question.
            return args, cell.strip("\n").rstrip(), True
        return args, rest, "--" in option_args

    # -- turns ---------------------------------------------------------------------------------------

    def _attachments(self, args: Namespace) -> list[Attachment]:
        if not args.attach:
            return []
        return resolve_attachments(split_names(args.attach), self.shell.user_ns, ERRORS,
                                   budget=self.settings.attachment_chars, mcp=self._mcp_settings())

    def _mcp_settings(self) -> tuple[Any, float]:
        """What `-a @SERVER:URI` reads resources with: the configured servers and the timeout."""
        return self.settings.mcp_servers, self.settings.mcp_timeout

    def _ask(self, prompt: str, args: Namespace, attachments: list[Attachment] | None = None) -> Reply:
        from claude_magic.core.engine import prepare_turn

        settings = self.settings
        raising = settings.raise_on_error and not args.no_raise
        try:
            turn = prepare_turn(prompt, settings, model=args.model, max_tokens=args.max_tokens, system=args.system,
                                temperature=args.temperature, conversation=args.conversation or "", new=args.new,
                                error_raised=raising and not settings.debug, attachments=attachments or (),
                                tools=args.tools, tool_choice=args.tool_choice, namespace=self.shell.user_ns,
                                thinking=args.thinking, source=self._source(), owner=self._owner(args.key),
                                append=args.append, thinking_display=args.thinking_display, effort=args.effort,
                                output=self._output_type(args.output), web_search=args.web_search,
                                web_fetch=args.web_fetch, code_execution=args.code_execution, cite=args.cite,
                                mcp=args.mcp)
        except ValueError as exc:
            raise UsageError(f"Invalid option: {exc}") from None
        return self._run(turn, args, attachments or [], raising)

    @staticmethod
    def _source() -> str:
        """Where a turn was asked, as `%claude history` labels it: a notebook cell or a terminal."""
        return "cell" if in_kernel() else "terminal"

    def _output_type(self, name: str | None) -> Any:
        """--output NAME: the notebook's class or schema dict of that name (ValueError, one line, if none)."""
        if name is None:
            return None
        if name not in self.shell.user_ns:
            raise ValueError(f"--output {name}: no such name in the notebook; define the class (or schema dict) "
                             "in a cell above")
        return self.shell.user_ns[name]

    def _owner(self, key: str | None = None) -> str | None:
        """The key of this cell's turn: --key, else the notebook's cell id, and which %claude of the cell it
        is when a cell asks more than once (`id#1`, ...). None without either (a terminal): turns append."""
        if key:
            return f"key:{key}"
        cell_id = notebook_cell_id(self.shell)
        if cell_id is None:
            return None
        run = (cell_id, self.shell.execution_count)
        self._asked_in_run = self._asked_in_run + 1 if self._run_key == run else 0
        self._run_key = run
        return cell_id if self._asked_in_run == 0 else f"{cell_id}#{self._asked_in_run}"

    def _continue(self, args: Namespace) -> Reply:
        """`%claude continue`: the cut-off answer goes on, streamed below its first part."""
        from claude_magic.core.engine import prepare_continuation

        settings = self.settings
        raising = settings.raise_on_error and not args.no_raise
        try:
            turn = prepare_continuation(settings, conversation=args.conversation or "", max_tokens=args.max_tokens,
                                        source=self._source(), error_raised=raising and not settings.debug,
                                        redraw=False)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return self._run(turn, args, [], raising)

    def _run(self, turn: PreparedTurn, args: Namespace, attachments: list[Attachment], raising: bool) -> Reply:
        from claude_magic.core.engine import CONTINUABLE, run_exchange
        from claude_magic.core.errors import redacted_exception, turn_failed
        from claude_magic.surfaces.context_line import attachment_bundle, show_attachments
        from claude_magic.surfaces.display import current_cell, make_sink, remember_cut_off, resolve_cut_off
        from claude_magic.surfaces.reply import Reply, remember_last
        from claude_magic.surfaces.sinks import IPythonDisplay, PlainTextCellSink

        settings = self.settings
        self.last_turn = turn.state
        display = args.display or settings.display_mode
        # -f text: the answer as plain text, drawn once when it is finished; a live cell shows the
        # waiting line until then.
        text_live = args.format == "text" and resolve_display(display) == "live"
        sink = (PlainTextCellSink(IPythonDisplay(), f"claude-{uuid.uuid4().hex[:12]}") if text_live
                else make_sink("none" if args.format == "text" else display, events=args.raw,
                               above=[attachment_bundle(attachments)] if attachments else []))
        show_attachments(attachments, display)
        cell = current_cell() if sink is not None else None
        state = run_exchange(turn, sink)
        if turn.committed and turn.continues is not None:
            resolve_cut_off(turn.continues.id)  # the earlier cell no longer says to continue it
        if turn.committed and state.stop_reason in CONTINUABLE:
            remember_cut_off(turn.committed_id, sink, state)
        reply = remember_last(Reply(state, streamed_into=cell))
        if args.format == "text" and not text_live and not (state.error is not None and state.error.kind == "setup"):
            show_plain_text(reply, display)
        if args.out is not None:
            self.shell.user_ns[args.out] = reply
        # A failed turn raises ClaudeError, not UsageError: only a real exception reaches IOPub as an `error`
        # message, which is what stops nbval (--nbval-lax too) and nbconvert, like any failing cell.
        if state.error is not None and state.error.kind == "setup":
            raise turn_failed(reply) from None  # nothing was drawn: this line is the only report
        if state.error is not None and raising:
            if settings.debug and state.error.exception is not None:
                raise redacted_exception(state.error.exception)
            raise turn_failed(reply) from None
        if state.error is None:
            self._deliver(reply, args, raising)
        return reply

    def _deliver(self, reply: Reply, args: Namespace, raising: bool) -> None:
        """-f code: the answer's code blocks become the next cell; -f json: the answer must parse."""
        if args.format == "code":
            blocks = [code.rstrip("\n") for _language, code in reply.code_blocks]
            if blocks:
                self.shell.set_next_input("\n\n".join(blocks), replace=False)
            else:
                print("The answer has no code blocks: no cell was added.")
        elif args.format == "json":
            from claude_magic.core.errors import ClaudeError

            try:
                reply.json  # noqa: B018 - parsed here so that a non-JSON answer is reported in this cell
            except ValueError as exc:
                # Say where the answer is in this notebook: the magic binds no `reply` variable.
                where = f"{args.out}.text" if args.out else "%claude last (its .text)"
                message = f"{exc}: the answer is shown above and kept in {where}"
                if raising:
                    raise ClaudeError(message, reply) from None
                print(message)

    # -- subcommands -------------------------------------------------------------------------------

    def _subcommand(self, name: str, argument: str | None, args: Namespace) -> Any:
        conversation = STORE.get(args.conversation or self.settings.conversation)
        if name == "continue":
            return self._continue(args)
        if name in ("resume", "import", "export", "conversations"):
            return self._saved(name, argument, conversation)
        if name == "reset":
            turns = len(conversation)
            conversation.reset()
            print(f"Conversation {conversation.name!r} cleared ({turns} turn{'s' * (turns != 1)} removed).")
            return None
        if name == "history":
            from claude_magic.surfaces.history_view import HistoryView

            if not in_kernel():  # rendered Markdown, wrapped between words, and no `Out[n]:` in front
                HistoryView(conversation).print_to_terminal()
                return None
            return HistoryView(conversation)
        if name == "last":
            from claude_magic.surfaces.reply import last_reply

            reply = last_reply()
            if reply is None:
                print("No reply yet in this kernel.")
            return reply
        if name == "tokens":
            return self._tokens(args)
        if name == "batches":
            return self._batches(argument)
        if name == "mcp":
            return self._mcp()
        import claude_magic  # the panel is another surface: reached through the package, lazily

        return claude_magic.ChatPanel(conversation=conversation.name)


    def _mcp(self) -> None:
        """`%claude mcp`: the configured servers, their state (not started, running, failed: why) and tools."""
        from claude_magic.core.mcp import MANAGER, parse_servers

        try:
            configs = parse_servers(self.settings.mcp_servers)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(MANAGER.report(configs))

    def _batches(self, cancel: str | None) -> None:
        """`%claude batches` lists this notebook's Message Batches; `%claude batches cancel ID` cancels one."""
        from claude_magic.surfaces.batch_jobs import batches_report, cancel_batch

        try:
            print(cancel_batch(self.settings, cancel) if cancel else batches_report(self.settings))
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def _saved(self, name: str, argument: str | None, conversation: Conversation) -> None:
        """resume, import, export, conversations: conversations on disk."""
        saver = install_saver(lambda: self.settings.history_dir)
        if name == "conversations":
            from claude_magic.surfaces.history_view import conversations_report

            print(conversations_report(STORE.conversations(), saver.saved(), saver.root()))
            return
        if name == "export":
            assert argument is not None
            path = Path(argument).expanduser()
            try:
                (export_markdown if path.suffix.lower() == ".md" else export_json)(conversation, path)
            except OSError as exc:
                raise UsageError(f"Could not write {path}: {exc}") from None
            turns = len(conversation)
            print(f"Exported conversation {conversation.name!r} ({turns} turn{'s' * (turns != 1)}) to {path}.")
            return
        # resume / import: into a conversation of this kernel that is still empty, so nothing is lost
        source = argument or conversation.name
        target = STORE.get(source.split("@", 1)[0]) if name == "resume" and argument else conversation
        if len(target):
            raise UsageError(f"Conversation {target.name!r} already has {len(target)} turns in this kernel: "
                             f"%claude reset it first, or {name} into another with -c NAME.")
        try:
            if name == "resume":
                save = saver.find(source)  # the save NAME@time itself, or the newest save of conversation NAME
                turns = saver.load(save)
                what = f"saved conversation {save.name!r}"
                # It goes on in the save it came from, unless a running kernel still writes that one.
                saver.adopt(target.name, save, [turn.id for turn in turns])
            else:
                turns, what = read_export(Path(source).expanduser()), str(source)
        except HistoryFileError as exc:
            raise UsageError(str(exc)) from None
        target.load(turns)
        print(f"Loaded {len(turns)} turn{'s' * (len(turns) != 1)} from {what} into conversation {target.name!r}.")

    def _tokens(self, args: Namespace) -> None:
        """Count the next request exactly (history, system, tools, attachments) with messages.count_tokens."""
        from claude_magic.core.client import get_client
        from claude_magic.core.engine import prepare_turn
        from claude_magic.core.errors import ClaudeError, cassette_miss, redacted_exception
        from claude_magic.core.tokens import count_exactly, tokens_report

        try:
            attachments = self._attachments(args)
        except ContextError as exc:
            raise UsageError(str(exc)) from None
        try:
            turn = prepare_turn("?", self.settings, model=args.model, system=args.system,
                                conversation=args.conversation or "", attachments=attachments, mcp=args.mcp)
            client = get_client(turn.client_settings)
        except ValueError as exc:
            raise UsageError(f"Invalid option: {exc}") from None
        try:
            tokens = count_exactly(turn.request, lambda params: client.messages.count_tokens(**params).input_tokens)
        except Exception as exc:  # noqa: BLE001 - one line: the API's own message says why
            raise ClaudeError(f"Could not count tokens: {cassette_miss(exc) or redacted_exception(exc)}") from None
        request = turn.request
        tools = len(request.get("tools") or ())
        parts = (["system prompt"] if request.get("system") else []) + (
            [f"{tools} tool{'s' * (tools != 1)}"] if tools else []) + (
            [f"attachments: {', '.join(a.name for a in attachments)}"] if attachments else [])
        # Turns as `%claude history` numbers them: a turn with tool calls holds several messages.
        history = len(STORE.get(args.conversation or self.settings.conversation))
        print(tokens_report(tokens, request["model"], turn.input_limit, turns=history, parts=parts))
        if attachments:
            print(f"   {', '.join(a.summary() for a in attachments)}")


def show_plain_text(reply: Reply, display: str) -> None:
    """-f text: the finished answer and its footer as text/plain only."""
    from claude_magic.surfaces.display import resolve_display

    if resolve_display(display) == "none":
        return
    bundle = reply._repr_mimebundle_()
    from IPython.display import display as show

    show({"text/plain": bundle["text/plain"]}, raw=True)


# `%claude what is a zip file?`: IPython reads a trailing `?` as a help request (the line would become
# `%pinfo file`). This cleanup transform runs before IPython's help transform and turns such a line into
# the magic call it is, so the question mark stays part of the question. `%claude?` (nothing between
# the name and the `?`) is left alone and still shows help; so are `%%claude` cells, whose body is text.
_QUESTION_LINE = re.compile(r"^(?P<lead>\s*(?:[A-Za-z_][\w.]*\s*=\s*)?)%claude(?P<rest>\s+\S.*\?)\s*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    """IPython input transformer (registered by the extension in `input_transformers_cleanup`)."""
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        match = _QUESTION_LINE.match(line.rstrip("\n"))
        if match is None:
            out.append(line)
            continue
        call = f"get_ipython().run_line_magic('claude', {match['rest'].strip()!r})"
        out.append(f"{match['lead']}{call}{line[len(line.rstrip(chr(10))):]}")
    return out


_CELL_MAGIC_LINE = re.compile(r"^\s*%%claude\b(?P<line>.*)$")


def keep_empty_cells(lines: list[str]) -> list[str]:
    """IPython input transformer: a `%%claude` cell with nothing below it. IPython itself would refuse it
    before the magic runs, suggesting the line magic ("Did you mean %claude?"), when what is missing is
    the question; handed a blank body, the magic says so."""
    if not lines or any(line.strip() for line in lines[1:]) or lines[0].rstrip().endswith("?"):
        return lines  # a body, or not an empty cell: `%%claude?` asks for the help
    match = _CELL_MAGIC_LINE.match(lines[0].rstrip("\n"))
    if match is None:
        return lines
    return [f"get_ipython().run_cell_magic('claude', {match['line'].strip()!r}, '\\n')\n"]


# IPython skips transforms with side effects when it checks whether typed input is complete: so terminal
# IPython still waits for the body after `%%claude` + Enter, as it does for every cell magic.
keep_empty_cells.has_side_effects = True  # type: ignore[attr-defined]


def subcommand(prompt: str) -> tuple[str, str | None] | None:
    """(name, argument) when a line magic's text is a subcommand; None when it is a question.

    A line whose first word is a subcommand's is that subcommand, and a one-word line one letter away from
    one is taken for a typo of it: with a missing, wrong or extra argument, or misspelled, it raises a
    one-line UsageError (the usage, or "did you mean history?"), so that it never goes to Claude as a
    question (money spent, a junk turn in history). A question that starts with such a word goes through
    after `--` (`%claude -- reset my password?`), or in a %%claude cell.
    """
    words = prompt.split()
    if not words:
        return None
    name, arguments = words[0], words[1:]
    if name == "batches" and arguments:  # the one subcommand with two words after it
        if len(arguments) == 2 and arguments[0] == "cancel":
            return name, arguments[1]
        raise UsageError(f"Usage: %claude batches, or %claude batches cancel ID; got {' '.join(arguments)!r}. "
                         f"(A question that starts with 'batches': %claude -- {prompt}, or a %%claude cell.)")
    if name not in SUBCOMMANDS:
        near = [known for known in SUBCOMMANDS if _one_edit_apart(name.lower(), known)]
        if len(words) == 1 and near:
            raise UsageError(f"Unknown subcommand {name!r}: did you mean {' or '.join(near)}? "
                             f"(To ask it as a question: %claude -- {prompt})")
        return None
    argument_usage = SUBCOMMANDS[name][0]
    usage = f"%claude {name} {argument_usage}".strip()
    escape = f"(A question that starts with {name!r}: %claude -- {prompt}, or a %%claude cell.)"
    if any(word.startswith("-") for word in arguments):  # `%claude tokens -a df`: options go first
        raise UsageError(f"Options go before the subcommand: %claude {' '.join(arguments)} {name}. {escape}")
    if not argument_usage and arguments:
        raise UsageError(f"{usage} takes no argument, got {' '.join(arguments)!r}. {escape}")
    if len(arguments) > 1:
        raise UsageError(f"Usage: {usage} (one {argument_usage.strip('[]')}), got {' '.join(arguments)!r}. {escape}")
    argument = arguments[0] if arguments else None
    if argument is None and argument_usage and not argument_usage.startswith("["):
        raise UsageError(f"Usage: {usage}: {SUBCOMMANDS[name][1]}. {escape}")
    suffixes = _SUFFIXES.get(name)
    if argument is not None and suffixes is not None and not argument.lower().endswith(suffixes):
        raise UsageError(f"%claude {name} takes a {' or '.join(f'FILE{suffix}' for suffix in suffixes)} file, "
                         f"got {argument!r}. {escape}")
    return name, argument


def _one_edit_apart(word: str, known: str) -> bool:
    """One letter added, dropped, changed, or two neighbours swapped ("histroy" for "history")."""
    if word == known or abs(len(word) - len(known)) > 1:
        return False
    if len(word) == len(known):
        differ = [i for i, (a, b) in enumerate(zip(word, known, strict=True)) if a != b]
        return len(differ) == 1 or (
            len(differ) == 2 and differ[1] == differ[0] + 1
            and word[differ[0]] == known[differ[1]] and word[differ[1]] == known[differ[0]])
    shorter, longer = sorted((word, known), key=len)
    return any(longer[:i] + longer[i + 1:] == shorter for i in range(len(longer)))


def _bare_magic_line(shell: Any) -> bool:
    """True when the input being run is one `%claude …` line whose value nobody takes (no `x = %claude`)."""
    try:
        raw = shell.history_manager.input_hist_raw[-1]
    except (AttributeError, IndexError):
        return False
    return "\n" not in raw.strip() and raw.lstrip().startswith("%claude")


def check_encodable(prompt: str) -> None:
    """The API takes UTF-8; a lone surrogate (e.g. from bytes decoded with surrogateescape) cannot be sent."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"The prompt has a character that is not valid Unicode at position {exc.start} "
            f"({prompt[exc.start]!r}): decode bytes with errors='replace' before interpolating them."
        ) from None


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
        if token == "--" and not needs_value:  # the end of the options: the rest is the prompt as typed
            consumed = lexer.instream.tell()
            break
        if needs_value:
            needs_value = False
        else:
            action = parser._option_string_actions.get(token.split("=", 1)[0])
            # An optional value (nargs "?", the server tool flags) is given with `=` only: the word after the
            # flag is the prompt's.
            needs_value = action is not None and action.nargs not in (0, "?") and "=" not in token
        consumed = lexer.instream.tell()
    return options, line[consumed:].strip()


def _looks_like_option(token: str) -> bool:
    return token.startswith("--") or (len(token) >= 2 and token[0] == "-" and token[1].isalpha())


__all__ = ["SUBCOMMANDS", "ClaudeMagics", "keep_empty_cells", "keep_question_marks", "split_options", "subcommand"]
