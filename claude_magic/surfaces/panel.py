"""A chat panel for notebooks: the same turns as `%%claude`, in an ipywidgets panel.

Usage::

    from claude_magic import ChatPanel
    ChatPanel()                      # or: %claude panel
    ChatPanel(conversation="notes")  # a named conversation, shared with %%claude -c notes

How it works:

- History is the kernel's `STORE`, shared with the magic: a panel shows the conversation's existing
  messages when built, and picks up turns committed elsewhere after every cell runs, after its own
  turns, and when another panel on the same conversation commits.
- Send never blocks the widget callback: the turn runs in a daemon thread (`core.engine.run_exchange`, the
  engine every surface uses) that only writes widget traits. So the kernel stays free for other cells, with
  comm subshells (JupyterLab >= 4.4 + ipykernel 7) or without them.
- Drawing is incremental, like the cell: `IncrementalView` hands out frozen pieces, gathered into
  `widgets.HTML` pieces sent once, and a live tail (the only value that changes per frame); frames are
  throttled by `Throttle(throttle_interval)` and by a byte budget (see `_TurnView`). When the turn
  ends, its pieces are replaced by one rendering of the whole answer with the magic's footer
  (`answer_bundle`).
- Stop is `TurnControl.stop()` (thread-safe; it shuts the connection's socket down, so a read
  blocked on a silent server ends at once). The partial answer stays on screen, marked, and is not
  added to history.
- Shift+Enter / Ctrl+Enter in the input box send: a small application/javascript output shown next to
  the panel (see `render.panel_html.PANEL_KEYS_JS`); without JavaScript, the Send button still works.
- One turn at a time: Send is disabled while a turn runs and `send()` returns False; the text stays
  in the box. A prompt sent from the box leaves it at once; if the turn fails before its first token
  (no key, HTTP error, Stop while waiting) the prompt is put back. After the first token it stays
  visible in the transcript above the partial answer.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from claude_magic.core.engine import CONTINUABLE, PreparedTurn, prepare_continuation, prepare_turn, run_exchange
from claude_magic.core.errors import ClaudeError
from claude_magic.core.history import STORE, Conversation
from claude_magic.core.models import known_models
from claude_magic.core.request import DISPLAYS, EFFORTS
from claude_magic.core.stream import TurnControl
from claude_magic.core.turn import ErrorInfo, TurnState
from claude_magic.render.budget import ENVELOPE_BYTES, FrameBudget, utf8_size
from claude_magic.render.panel_html import (
    INPUT_CLASS,
    PANEL_CLASS,
    PANEL_CSS,
    PANEL_KEYS_JS,
    SUBMIT_MARK,
    assistant_history_html,
    info_html,
    note_html,
    setup_error_html,
    user_html,
)
from claude_magic.settings import ClaudeMagic, registered_settings
from claude_magic.surfaces.sinks import Drawing, LiveCellSink, flush_iopub

__all__ = ["ChatPanel"]

_ANSWER_CLASS = "claude-panel-answer"
_STOP_WAIT = 5.0  # seconds New conversation waits for a stopped turn to wind down


# A message fills the transcript's width exactly: ipywidgets gives every widget a 2 px margin on each
# side, which a width of 100% would push 4 px past its box (a horizontal scrollbar under each message).
_FULL_WIDTH = {"width": "100%", "flex": "0 0 auto", "margin": "2px 0"}


def _html(value: str, *classes: str) -> widgets.HTML:
    widget = widgets.HTML(value, layout=widgets.Layout(**_FULL_WIDTH))
    for name in classes:
        widget.add_class(name)
    return widget


def _close_tree(items: Iterable[widgets.Widget]) -> None:
    """Close widgets and their children: their comms (and front-end models) go away."""
    for widget in items:
        _close_tree(getattr(widget, "children", ()))
        widget.close()


@dataclass
class _Turn:
    """What one turn's thread needs, fixed when Send was accepted."""

    prompt: str
    from_box: bool  # typed in the input box (which is then cleared and locked until the first token)
    exchange: PreparedTurn  # history + the prompt as shown when Send was pressed, settings, model
    state: TurnState
    control: TurnControl
    view: _TurnView
    shown_before: list[str]  # the turn ids the transcript showed when Send was pressed


