"""The terminal sink: plain text where stdout is not a terminal, rendered Markdown with rich where it is,
and a real `ipython` in a pseudo-terminal (tmux) to show what a user sees."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from harness.lab import artifacts_dir
from rich.console import Console
from support import FAKE_API_KEY

from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.core.stream import run_turn
from claude_magic.core.throttle import Throttle
from claude_magic.core.turn import Block, ErrorInfo, TurnState
from claude_magic.emulator import Emulator
from claude_magic.render.footer import footer_text
from claude_magic.surfaces import terminal as _terminal
from claude_magic.surfaces.sinks import TerminalSink

ANSWER = (
    "## Sorting in Python\n\n"
    "Use **sorted** for a new list and `list.sort` in place.\n\n"
    "- first point\n"
    "- second point\n\n"
    "```python\n"
    "def top(items):\n"
    "    return sorted(items)[:3]\n"
    "```\n\n"
    "That is all."
)
DIM = "\x1b[2m"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


@pytest.fixture(autouse=True)
def ordinary_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """No colour or terminal overrides from the environment the tests run in."""
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLORTERM", "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


class TtyStringIO(io.StringIO):
    """A stream that says it is a terminal, as sys.stdout does in terminal IPython."""

    def isatty(self) -> bool:
        return True


def terminal_console(height: int = 40) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, force_interactive=True, force_jupyter=False,
                   color_system="standard", width=80, height=height)


def new_state(**fields: Any) -> TurnState:
    return TurnState(model="claude-test", prompt="p", started_at=0.0, **fields)


def stream(sink: TerminalSink, text: str, step: int, state: TurnState | None = None,
           after_frame: Callable[[], None] | None = None) -> TurnState:
    """Feed `text` in chunks of `step` characters, a frame after each, then finish the turn."""
    state = state or new_state()
    sink.start(state)
    state.blocks.append(Block("text"))
    state.status, state.first_token_at = "streaming", 0.5
    for start in range(0, len(text), step):
        state.blocks[-1].parts.append(text[start : start + step])
        state.revision += 1
        sink.frame(state)
        if after_frame:
            after_frame()
    state.blocks[-1].complete = True
    state.status = state.status if state.error else "complete"
    state.stop_reason = state.stop_reason or ("end_turn" if not state.error else None)
    state.finished_at = 2.0
    sink.finish(state)
    return state


def screen(output: str) -> str:
    """What a terminal shows after `output`: just enough VT100 for rich's Live (CR, LF, cursor up, erase line)."""
    lines, row, col = [""], 0, 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", output):
        if token == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b[") and token.endswith("A"):
            row = max(row - int(token[2:-1] or 1), 0)
        elif token == "\x1b[2K":
            lines[row] = ""
        elif token and not token.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token) :]
            col += len(token)
    return "\n".join(line.rstrip() for line in lines).strip("\n")


# -- plain text: pipes, files, StringIO -------------------------------------------------------------------


def test_a_stream_that_is_not_a_terminal_gets_the_text_as_it_arrives_then_the_footer() -> None:
    out = io.StringIO()
    seen: list[str] = []
    state = stream(TerminalSink(stream=out), ANSWER, step=7, after_frame=lambda: seen.append(out.getvalue()))
    assert out.getvalue() == f"{ANSWER}\n\n{footer_text(state)}\n"
    assert seen[0] == ANSWER[:7] and seen[-1] == ANSWER  # appended frame by frame, nothing rendered
    assert "\x1b" not in out.getvalue()


def test_plain_text_prints_retry_notices_and_other_blocks_as_before() -> None:
    out = io.StringIO()
    sink = TerminalSink(stream=out)
    state = new_state()
    sink.start(state)
    state.notice = "Overloaded (529): retrying in 1 s (retry 1 of 2)"
    sink.frame(state)
    state.notice = None
    state.blocks = [Block("thinking", parts=["Let me think."], complete=True), Block("text", parts=["Hi."])]
    sink.frame(state)
    state.status, state.stop_reason = "complete", "end_turn"
    sink.finish(state)
    assert out.getvalue() == (f"[Overloaded (529): retrying in 1 s (retry 1 of 2)]\n"
                              f"[thinking]\nLet me think.\n[/thinking]\nHi.\n\n{footer_text(state)}\n")


