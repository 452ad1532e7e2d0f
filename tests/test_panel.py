"""The chat panel without a browser: in this process (ipywidgets work without a frontend) and in a real
kernel through jupyter_client, both talking to the emulator through the real SDK."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets
import pytest
from harness.kernel import KernelSession
from support import largest_block, text_blocks

from claude_magic import ChatPanel
from claude_magic.core.history import STORE
from claude_magic.emulator import Emulator
from claude_magic.render.panel_html import SUBMIT_MARK
from claude_magic.surfaces.sinks import LiveCellSink

ANSWER = (
    "## Caching\n\n"
    "HTTP caching keeps copies of responses close to the client.\n\n"
    "- **Freshness** with `Cache-Control: max-age`\n"
    "- **Validation** with `ETag` and `304 Not Modified`\n\n"
    "That is the gist of it, in a few more words so that the answer takes a while to stream."
)
SCRIPT = {
    "turns": [
        {"match": "Explain HTTP caching", "content": [{"type": "text", "text": ANSWER}],
         "usage": {"input_tokens": 321, "output_tokens": 45}},
        {"match": "long answer", "generate": {"tokens": 3000, "seed": 7}},
        {"match": "medium answer", "generate": {"tokens": 300, "seed": 2}},
        {"match": "break with 400", "fault": {"kind": "http", "status": 400, "message": "messages: bad input"}},
        {"match": "overloaded", "fault": {"kind": "http", "status": 529}},
        {"match": "stall", "fault": {"kind": "stall", "after_tokens": 0, "seconds": 3}},
        {"match": "inject", "content": "Hi <img src=x onerror=alert(1)> <script>alert(2)</script> **bold**"},
    ]
}
FOOTER = re.compile(r"321 in / 45 out · stop_reason: end_turn · first token [\d.]+ s")


@pytest.fixture(autouse=True)
def fresh_history() -> Iterator[None]:
    yield
    for name in STORE.names():
        STORE.get(name).reset()


@pytest.fixture
def emu(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=300, chunk_tokens=1)
    return emulator


@pytest.fixture
def panels() -> Iterator[list[ChatPanel]]:
    """Panels made by a test are stopped and closed afterwards, so no thread outlives its test."""
    made: list[ChatPanel] = []
    yield made
    for panel in made:
        panel.close()
        panel.wait(5)


@pytest.fixture
def make_panel(panels: list[ChatPanel]) -> Callable[..., ChatPanel]:
    def make(**kwargs: Any) -> ChatPanel:
        panel = ChatPanel(**kwargs)
        panels.append(panel)
        return panel

    return make


def widget_html(widget: widgets.Widget) -> str:
    """The HTML a widget tree shows: its HTML widgets' values in order (answers nest pieces in groups)."""
    if isinstance(widget, widgets.HTML):
        return widget.value
    return "".join(widget_html(child) for child in getattr(widget, "children", ()))


def answer_html(panel: ChatPanel, index: int = -1) -> str:
    """The HTML an answer shows (all its pieces), by position among the transcript's answers."""
    answers = [w for w in panel.transcript.children if "claude-panel-answer" in w._dom_classes]
    return widget_html(answers[index])


def answer_classes(panel: ChatPanel) -> list[str]:
    answers = [w for w in panel.transcript.children if "claude-panel-answer" in w._dom_classes]
    return list(answers[-1]._dom_classes)


def transcript_html(panel: ChatPanel) -> str:
    return widget_html(panel.transcript)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def roles(request_messages: list[Any]) -> list[str]:
    return [m["role"] for m in request_messages]


# -- in this process -------------------------------------------------------------------------------------