class _TurnView:
    """One assistant answer in the transcript, as a run_turn sink (called from the turn's thread).

    The tail widget shows the finished blocks not yet sealed plus the block still being written. Once
    the finished ones pass SEAL_BYTES they become a piece of their own, an HTML widget sent once, and
    the tail starts over; so a frame costs O(SEAL_BYTES + unfinished block) whatever the answer's
    length, and the byte budget (`render.budget.FrameBudget`) decides how often frames may be sent. Pieces
    share one Layout and one style (a widget of their own each would be two more comm_opens) and sit
    in groups of GROUP_SIZE, so adding one re-sends a short children list, not one as long as the
    answer. At the end the last tokens are drawn first, then the pieces are replaced by one rendering
    of the whole turn, with the footer and any warning line.
    """

    SEAL_BYTES = LiveCellSink.SEAL_BYTES
    GROUP_SIZE = 32
    _NEW_WIDGET_BYTES = 1400  # a piece's comm_open: envelope and widget state besides its HTML

    def __init__(self, on_first_content: Callable[[], None] | None = None, *, events: bool = False) -> None:
        self._layout = widgets.Layout(**_FULL_WIDTH)
        self.box = widgets.VBox(layout=self._layout)
        self.box.add_class(_ANSWER_CLASS)
        # `events`: the raw view (the stream's event lines, then the footer), drawn through the same pieces.
        self._drawing = Drawing(events)
        self._view = self._drawing.view
        self._tail = widgets.HTML("", layout=self._layout)
        self._style = self._tail.style  # shared by every piece
        self._group: widgets.VBox | None = None
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._on_first_content = on_first_content
        self._showed_content = False
        self.budget = FrameBudget()

    def _piece(self, value: str) -> widgets.HTML:
        return widgets.HTML(value, layout=self._layout, style=self._style)

    def start(self, state: TurnState) -> None:
        self._drawing.start(state)
        self.box.children = (self._tail,)
        self.frame(state)

    def affords(self, state: TurnState) -> bool:
        return self.budget.affords(self._drawing.chars(state))

    def frame(self, state: TurnState) -> None:
        if self._on_first_content is not None and state.has_content:
            self._on_first_content()
            self._on_first_content = None
        frozen, tail = self._view.advance(state)
        if frozen is not None:
            self._pending.append(frozen.html)
            self._pending_bytes += utf8_size(frozen.html)
        if self._pending_bytes >= self.SEAL_BYTES:
            self._seal()
        self.budget.frame_sent(self._set_tail("".join(self._pending) + tail.html))
        if not self._showed_content and state.has_content:
            self._showed_content = True
            flush_iopub()  # the first token leaves now

    def _set_tail(self, value: str) -> int:
        self._tail.value = value
        cost = utf8_size(value)
        self.budget.charge(cost)
        return cost + ENVELOPE_BYTES

    def _seal(self) -> None:
        value = "".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        piece = self._piece(value)
        self.budget.charge(utf8_size(value) + self._NEW_WIDGET_BYTES)
        if self._group is None or len(self._group.children) >= self.GROUP_SIZE:
            self._group = widgets.VBox((piece,), layout=self._layout)
            self.box.children = (*self.box.children[:-1], self._group, self._tail)
            self.budget.charge(self._NEW_WIDGET_BYTES + 50 * len(self.box.children), messages=2)
        else:
            self._group.children = (*self._group.children, piece)
            self.budget.charge(50 * len(self._group.children))

    def finish(self, state: TurnState) -> None:
        # The last tokens first, cheaply, in the tail; then the one rendering of the whole turn.
        frozen, tail = self._view.advance(state)
        self._set_tail("".join(self._pending) + (frozen.html if frozen else "") + tail.html)
        self.show_final(self._drawing.bundle(state)["text/html"], state.status)

    def show_final(self, value: str, status: str) -> None:
        old = self.box.children
        self.box.children = (_html(value),)
        _close_tree(old)
        self.box.add_class(f"claude-panel-{status}")