def test_a_dumb_terminal_gets_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """TERM=dumb: no cursor movement, so no live area (rich's own rule)."""
    monkeypatch.setenv("TERM", "dumb")
    out = TtyStringIO()
    state = stream(TerminalSink(stream=out), ANSWER, step=11)
    assert out.getvalue() == f"{ANSWER}\n\n{footer_text(state)}\n"


# -- rich: a terminal -------------------------------------------------------------------------------------


def test_a_terminal_gets_rendered_markdown_and_a_dimmed_footer() -> None:
    console = terminal_console()
    state = stream(TerminalSink(console=console), ANSWER, step=5)
    output = console.file.getvalue()
    text = screen(output)
    for raw in ("##", "**", "```", "- first"):
        assert raw not in text
    for shown in ("Sorting in Python", "sorted", "• first point", "def top(items):", "That is all."):
        assert shown in text
    assert re.search(r"\x1b\[[0-9;]*1m\s*sorted", output)  # bold
    footer = footer_text(state)
    assert f"{DIM}{footer[:40]}" in output
    assert text.rstrip().endswith(footer.split(" · ")[-1])
    assert output.count(HIDE_CURSOR) == 1 and output.rindex(SHOW_CURSOR) > output.rindex(HIDE_CURSOR)


def test_code_is_highlighted() -> None:
    console = terminal_console()
    stream(TerminalSink(console=console), "```python\ndef top(items):\n    return 1\n```\n", step=4)
    output = console.file.getvalue()
    # Keyword and name in different colours (Pygments through rich's Syntax).
    assert re.search(r"\x1b\[[0-9;]+mdef\x1b\[0m\x1b\[[0-9;]+m \x1b\[0m\x1b\[[0-9;]+mtop", output)


def test_a_terminal_is_told_by_isatty() -> None:
    """The default Console, as magic.py builds the sink: rich mode because the stream is a tty."""
    out = TtyStringIO()
    stream(TerminalSink(stream=out), ANSWER, step=9)
    shown = screen(out.getvalue())
    assert "Sorting in Python" in shown and "##" not in shown


def test_no_color_keeps_the_rendering_without_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = TtyStringIO()
    state = stream(TerminalSink(stream=out), ANSWER, step=9, state=new_state(stop_reason="max_tokens"))
    output = out.getvalue()
    assert "##" not in screen(output) and "**" not in screen(output)
    assert "⚠ cut off" in screen(output)
    assert not re.search(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|4[0-7]|38;|48;)[0-9;]*m", output)  # no colour codes
    assert footer_text(state).splitlines()[-1][:30] in screen(output)


def test_the_warning_is_in_colour() -> None:
    console = terminal_console()
    stream(TerminalSink(console=console), "Cut", step=3, state=new_state(stop_reason="max_tokens"))
    assert "\x1b[1;33m⚠ cut off: the answer reached max_tokens" in console.file.getvalue()


def test_a_raised_error_is_not_printed_twice_and_the_terminal_is_left_sane() -> None:
    """After Ctrl-C the magic raises the error line itself (error_raised): the sink shows the partial
    answer and the footer, stops the live area and shows the cursor again."""
    console = terminal_console()
    state = new_state(error_raised=True, status="interrupted")
    state.error = ErrorInfo("interrupted", "Interrupted after 3 tokens").finalize(partial=True)
    stream(TerminalSink(console=console), "## Partial\n\nsome text", step=4, state=state)
    output = console.file.getvalue()
    assert "Interrupted" not in output
    assert "Partial" in screen(output) and "stop_reason: —" in screen(output)
    assert output.rindex(SHOW_CURSOR) > output.rindex(HIDE_CURSOR)
    assert not live_display_active(console)  # the Live is stopped, so the next Live (or print) draws normally