def test_answer_streams_incrementally_then_shows_footer(
    emu: Emulator, make_panel: Callable[..., ChatPanel], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.set_pace(tokens_per_second=60)
    sent: list[tuple[str, dict[str, Any]]] = []
    original = widgets.Widget._send

    def record(self: widgets.Widget, msg: dict[str, Any], buffers: Any = None) -> None:
        sent.append((self.model_id, msg))
        original(self, msg, buffers)

    monkeypatch.setattr(widgets.Widget, "_send", record)
    panel = make_panel()
    started = time.monotonic()
    assert panel.send("Explain HTTP caching in three bullet points.") is True
    assert time.monotonic() - started < 0.2, "send() must return at once"
    assert panel.busy and panel.send_button.disabled and not panel.stop_button.disabled
    state = panel.wait(30)
    assert state is not None and state.status == "complete"
    assert state.text == ANSWER
    final = answer_html(panel)
    assert "<h2>Caching</h2>" in final and "claude-magic-footer" in final
    assert FOOTER.search(final)
    assert not panel.busy and not panel.send_button.disabled and panel.stop_button.disabled

    # Frames: one widget (the tail) got many growing values; finished blocks were not re-sent per frame.
    values: dict[str, list[str]] = {}
    for model_id, msg in sent:
        value = msg.get("state", {}).get("value")
        if msg.get("method") == "update" and isinstance(value, str):
            values.setdefault(model_id, []).append(value)
    tail_values = max(values.values(), key=len)
    assert len(tail_values) >= 5
    assert any("Waiting for Claude" in value for value in tail_values[:2])


def test_frames_carry_the_unfinished_block_not_the_answer(
    emu: Emulator, make_panel: Callable[..., ChatPanel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every value sent while streaming stays under a bound that does not grow with the answer;
    re-sending the answer so far would pass it within the first quarter of this one."""
    emu.set_pace(tokens_per_second=1000)
    sizes: list[int] = []
    original = widgets.Widget._send

    def record(self: widgets.Widget, msg: dict[str, Any], buffers: Any = None) -> None:
        value = msg.get("state", {}).get("value")
        if isinstance(value, str):
            sizes.append(len(value))
        original(self, msg, buffers)

    panel = make_panel()
    monkeypatch.setattr(widgets.Widget, "_send", record)
    assert panel.send("a long answer please")
    state = panel.wait(30)
    assert state is not None and state.status == "complete"
    monkeypatch.undo()
    final = answer_html(panel)
    # Pieces are sent once, at creation (comm_open, not recorded here). A frame holds finished blocks not yet
    # sealed (< SEAL_BYTES) and the block being written, measured rather than assumed (highlighted code
    # differs between Pygments releases); the slack covers the cursor and a half-written block's markup.
    bound = LiveCellSink.SEAL_BYTES + largest_block(final) + 200
    assert len(sizes) >= 10 and len(final) > 4 * bound
    assert max(sizes) <= bound


def test_history_is_shared_with_the_magic_both_ways(
    emu: Emulator, shell: Any, make_panel: Callable[..., ChatPanel]
) -> None:
    shell.run_cell("%%claude\nExplain HTTP caching")
    panel = make_panel()
    # The magic's exchange is already on screen.
    assert "Explain HTTP caching" in transcript_html(panel)
    assert "<h2>Caching</h2>" in transcript_html(panel)
    assert "1 turn in history" in panel.info.value

    panel.send("a medium answer please")
    assert panel.wait(30).status == "complete"
    request = emu.requests[-1].messages
    assert roles(request) == ["user", "assistant", "user"]
    assert text_of(request[0]) == "Explain HTTP caching"

    shell.run_cell("%%claude\nExplain HTTP caching once more")
    request = emu.requests[-1].messages
    assert roles(request) == ["user", "assistant", "user", "assistant", "user"]
    assert "medium answer" in json.dumps(request[2])
    # The panel picked up the magic's turn after the cell ran.
    assert "3 turns in history" in panel.info.value
    assert "Explain HTTP caching once more" in transcript_html(panel)


def test_named_conversations_are_separate(emu: Emulator, make_panel: Callable[..., ChatPanel]) -> None:
    notes = make_panel(conversation="notes")
    other = make_panel()
    notes.send("Explain HTTP caching")
    assert notes.wait(30).status == "complete"
    assert len(STORE.get("notes")) == 1 and len(STORE.get()) == 0
    assert "0 turns" in other.info.value and "Caching" not in transcript_html(other)
    other.send("a medium answer please")
    assert other.wait(30).status == "complete"
    assert roles(emu.requests[-1].messages) == ["user"]


def test_second_panel_shows_history_and_follows_commits(
    emu: Emulator, make_panel: Callable[..., ChatPanel]
) -> None:
    first = make_panel()
    first.send("Explain HTTP caching")
    first.wait(30)
    second = make_panel()
    assert "<h2>Caching</h2>" in transcript_html(second)
    first.send("a medium answer please")
    first.wait(30)
    assert "a medium answer please" in transcript_html(second)
    assert "2 turns" in second.info.value
    # Either panel continues the same conversation.
    second.send("Explain HTTP caching again")
    second.wait(30)
    assert roles(emu.requests[-1].messages) == ["user", "assistant"] * 2 + ["user"]
    # New conversation starts another one in that panel; nothing is cleared, and the note says how to go back.
    assert first.new_conversation() == "default-2"
    assert len(STORE.get()) == 3 and first.conversation.name == "default-2" and len(first.conversation) == 0
    assert "3 turns" in second.info.value and "medium answer" in transcript_html(second)
    note = transcript_html(first)
    assert "medium answer" not in note and "default-2" in first.info.value
    assert "ChatPanel(conversation=&#x27;default&#x27;)" in note and "%%claude -c default" in note
    first.send("a medium answer please")
    first.wait(30)
    assert roles(emu.requests[-1].messages) == ["user"]  # the new conversation starts empty
    assert len(STORE.get("default-2")) == 1 and len(STORE.get()) == 3
    # An empty conversation stays: a second click starts no third one.
    third = make_panel(conversation="empty")
    assert third.new_conversation() == "empty" and "empty already" in transcript_html(third)


def test_stop_ends_stream_fast_and_keeps_history_valid(
    emu: Emulator, make_panel: Callable[..., ChatPanel]
) -> None:
    emu.set_pace(tokens_per_second=50)
    panel = make_panel()
    panel.input.value = "a long answer please"
    panel.send()
    wait_until(lambda: panel.last_turn is not None and panel.last_turn.tokens_so_far >= 10, timeout=10)
    assert not panel.input.disabled  # unlocked at the first token: the next question can be typed
    stop_at = time.monotonic()
    panel.stop()
    state = panel.wait(5)
    latency = time.monotonic() - stop_at
    print(f"in-process stop latency: {latency * 1000:.0f} ms")
    # The answer has 3,000 tokens at 50/s: stopping within 2 s means the stream was cut, with margin for
    # a busy machine (the latency itself is a benchmark's business, not a test's).
    assert state is not None and latency < 2
    assert state.status == "stopped" and state.has_content
    html = answer_html(panel)
    assert "Stopped after" in html and "partial answer kept" in html
    assert "claude-panel-stopped" in answer_classes(panel)
    assert len(STORE.get()) == 0  # not committed
    assert panel.input.value == "" and not panel.input.disabled  # the prompt stays in the transcript
    wait_until(lambda: emu.active_streams == 0, timeout=3)

    panel.send("Explain HTTP caching")
    assert panel.wait(30).status == "complete"
    assert roles(emu.requests[-1].messages) == ["user"]  # no dangling user message from the stopped turn
    assert len(STORE.get()) == 1


def test_stop_while_waiting_for_a_stalled_server_gives_the_prompt_back(
    emu: Emulator, make_panel: Callable[..., ChatPanel]
) -> None:
    panel = make_panel()
    panel.input.value = "stall before the first token"
    panel.send()
    assert panel.input.value == "" and panel.input.disabled
    time.sleep(0.3)
    assert panel.last_turn is not None and not panel.last_turn.has_content
    stop_at = time.monotonic()
    panel.stop()
    state = panel.wait(2)
    assert state is not None and time.monotonic() - stop_at < 0.5
    assert state.status == "stopped" and "before the first token" in answer_html(panel)
    assert panel.input.value == "stall before the first token" and not panel.input.disabled


def test_send_while_busy_is_refused_and_nothing_is_lost(
    emu: Emulator, make_panel: Callable[..., ChatPanel]
) -> None:
    emu.set_pace(tokens_per_second=100)
    panel = make_panel()
    panel.input.value = "a long answer please"
    panel.send()
    assert panel.input.value == ""  # accepted: the box is cleared
    assert panel.send("a medium answer please") is False
    panel.input.value = "my next question"
    panel.send_button.click()  # a click that slipped through before the button was disabled
    panel.input.set_state({"value": "my next question" + SUBMIT_MARK})  # the keyboard shortcut
    assert panel.input.value == "my next question"
    panel.stop()
    panel.wait(5)
    assert len(emu.requests) == 1
    assert panel.input.value == "my next question"
    # Idle again: the shortcut sends the box's exact text and clears it.
    panel.input.set_state({"value": "Explain HTTP caching" + SUBMIT_MARK})
    assert panel.wait(30).status == "complete"
    assert len(emu.requests) == 2 and text_of(emu.requests[-1].messages[-1]) == "Explain HTTP caching"
    assert panel.input.value == ""


def test_failed_turn_shows_error_line_and_keeps_input(
    emu: Emulator, make_panel: Callable[..., ChatPanel]
) -> None:
    panel = make_panel()
    panel.input.value = "please break with 400"
    panel.send()
    state = panel.wait(30)
    assert state is not None and state.status == "error"
    html = answer_html(panel)
    assert "⚠" in html and "bad input" in html
    assert "claude-panel-error" in answer_classes(panel)
    assert panel.input.value == "please break with 400"
    assert len(STORE.get()) == 0
    panel.input.value = ""
    panel.send("Explain HTTP caching")
    assert panel.wait(30).status == "complete"
    assert roles(emu.requests[-1].messages) == ["user"]


def test_overloaded_without_retries_uses_config(
    emu: Emulator, shell: Any, make_panel: Callable[..., ChatPanel]
) -> None:
    shell.run_line_magic("config", "ClaudeMagic.max_retries = 0")
    panel = make_panel()
    panel.input.value = "overloaded now"
    panel.send()
    assert panel.input.disabled  # locked until the first token, so giving the prompt back is safe
    state = panel.wait(30)
    assert state is not None and state.status == "error" and len(emu.requests) == 1
    assert "529" in answer_html(panel) or "verloaded" in answer_html(panel)
    assert panel.input.value == "overloaded now"


def test_missing_api_key_is_an_inline_error(
    emu: Emulator, make_panel: Callable[..., ChatPanel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    panel = make_panel()
    panel.input.value = "Explain HTTP caching"
    assert panel.send() is True
    state = panel.wait(10)
    assert state is not None and state.status == "error"
    assert "No Anthropic API key" in answer_html(panel)
    assert panel.input.value == "Explain HTTP caching" and not panel.input.disabled
    assert len(emu.requests) == 0 and not panel.busy


def test_model_output_and_user_text_are_never_raw_html(
    emu: Emulator, make_panel: Callable[..., ChatPanel]
) -> None:
    panel = make_panel(model=emu.models[0])
    assert panel.model_picker.value == emu.models[0]
    panel.send("inject <b>this</b>")
    assert panel.wait(30).status == "complete"
    assert emu.requests[-1].body["model"] == emu.models[0]
    html = transcript_html(panel)
    assert "<img" not in html and "<script" not in html and "<b>this</b>" not in html
    assert "&lt;b&gt;this&lt;/b&gt;" in html and "<strong>bold</strong>" in html
    # The same holds when the turn is drawn from history by a new panel.
    again = transcript_html(make_panel())
    assert "<img" not in again and "<script" not in again and "<strong>bold</strong>" in again


def test_panel_subcommand_binds_the_conversation(emu: Emulator, shell: Any, panels: list[ChatPanel]) -> None:
    panel = shell.run_line_magic("claude", "-c notes panel")
    panels.append(panel)
    assert isinstance(panel, ChatPanel) and panel.conversation is STORE.get("notes")
    assert repr(panel) == "ChatPanel(conversation='notes')"
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id


def test_no_threads_or_streams_left_behind(emu: Emulator, make_panel: Callable[..., ChatPanel]) -> None:
    before = {t.ident for t in threading.enumerate()}
    panel = make_panel()
    for prompt in ("Explain HTTP caching", "a medium answer please"):
        panel.send(prompt)
        panel.wait(30)
    emu.set_pace(tokens_per_second=50)
    panel.send("a long answer please")
    wait_until(lambda: panel.last_turn is not None and panel.last_turn.has_content)
    panel.stop()
    panel.wait(5)
    wait_until(lambda: emu.active_streams == 0, timeout=3)
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "claude-panel-turn"])
    new = [t for t in threading.enumerate() if t.ident not in before]
    assert all(t.daemon for t in new), [t.name for t in new]


# -- in a real kernel ------------------------------------------------------------------------------------


def kernel_json(kernel: KernelSession, code: str, timeout: float = 60) -> Any:
    """Run `code` whose last line prints one JSON value; return it."""
    out = kernel.execute(code, timeout=timeout).stdout().strip().splitlines()
    return json.loads(out[-1])


PANEL_STATE = (
    "import json\n"
    "def panel_state(p):\n"
    "    answers = [w for w in p.transcript.children if 'claude-panel-answer' in w._dom_classes]\n"
    "    last = answers[-1] if answers else None\n"
    "    def shown(w):\n"
    "        return w.value if hasattr(w, 'value') else ''.join(shown(c) for c in getattr(w, 'children', ()))\n"
    "    html = shown(last) if last else ''\n"
    "    t = p.last_turn\n"
    "    return {'status': t and t.status, 'text': t and t.text, 'html': html, 'busy': p.busy,\n"
    "            'input': p.input.value, 'send_disabled': p.send_button.disabled, 'info': p.info.value,\n"
    "            'classes': list(last._dom_classes) if last else []}\n"
)


@pytest.mark.kernel
def test_kernel_panel_streams_and_shares_history_with_magic(
    magic_kernel: KernelSession, emulator: Emulator
) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=100, chunk_tokens=1)
    magic_kernel.execute(PANEL_STATE)
    magic_kernel.execute("%%claude\nExplain HTTP caching")
    msg_count = len(magic_kernel.all_messages())
    state = kernel_json(
        magic_kernel,
        "from claude_magic import ChatPanel\n"
        "p = ChatPanel()\n"
        "assert p.send('a medium answer please')\n"
        "p.wait(30)\n"
        "print(json.dumps(panel_state(p)))",
    )
    assert state["status"] == "complete" and "claude-magic-footer" in state["html"]
    assert "2 turns in history" in state["info"] and not state["busy"] and not state["send_disabled"]
    assert roles(emulator.requests[-1].messages) == ["user", "assistant", "user"]
    # The frames reached IOPub as widget comm messages from the turn's thread.
    updates = [m for m in magic_kernel.all_messages()[msg_count:]
               if m["header"]["msg_type"] == "comm_msg" and "value" in m["content"]["data"].get("state", {})]
    assert len(updates) >= 5

    magic_kernel.execute("%%claude\nExplain HTTP caching once more")
    assert roles(emulator.requests[-1].messages) == ["user", "assistant"] * 2 + ["user"]
    assert "a medium answer please" in json.dumps(emulator.requests[-1].messages[2])
    state = kernel_json(magic_kernel, "print(json.dumps(panel_state(p)))")
    assert "3 turns in history" in state["info"]  # refreshed after the magic's cell


@pytest.mark.kernel
def test_kernel_stays_usable_and_stop_is_fast(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=50, chunk_tokens=1)
    magic_kernel.execute(PANEL_STATE)
    magic_kernel.execute(
        "import time, threading\n"
        "from claude_magic import ChatPanel\n"
        "p = ChatPanel(conversation='k')\n"
        "p.send('a long answer please')\n"
        "deadline = time.monotonic() + 10\n"
        "while p.last_turn.tokens_so_far < 10 and time.monotonic() < deadline: time.sleep(0.01)"
    )
    other = magic_kernel.execute("print('other cell ran', p.busy)")
    print(f"kernel: other cell took {other.duration() * 1000:.0f} ms while the panel streamed")
    assert other.stdout() == "other cell ran True\n" and other.duration() < 2
    stopped = kernel_json(
        magic_kernel,
        "t0 = time.monotonic(); p.stop(); st = p.wait(5); latency = time.monotonic() - t0\n"
        "print(json.dumps({'latency': latency, **panel_state(p)}))",
    )
    print(f"kernel: stop latency {stopped['latency'] * 1000:.0f} ms")
    assert stopped["latency"] < 2 and stopped["status"] == "stopped"  # of a 60 s answer
    assert "Stopped after" in stopped["html"] and "claude-panel-stopped" in stopped["classes"]
    assert all(word in stopped["html"] for word in re.findall(r"[A-Za-z]{4,}", stopped["text"])[:5])  # partial kept
    wait_until(lambda: emulator.active_streams == 0, timeout=3)
    after = kernel_json(
        magic_kernel,
        "p.send('Explain HTTP caching'); p.wait(30)\n"
        "print(json.dumps({'threads': [t.name for t in threading.enumerate() if t.name == 'claude-panel-turn'],"
        " **panel_state(p)}))",
    )
    assert after["status"] == "complete" and after["threads"] == []
    assert roles(emulator.requests[-1].messages) == ["user"]


def test_raw_events_toggle_draws_the_next_answer_as_its_stream_events(
    emu: Emulator, make_panel: Callable[..., ChatPanel]
) -> None:
    panel = make_panel()
    assert panel.raw_events.value is False and panel.raw_events in panel.widget.children[1].children
    panel.raw_events.value = True
    assert panel.send("a medium answer please")
    state = panel.wait(30)
    assert state is not None and state.status == "complete"
    html = answer_html(panel)
    lines = re.findall(r"^.*$", html, flags=re.M)
    # The event lines in the order the API sends them, then the same footer as an answer's.
    order = [next(i for i, line in enumerate(lines) if kind in line)
             for kind in ("message_start", "content_block_start", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop")]
    assert order == sorted(order)
    assert "claude-magic-events" in html and "stop_reason: end_turn" in html
    # History is the same as without the raw view: the answer's text; toggled off, answers are text again.
    stored = STORE.get().turns[-1].messages[-1]["content"]
    assert "".join(block["text"] for block in text_blocks(stored)) == state.text
    panel.raw_events.value = False
    assert panel.send("a medium answer please")
    assert panel.wait(30) is not None
    assert "claude-magic-events" not in answer_html(panel) and "message_start" not in answer_html(panel)