class ChatPanel:
    """A chat with Claude in the output area, sharing the kernel's conversation history with `%%claude`.

    Usage::

        panel = ChatPanel()              # shows itself when it is the cell's value
        panel.send("Explain HTTP caching")   # same as typing it and pressing Send; returns at once
        state = panel.wait(60)           # the finished TurnState (None if still running after 60 s)
        panel.stop()                     # Stop button: ends the running answer, keeps it marked
        ChatPanel(raw=True)              # answers drawn as their stream events (the "Raw events" button)

    Settings (max_tokens, system, temperature, throttle_interval, max_retries, timeouts, offline,
    prompt_caching) come from `%config ClaudeMagic.*` when the extension is loaded, else from the same
    environment defaults; the model comes from the panel's picker, the effort and how thinking is shown
    from its Effort and Thinking pickers (their defaults: `%config ClaudeMagic.effort` / `thinking_display`,
    or the `effort=` / `thinking_display=` arguments). A value the model does not take is one line in the
    panel, naming the ones it does; nothing is sent. `ChatPanel(mcp=["notes"])` offers MCP servers' tools
    (default `%config ClaudeMagic.mcp`); one that cannot start is one line in the panel, and nothing is sent.
    `web_search=`, `web_fetch=`, `code_execution=`: Claude's server tools in every turn (as for `ask`; default:
    the settings of the same names).
    """

    def __init__(self, conversation: str | None = None, *, model: str | None = None,
                 tools: Iterable[Any] | None = None, tool_choice: str | None = None, raw: bool = False,
                 effort: str | None = None, thinking_display: str | None = None, web_search: Any = None,
                 web_fetch: Any = None, code_execution: Any = None,
                 mcp: str | Iterable[str] | None = None) -> None:
        self._fallback_settings: ClaudeMagic | None = None
        # MCP servers whose tools Claude may call from this panel (default: %config ClaudeMagic.mcp).
        self._mcp = mcp if mcp is None or isinstance(mcp, str) else list(mcp)  # asked again at every Send
        # Claude's server tools in every turn of this panel (True or options, as for ask(); None: the settings).
        self._server_tools = {"web_search": web_search, "web_fetch": web_fetch, "code_execution": code_execution}
        # Tools Claude may call from this panel (default: %config ClaudeMagic.tools). They run in a worker
        # thread of the turn's, never in the widget callback; Stop ends the turn without waiting for them.
        self._tools = None if tools is None else list(tools)
        self._tool_choice = tool_choice
        settings = self._settings()
        self.conversation: Conversation = STORE.get(conversation or settings.conversation)
        self.last_turn: TurnState | None = None
        self._lock = threading.RLock()
        self._idle = threading.Event()
        self._idle.set()
        self._control: TurnControl | None = None
        self._shown: list[str] = []  # ids of the conversation's turns the transcript shows, in order
        self._shown_rewrites = -1  # the conversation's rewrites counter those turns were drawn at

        models = known_models()
        default = model or settings.model
        if default not in models:
            models.insert(0, default)
        self.model_picker = widgets.Dropdown(options=models, value=default, description="Model",
                                             layout=widgets.Layout(width="320px"))
        # "" is the model's own effort; each model's accepted values are checked when a turn is asked.
        self.effort_picker = widgets.Dropdown(options=[("default", ""), *((e, e) for e in EFFORTS)],
                                              value=(effort if effort is not None else settings.effort) or "",
                                              description="Effort", layout=widgets.Layout(width="170px"))
        self.thinking_picker = widgets.Dropdown(options=list(DISPLAYS), description="Thinking",
                                                value=thinking_display or settings.thinking_display or DISPLAYS[0],
                                                layout=widgets.Layout(width="200px"))
        self.new_button = widgets.Button(description="New conversation", icon="plus",
                                         layout=widgets.Layout(width="auto", flex="0 0 auto"),
                                         tooltip="Start a new conversation in this panel; the current one is kept")
        self.info = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", margin="0 0 0 8px"))
        # The raw view for learning: the next answers are drawn as the stream's events (like %%claude --raw).
        self.raw_events = widgets.ToggleButton(value=raw, description="Raw events", icon="list",
                                               tooltip="Draw the next answers as the stream's events",
                                               layout=widgets.Layout(width="auto", flex="0 0 auto"))
        self.transcript = widgets.VBox(layout=widgets.Layout(**_FULL_WIDTH))
        # A column-reverse scroller keeps the view pinned to the newest text while it streams,
        # without any front-end code; its one child keeps the normal top-to-bottom order (and must
        # not shrink, or the flex layout would clip the messages instead of scrolling).
        scroller = widgets.Box([self.transcript], layout=widgets.Layout(
            display="flex", flex_flow="column-reverse", overflow="auto", max_height="480px",
            border="1px solid var(--jp-border-color2, #ddd)", padding="0 8px"))
        self.input = widgets.Textarea(placeholder="Ask Claude…  (Shift+Enter or Ctrl+Enter sends)", rows=3,
                                      continuous_update=False, layout=widgets.Layout(width="auto", flex="1 1 auto"))
        self.input.add_class(INPUT_CLASS)
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self.send_button.add_class("claude-magic-send")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.stop_button.add_class("claude-magic-stop")
        # Shown only while the last answer is one max_tokens cut off: it goes on from where it stopped.
        self.continue_button = widgets.Button(description="Continue", icon="forward",
                                              tooltip="Go on with the answer max_tokens cut off",
                                              layout=widgets.Layout(display="none"))
        self.continue_button.add_class("claude-magic-continue")
        header = widgets.HBox([self.model_picker, self.effort_picker, self.thinking_picker, self.new_button,
                               self.raw_events, self.info],
                              # Wraps onto a second line where the panel is narrower than its pickers.
                              layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        buttons = widgets.VBox([self.send_button, self.stop_button, self.continue_button])
        self.widget = widgets.VBox([_html(PANEL_CSS), header, scroller,
                                    widgets.HBox([self.input, buttons], layout=widgets.Layout(width="100%"))])
        self.widget.add_class(PANEL_CLASS)

        self.send_button.on_click(lambda _button: self.send())
        self.stop_button.on_click(lambda _button: self.stop())
        self.new_button.on_click(lambda _button: self.new_conversation())
        self.continue_button.on_click(lambda _button: self.continue_answer())
        self.input.observe(self._on_input_value, names="value")
        self._sync_history()
        _register(self)

    # -- public API ----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a turn is running."""
        return not self._idle.is_set()

    def send(self, text: str | None = None) -> bool:
        """Send `text` (default: the input box's text), like pressing Send. Returns at once.

        False when nothing was sent: a turn is already running (the box keeps its text) or the
        prompt is empty. Never raises: failures show as an error line in the panel.
        """
        try:
            return self._send(text)
        except Exception as exc:  # noqa: BLE001 - the panel must never raise into a widget callback
            self._report(f"The panel failed to send: {exc!r}")
            return False

    def continue_answer(self) -> bool:
        """Go on with the last answer where max_tokens cut it off (the Continue button); returns at once.
        False when nothing was started: a turn is running, or the last answer was not cut off."""
        try:
            return self._send(None, continuation=True)
        except Exception as exc:  # noqa: BLE001
            self._report(f"The panel failed to continue: {exc!r}")
            return False

    def stop(self) -> None:
        """End the running answer now (thread-safe); the partial answer stays, marked "stopped"."""
        control = self._control
        if control is not None:
            control.stop()

    def wait(self, timeout: float | None = None) -> TurnState | None:
        """Block until the running turn (if any) has finished and the panel shows it; returns
        `last_turn`, or None if a turn is still running after `timeout` seconds."""
        return self.last_turn if self._idle.wait(timeout) else None

    def new_conversation(self) -> str:
        """Start over in a new named conversation (the New conversation button): stop a running turn, then
        switch this panel to a fresh conversation (`default-2`, ...). Nothing is cleared: the old one stays
        in the kernel, shared with `%%claude` and other panels, and the panel says how to go back to it
        (one click must not throw away a conversation the notebook's cells are built on). Returns the
        name the panel now uses."""
        try:
            old = self.conversation
            if self.busy:
                self.stop()
                if self.wait(_STOP_WAIT) is None and self.busy:
                    self._report("The running answer did not stop; no new conversation was started.")
                    return old.name
            if not len(old):
                self._report_note(f"Conversation {old.name!r} is empty already: ask away.")
                return old.name
            name = _unused_name(old.name)
            with self._lock:
                self.conversation = STORE.get(name)
                self._shown, self._shown_rewrites = [], -1
                turns = len(old)
                self._rebuild(note=(
                    f"New conversation {name!r}. The earlier one, {old.name!r} ({turns} turn{'s' * (turns != 1)}), "
                    f"is kept: ChatPanel(conversation={old.name!r}) shows it again, %%claude -c {old.name} "
                    f"goes on with it (and %%claude cells without -c still use {self._settings().conversation!r})."))
                self._update_info()
            return name
        except Exception as exc:  # noqa: BLE001
            self._report(f"The panel failed to start a new conversation: {exc!r}")
            return self.conversation.name

    def refresh(self) -> None:
        """Show turns committed to this conversation elsewhere (done after every cell automatically)."""
        self._sync_history()

    def close(self) -> None:
        """Stop any running turn and remove the panel's widgets."""
        self.stop()
        _unregister(self)
        _close_tree([self.widget])

    # -- display ---------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"ChatPanel(conversation={self.conversation.name!r})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_())
        bundle["text/plain"] = repr(self)
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        # The Shift+Enter shortcut; frontends that run no JavaScript just keep the Send button.
        display({"application/javascript": PANEL_KEYS_JS, "text/plain": ""}, raw=True)

    # -- sending ---------------------------------------------------------------------------------------

    def _settings(self) -> ClaudeMagic:
        """The extension's settings (so %config applies), else one instance of the env-var defaults
        kept by this panel, so attributes set on it stick."""
        registered = registered_settings()
        if registered is not None:
            return registered
        self._fallback_settings = self._fallback_settings or ClaudeMagic()
        return self._fallback_settings

    def _on_input_value(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if not value.endswith(SUBMIT_MARK):
            return
        self.input.value = value.rstrip(SUBMIT_MARK)  # whatever happens next, the mark is gone
        self.send()

    def _send(self, text: str | None, *, continuation: bool = False) -> bool:
        from_box = text is None and not continuation
        prompt = "" if continuation else (self.input.value if from_box else text or "").rstrip(SUBMIT_MARK)
        if not continuation and not prompt.strip():
            return False
        with self._lock:
            if self.busy:
                return False
            self._idle.clear()
            try:
                turn = self._begin_turn(prompt, from_box, continuation)
            except (ValueError, ClaudeError) as exc:  # e.g. nothing to continue, a setting the API would
                self._idle.set()                     # reject, an MCP server that cannot start
                self._report(str(exc))
                return False
            except BaseException:
                self._idle.set()
                raise
        threading.Thread(target=self._run, args=(turn,), name="claude-panel-turn", daemon=True).start()
        return True

    def _begin_turn(self, prompt: str, from_box: bool, continuation: bool = False) -> _Turn:
        """Snapshot history and settings, show the prompt, lock the controls (under the panel lock)."""
        self._sync_history_locked()
        if continuation:
            exchange = prepare_continuation(self._settings(), conversation=self.conversation.name, source="panel",
                                            redraw=True)
        else:
            exchange = prepare_turn(prompt, self._settings(), model=self.model_picker.value,
                                    effort=self.effort_picker.value, thinking_display=self.thinking_picker.value,
                                    conversation=self.conversation.name, tools=self._tools,
                                    tool_choice=self._tool_choice, namespace=_user_namespace(), source="panel",
                                    mcp=self._mcp, **self._server_tools)
        # A prompt typed in the box leaves it at once, and the box stays locked until the first token:
        # a failure before then puts the prompt back without overwriting a new draft (the box's text
        # reaches the kernel only on blur or send, so the kernel cannot tell that a draft exists).
        view = _TurnView(on_first_content=self._unlock_input if from_box else None, events=self.raw_events.value)
        turn = _Turn(prompt, from_box, exchange, exchange.state, TurnControl(), view, shown_before=list(self._shown))
        children = self.transcript.children
        if continuation:
            # The cut-off answer is drawn again, growing, by the continuation's own view.
            old, children = children[-1:], children[:-1]
            self.transcript.children = (*children, view.box)
            _close_tree(old)
        else:
            self.transcript.children = (*children, _html(user_html(prompt)), view.box)
        self.continue_button.layout.display = "none"
        self._control = turn.control
        self.last_turn = turn.state
        if from_box:
            self.input.value = ""
            self.input.disabled = True
        self.send_button.disabled = True
        self.stop_button.disabled = False
        return turn

    def _run(self, turn: _Turn) -> None:
        """The turn's thread: stream, commit, restore the controls. Writes widget traits only."""
        state = turn.state
        committed = False
        try:
            run_exchange(turn.exchange, turn.view, control=turn.control)
            committed = turn.exchange.committed
            if state.error is not None and state.error.kind == "setup":
                # No client (e.g. no API key): nothing streamed; the line says the fix.
                turn.view.show_final(setup_error_html(state.error.message), state.status)
        except BaseException as exc:  # noqa: BLE001 - a dying thread would leave the panel stuck busy
            state.status = "error"
            state.error = ErrorInfo("internal", f"The panel failed during the turn: {exc!r}")
            state.finished_at = state.finished_at or time.monotonic()
            with contextlib.suppress(Exception):
                turn.view.show_final(setup_error_html(state.error.message), state.status)
        finally:
            self._end_turn(turn, committed)

    def _unlock_input(self) -> None:
        self.input.disabled = False

    def _end_turn(self, turn: _Turn, committed: bool) -> None:
        try:
            with self._lock:
                if committed:
                    ids = self.conversation.turn_ids
                    continued = turn.exchange.continues is not None
                    if (ids == turn.shown_before if continued else ids[:-1] == turn.shown_before):
                        self._shown, self._shown_rewrites = ids, self.conversation.rewrites
                    else:  # someone else changed the history meanwhile: redraw it from the store
                        self._rebuild()
                    self._update_info()
                if turn.from_box and self.input.disabled:
                    # No token arrived, so the box is still locked and empty: give the prompt back.
                    if not committed and not self.input.value:
                        self.input.value = turn.prompt
                    self._unlock_input()
                self._control = None
                self.send_button.disabled = False
                self.stop_button.disabled = True
            if committed:
                _sync_panels(self.conversation, exclude=self)
        finally:
            self._idle.set()  # last: wait() returning means every panel shows the turn

    def _report_note(self, message: str) -> None:
        """A muted line in the transcript (not an error)."""
        with contextlib.suppress(Exception), self._lock:
            self.transcript.children = (*self.transcript.children, _html(note_html(message)))

    def _report(self, message: str) -> None:
        """An error line in the transcript, for failures outside a turn."""
        with contextlib.suppress(Exception), self._lock:
            self.transcript.children = (*self.transcript.children, _html(setup_error_html(message)))

    # -- history ---------------------------------------------------------------------------------------

    def _sync_history(self) -> None:
        with self._lock:
            if not self.busy:  # a running turn syncs when it ends
                self._sync_history_locked()

    def _sync_history_locked(self) -> None:
        ids = self.conversation.turn_ids
        appended_only = self.conversation.rewrites == self._shown_rewrites and ids[: len(self._shown)] == self._shown
        if not appended_only:  # a turn was replaced (a re-run cell), dropped (a deleted cell), cleared or loaded
            self._rebuild(note="The conversation was cleared." if self._shown and not ids else None)
        elif len(ids) > len(self._shown):
            new = self.conversation.turns[len(self._shown):]  # one snapshot: what is drawn is what is recorded
            messages = [message for turn in new for message in turn.messages]
            self.transcript.children = (*self.transcript.children, *self._message_widgets(messages))
            self._shown = [*self._shown, *(turn.id for turn in new)]
        self._update_info()

    def _rebuild(self, note: str | None = None) -> None:
        turns = self.conversation.turns
        rewrites = self.conversation.rewrites
        old = self.transcript.children
        children = [_html(note_html(note))] if note else []
        messages = [message for turn in turns for message in turn.messages]
        self.transcript.children = (*children, *self._message_widgets(messages))
        _close_tree(old)
        self._shown, self._shown_rewrites = [turn.id for turn in turns], rewrites

    @staticmethod
    def _message_widgets(messages: list[dict[str, Any]]) -> list[widgets.Widget]:
        items: list[widgets.Widget] = []
        for message in messages:
            if message["role"] == "user" and _only_tool_results(message["content"]):
                continue  # the calls and their answer are drawn with the assistant's messages
            if message["role"] == "user":
                items.append(_html(user_html(message["content"])))
            else:
                items.append(_html(assistant_history_html(message["content"]), _ANSWER_CLASS))
        return items

    def _update_info(self) -> None:
        self.info.value = info_html(self.conversation.name, len(self.conversation))
        last = self.conversation.last_turn()
        cut_off = last is not None and last.stop_reason in CONTINUABLE
        self.continue_button.layout.display = None if cut_off else "none"


def _unused_name(name: str) -> str:
    """`name-2`, `name-3`, ... (from the name without its number): the first this kernel has no turns in."""
    base = re.sub(r"-\d+$", "", name) or name
    number = 2
    while len(STORE.get(f"{base}-{number}")):
        number += 1
    return f"{base}-{number}"


def _only_tool_results(content: Any) -> bool:
    return isinstance(content, list) and bool(content) and all(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content)


def _user_namespace() -> dict[str, Any]:
    """The notebook's namespace, where tool names given as strings are looked up."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return {}
    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


# -- live panels: kept in step with each other and with the magic --------------------------------------

_panels: weakref.WeakSet[ChatPanel] = weakref.WeakSet()
_hooked_shells: weakref.WeakSet[Any] = weakref.WeakSet()
_registry_lock = threading.Lock()


def _register(panel: ChatPanel) -> None:
    with _registry_lock:
        _panels.add(panel)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover
        return
    if shell is None:
        return
    with _registry_lock:
        if shell in _hooked_shells:
            return
        _hooked_shells.add(shell)
    # After every cell: %%claude may have committed a turn, or %claude reset cleared one.
    shell.events.register("post_run_cell", _sync_all_panels)


def _unregister(panel: ChatPanel) -> None:
    with _registry_lock:
        _panels.discard(panel)


def _sync_panels(conversation: Conversation | None, exclude: ChatPanel | None = None) -> None:
    with _registry_lock:
        panels = list(_panels)
    for panel in panels:
        if panel is not exclude and (conversation is None or panel.conversation is conversation):
            with contextlib.suppress(Exception):  # a broken panel must not break the others
                panel._sync_history()


def _sync_all_panels(*_args: Any) -> None:
    _sync_panels(None)