def live_display_active(console: Console) -> bool:
    """Whether a rich Live still holds the console (rich 14 keeps a stack of them, rich 13 one)."""
    return bool(getattr(console, "_live_stack", None) or getattr(console, "_live", None))


def test_an_error_the_magic_does_not_raise_is_the_coloured_warning() -> None:
    console = terminal_console()
    state = new_state(status="error")
    state.error = ErrorInfo("connection", "Connection to the API lost after 3 tokens").finalize(partial=True)
    stream(TerminalSink(console=console), "some text", step=4, state=state)
    assert "\x1b[1;33m⚠ Connection to the API lost after 3 tokens" in console.file.getvalue()


def test_ctrl_c_mid_stream_through_run_turn_stops_the_live_area(emulator: Emulator) -> None:
    """KeyboardInterrupt raised while a frame is drawn: run_turn catches it and calls finish."""
    emulator.set_script({"pace": {"tokens_per_second": 200}, "turns": [{"content": ANSWER}]})
    console = terminal_console()
    sink = TerminalSink(console=console)
    real_frame, frames = sink.frame, []

    def frame(state: TurnState) -> None:
        real_frame(state)
        frames.append(1)
        if len(frames) == 3:
            raise KeyboardInterrupt

    sink.frame = frame  # type: ignore[method-assign]
    client = anthropic.Anthropic(base_url=emulator.base_url, api_key=FAKE_API_KEY, max_retries=0)
    request = {"model": DEFAULT_MODEL, "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}
    state = run_turn(client, request, new_state(error_raised=True), sink, throttle=Throttle(0.0))
    output = console.file.getvalue()
    assert state.status == "interrupted"
    assert not live_display_active(console)
    assert output.rindex(SHOW_CURSOR) > output.rindex(HIDE_CURSOR)
    assert "stop_reason: —" in screen(output) and "Interrupted" not in output


def test_retry_notice_and_waiting_line_show_only_while_they_apply() -> None:
    console = terminal_console()
    sink = TerminalSink(console=console)
    state = new_state()
    sink.start(state)
    assert screen(console.file.getvalue()) == "Waiting for Claude…"
    state.notice = "Overloaded (529): retrying in 1 s (retry 1 of 2)"
    sink.frame(state)
    assert "\x1b[3;33mOverloaded (529): retrying" in console.file.getvalue()  # italic yellow
    assert screen(console.file.getvalue()) == state.notice
    state.notice = None
    stream(sink, "Hello.", step=3, state=state)
    assert screen(console.file.getvalue()).startswith("Hello.\n\nclaude-test · ")


def test_thinking_is_dimmed_and_not_read_as_markdown() -> None:
    console = terminal_console()
    sink = TerminalSink(console=console)
    state = new_state()
    sink.start(state)
    state.blocks = [Block("thinking", parts=["Is **this** bold?"], complete=True), Block("text", parts=["# Done"])]
    sink.frame(state)
    state.status, state.stop_reason = "complete", "end_turn"
    sink.finish(state)
    output = console.file.getvalue()
    assert f"{DIM}[thinking]" in output and "Is **this** bold?" in output
    assert "# Done" not in screen(output) and "Done" in screen(output)


def test_control_characters_from_the_model_do_not_reach_the_terminal() -> None:
    console = terminal_console()
    stream(TerminalSink(console=console), "Hi \x1b]52;c;cHduZWQ=\x07there \x1b[2J.", step=4)
    text = console.file.getvalue()
    assert "]52;" in text and "\x1b]52" not in text and "\x07" not in text and "\x1b[2J" not in text


def markdown_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the length of every Markdown text the terminal sink renders."""
    sizes: list[int] = []

    class CountingMarkdown(_terminal.Markdown):
        def __init__(self, markup: str, **kwargs: Any) -> None:
            sizes.append(len(markup))
            super().__init__(markup, **kwargs)

    monkeypatch.setattr(_terminal, "Markdown", CountingMarkdown)
    return sizes


def long_answer(paragraphs: int) -> str:
    return "".join(f"## Part {i}\n\nParagraph {i} says **a few** words about caching.\n\n- item {i}\n\n"
                   for i in range(paragraphs))


def test_frames_render_only_the_unfinished_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """However long the answer, each frame renders the block still being written (and prints each
    finished block once): Markdown rendered and bytes written per frame do not grow with the answer."""
    sizes = markdown_sizes(monkeypatch)
    per_frame: dict[int, tuple[int, int]] = {}
    for paragraphs in (10, 200):
        sizes.clear()
        console = terminal_console()
        text = long_answer(paragraphs)
        written: list[int] = []
        stream(TerminalSink(console=console), text, step=10,
               after_frame=lambda console=console, written=written: written.append(len(console.file.getvalue())))
        growth = [after - before for before, after in zip([0, *written[:-1]], written, strict=True)]
        per_frame[paragraphs] = (max(sizes), max(growth))
        assert sum(sizes) < 12 * len(text)  # each block once for good, plus its few live redraws
    # 20 times the text (~16 kB): the longest Markdown rendered is still about one block (~60 characters
    # and the chunk that started the next), and no frame writes much more.
    assert per_frame[10][0] < 80 and per_frame[200][0] < 80
    assert per_frame[200][1] < 1.5 * per_frame[10][1]


def test_a_block_taller_than_the_screen_shows_its_end_while_it_is_written() -> None:
    console = terminal_console(height=10)
    code = "".join(f"x{i} = {i}\n" for i in range(40))
    seen: list[str] = []
    sink = TerminalSink(console=console)
    stream(sink, f"```python\n{code}```\n", step=30,
           after_frame=lambda: seen.append(console.file.getvalue()))
    last_live = screen(seen[-1][len(seen[-2]) :])
    assert "more lines above" in last_live and "x39 = 39" in last_live
    assert all(f"x{i} = {i}" in screen(console.file.getvalue()) for i in range(40))


# -- a real ipython in a pseudo-terminal ------------------------------------------------------------------

TMUX = shutil.which("tmux")
IPYTHON = Path(sys.executable).with_name("ipython")
TERMINAL_SCRIPT = {
    "turns": [
        {"match": "Markdown demo", "times": 1, "fault": {"kind": "http", "status": 529, "retry_after": 1}},
        {"match": "Markdown demo", "pace": {"tokens_per_second": 40}, "content": ANSWER},
    ]
}


class Tmux:
    """One tmux server of our own (its own socket, no user config) running one pane."""

    def __init__(self, socket: Path) -> None:
        assert TMUX is not None
        self._base = [TMUX, "-S", str(socket), "-f", "/dev/null"]

    def run(self, *args: str) -> str:
        return subprocess.run([*self._base, *args], check=True, capture_output=True, text=True, timeout=10).stdout

    def screen(self, *, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", "-J", *(["-e"] if escapes else []), "-t", "claude")

    def wait_for(self, predicate: Callable[[str], bool], deadline: float, what: str) -> str:
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; the screen shows:\n{screen}")
            time.sleep(0.1)

    def kill(self) -> None:
        subprocess.run([*self._base, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed (apt-get install tmux; .ci/setup --browser installs it)")
    # A short directory: a Unix socket's path must stay under ~100 characters, pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="claude-magic-tmux-") as directory:
        session = Tmux(Path(directory) / "socket")
        try:
            yield session
        finally:
            session.kill()


def test_terminal_ipython_renders_markdown_in_place(tmux: Tmux, emulator: Emulator, tmp_path: Path) -> None:
    """`%%claude` in the venv's ipython on a tmux pseudo-terminal: the retry notice comes and goes,
    the answer streams in place, and the screen ends with rendered Markdown and the footer."""
    emulator.set_script(TERMINAL_SCRIPT)
    deadline = time.monotonic() + 55
    (tmp_path / "ipython").mkdir()
    command = [
        "env", "-u", "NO_COLOR", "-u", "FORCE_COLOR", "-u", "CLAUDE_MAGIC_OFFLINE", "-u", "CLAUDE_MAGIC_DISPLAY",
        f"ANTHROPIC_BASE_URL={emulator.base_url}", f"ANTHROPIC_API_KEY={FAKE_API_KEY}",
        str(IPYTHON), "--no-banner", f"--ipython-dir={tmp_path / 'ipython'}", "--HistoryManager.enabled=False",
        "--no-confirm-exit",
    ]
    tmux.run("new-session", "-d", "-s", "claude", "-x", "100", "-y", "45", " ".join(command))
    tmux.wait_for(lambda screen: "In [1]:" in screen, deadline, "the first prompt")
    tmux.run("send-keys", "-t", "claude", "%load_ext claude_magic", "Enter")
    tmux.wait_for(lambda screen: "In [2]:" in screen, deadline, "the extension to load")
    # A cell magic runs once its cell ends with a blank line: prompt, Enter, Enter, Enter.
    tmux.run("send-keys", "-t", "claude", "%%claude", "Enter", "Markdown demo please", "Enter", "Enter", "Enter")

    tmux.wait_for(lambda screen: "retrying in 1 s" in screen, deadline, "the retry notice")
    partial = tmux.wait_for(lambda screen: "Sorting in Python" in screen, deadline, "the first tokens")
    assert "stop_reason" not in partial  # streamed in, not printed at the end
    screen = tmux.wait_for(lambda screen: "In [3]:" in screen, deadline, "the answer and the next prompt")
    answer = screen[screen.index("Markdown demo please") :]

    assert "Sorting in Python" in answer and "##" not in answer
    assert "sorted" in answer and "**" not in answer
    assert "• first point" in answer and "- first point" not in answer
    assert "def top(items):" in answer and "return sorted(items)[:3]" in answer and "```" not in answer
    assert "retrying" not in answer  # the notice was transient
    footer = " ".join(answer.split())  # rich wraps the footer to the terminal's width
    assert "offline emulator, not Claude" in footer and "stop_reason: end_turn" in footer
    footer_line = next(line for line in tmux.screen(escapes=True).splitlines() if "stop_reason" in line)
    leading = re.match(r"(?:\x1b\[[0-9;]*m)*", footer_line).group()  # type: ignore[union-attr]
    assert re.search(r"\x1b\[(?:[0-9;]*;)?2(?:;[0-9;]*)?m", leading), repr(footer_line)  # dim
    assert tmux.run("display-message", "-p", "-t", "claude", "#{cursor_flag}").strip() == "1"  # cursor shown


WRAP_ANSWER = (
    "## Wrapping\n\n"
    "Internationalization, counterintuitively, makes straightforward documentation "
    "considerably longer: characteristically, implementations accommodate "
    "incomprehensibilities nobody anticipated.\n\n"
    "```python\n"
    "def top(items):\n"
    "    return sorted(items)[:3]\n"
    "```\n"
)
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_NEAR_WHITE = re.compile(r"37|97|38;5;(?:7|15|2[3-5]\d)|38;2;2[0-5]\d;2[0-5]\d;2[0-5]\d")


def painted_white_or_on_a_background(line: str) -> list[str]:
    """Visible text of a captured line (`capture-pane -e`) drawn in a near-white colour or on a background
    colour: what is white-on-nothing on a light terminal where the background is not drawn."""
    found, white, background = [], False, False
    for index, piece in enumerate(_SGR.split(line)):
        if index % 2:  # the parameters of one SGR sequence
            for code in re.findall(r"38;5;\d+|38;2;\d+;\d+;\d+|48;5;\d+|48;2;\d+;\d+;\d+|\d+", piece or "0"):
                if code in ("0", "39") or (code.startswith(("3", "9")) and not _NEAR_WHITE.fullmatch(code)):
                    white = False
                if _NEAR_WHITE.fullmatch(code):
                    white = True
                if code in ("0", "49"):
                    background = False
                elif re.fullmatch(r"4[0-7]|10[0-7]|48;.*", code):
                    background = True
        elif piece.strip() and (white or background):
            found.append(piece)
    return found


def test_terminal_ipython_history_and_replies_read_like_the_answer(tmux: Tmux, emulator: Emulator,
                                                                   tmp_path: Path) -> None:
    """A bare `%claude question` leaves no empty `Out[n]:`; a Reply and `%claude history` print rendered
    Markdown wrapped between words (not raw Markdown cut mid-word by the terminal); the history's header
    is the notebook's and its turns say `terminal`; code keeps the terminal's own colours."""
    emulator.set_script({"turns": [{"match": "wrap demo", "content": WRAP_ANSWER}]})
    deadline = time.monotonic() + 55
    (tmp_path / "ipython").mkdir()
    command = [
        "env", "-u", "NO_COLOR", "-u", "FORCE_COLOR", "-u", "CLAUDE_MAGIC_OFFLINE", "-u", "CLAUDE_MAGIC_DISPLAY",
        "-u", "COLUMNS", "-u", "LINES",  # the width is the pane's, as in a terminal of that size
        f"ANTHROPIC_BASE_URL={emulator.base_url}", f"ANTHROPIC_API_KEY={FAKE_API_KEY}", "CLAUDE_MAGIC_HISTORY_DIR=",
        str(IPYTHON), "--no-banner", f"--ipython-dir={tmp_path / 'ipython'}", "--no-confirm-exit",
        "--HistoryManager.hist_file=:memory:",
    ]
    tmux.run("new-session", "-d", "-s", "claude", "-x", "60", "-y", "200", " ".join(command))
    tmux.wait_for(lambda screen: "In [1]:" in screen, deadline, "the first prompt")
    steps = [("%load_ext claude_magic", "In [2]:"), ("%claude wrap demo please", "In [3]:"),
             ("reply = %claude wrap demo again", "In [4]:"), ("reply", "In [5]:"), ("%claude history", "In [6]:")]
    for keys, prompt in steps:
        tmux.run("send-keys", "-t", "claude", keys, "Enter")
        tmux.wait_for(lambda screen, prompt=prompt: prompt in screen, deadline, f"{keys!r} to finish")
    # Without -J: the lines as the terminal shows them, so a word the terminal wrapped shows up cut.
    screen = tmux.run("capture-pane", "-p", "-S", "-200", "-t", "claude")
    coloured = tmux.run("capture-pane", "-p", "-e", "-S", "-200", "-t", "claude")
    artifacts = artifacts_dir("test_terminal__history_and_replies", clean=True)
    (artifacts / "screen.txt").write_text(screen)
    (artifacts / "screen-with-colours.txt").write_text(coloured)

    assert "Out[2]" not in screen and "Out[3]" not in screen, screen  # bare and assigned lines: no empty Out
    reply_part = screen[screen.index("In [4]: reply") : screen.index("In [5]:")]
    history_part = screen[screen.index("In [5]: %claude history") : screen.index("In [6]:")]
    for part in (reply_part, history_part):
        assert "Wrapping" in part and "##" not in part and "```" not in part, part
        words = [line.split() for line in part.splitlines()]
        for word in ("Internationalization,", "counterintuitively,", "characteristically,", "incomprehensibilities"):
            assert any(word in line for line in words), f"{word} cut across lines:\n{part}"
    assert "Out[5]" not in screen  # %claude history prints; it has no value to show
    history_lines = [line for line in history_part.splitlines()[1:] if line.strip()]
    assert history_lines[0].startswith("Conversation 'default' · 2 turns · "), history_lines[0]
    assert "Turn 1 · terminal ·" in history_part and "Turn 2 · terminal ·" in history_part
    code_lines = [line for line in coloured.splitlines()
                  if any(code in re.sub(r"\x1b\[[0-9;]*m", "", line) for code in ("sorted(items)", "def top"))]
    assert len(code_lines) >= 6  # streamed twice, the reply, the history's two turns
    for line in code_lines:
        assert not painted_white_or_on_a_background(line), repr(line)
