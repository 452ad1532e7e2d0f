"""The terminal surface: Markdown rendered with rich on a terminal, plain text anywhere else.

On a terminal, finished Markdown blocks are printed once, permanently, and only the block still
being written is redrawn in place (`rich.live.Live`), so a frame costs O(unfinished block) whatever
the answer's length; the cut is `finished_prefix_length`, as in the cell's IncrementalView. When
stdout is not a terminal (a pipe, a file, a StringIO) the text is written as it arrives and the
footer after it, unchanged, for whatever reads that output.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console, ConsoleOptions, Group, NewLine, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from claude_magic.core.server_tools import CitationIndex, markers_text, sources_text
from claude_magic.core.turn import TurnState
from claude_magic.core.wire_events import ask_for_events
from claude_magic.render.footer import footer_parts, footer_text, warning_line
from claude_magic.render.markdown import finished_prefix_length
from claude_magic.render.view import LIVE_PREVIEW_CHARS, WAITING_TEXT, answer_bundle, block_text, nothing_arrived

WARNING_STYLE = "bold yellow"
FOOTER_STYLE = "dim"
NOTICE_STYLE = "italic yellow"
STATUS_STYLE = "dim italic"
ASIDE_STYLE = "dim"  # thinking and tool calls
# Code in the terminal's own colours: the default text colour and its ANSI palette, no background. rich's
# default (monokai) paints near-white text meant for its dark box, which is unreadable on a light terminal
# wherever the box is not drawn; the palette colours are the ones the user chose for their background.
CODE_THEME = "ansi_light"

# Model output is untrusted: on a terminal an ESC or other control character in it could move the
# cursor, retitle the window or write the clipboard (OSC 52). rich passes ESC through, so drop them.
_CONTROL_CHARS = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])


def printable(text: str) -> str:
    """`text` without control characters other than newline and tab."""
    return text.translate(_CONTROL_CHARS)


class TerminalSink:
    """Plain IPython in a terminal (`%%claude` outside a kernel, or `--display terminal`).

    >>> run_turn(client, request, state, TerminalSink(), throttle=Throttle(0.1))

    Where `stream` (default: sys.stdout) is a terminal, as rich detects it (`isatty()`, FORCE_COLOR,
    TTY_COMPATIBLE), the answer is rendered Markdown and the footer is dimmed; NO_COLOR keeps the
    rendering without colours, and TERM=dumb (no cursor movement) gets plain text like a pipe.
    `console` supplies the rich Console to draw on instead (tests).
    """

    def __init__(self, stream: TextIO | None = None, *, console: Console | None = None) -> None:
        if console is None:
            # Never Jupyter's HTML output: `--display terminal` in a kernel means text.
            console = Console(file=stream, force_jupyter=False, highlight=False, markup=False, emoji=False)
        self._renderer = _RichRenderer(console) if console.is_interactive else _PlainRenderer(stream)

    def start(self, state: TurnState) -> None:
        self._renderer.start(state)

    def frame(self, state: TurnState) -> None:
        self._renderer.frame(state)

    def affords(self, state: TurnState) -> bool:
        return True

    def finish(self, state: TurnState) -> None:
        self._renderer.finish(state)


class TerminalEventsSink:
    """The raw view in a terminal (`%%claude --raw` outside a kernel): each event line printed once as it
    arrives, then the footer. The lines are printable already (`core.wire_events` escapes control
    characters), so they go out as they are, to a terminal or a pipe alike."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._printed = 0
        self._notice: str | None = None

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def start(self, state: TurnState) -> None:
        ask_for_events(state)

    def affords(self, state: TurnState) -> bool:
        return True

    def frame(self, state: TurnState) -> None:
        if state.notice and state.notice != self._notice:
            self._notice = state.notice
            self._out.write(f"[{printable(state.notice)}]\n")
        lines = state.events or []
        if self._printed < len(lines):
            self._out.write("".join(f"{line}\n" for line in lines[self._printed :]))
            self._printed = len(lines)
        self._out.flush()

    def finish(self, state: TurnState) -> None:
        self.frame(state)
        self._out.write(f"\n{printable(footer_text(state))}\n")
        self._out.flush()


class _PlainRenderer:
    """Text appended to the stream as it arrives, footer after: for pipes, files and dumb terminals."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._written: list[int] = []  # text blocks: parts written; other blocks: 1 once printed
        self._notice: str | None = None
        self._citations = CitationIndex()  # cited passages' [n] markers, numbered as they finish
        self._marked: set[int] = set()  # text blocks whose markers are written

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def start(self, state: TurnState) -> None:
        pass

    def frame(self, state: TurnState) -> None:
        self._write(state, final=False)

    def _write(self, state: TurnState, *, final: bool) -> None:
        if state.notice and state.notice != self._notice:
            self._notice = state.notice
            self._out.write(f"[{state.notice}]\n")
        if not self._written and state.drawn_from is not None:  # a continuation: printed from where it goes on
            start, part = state.drawn_from
            self._written = [len(block.parts) or 1 for block in state.blocks[:start]] + [part] * (part > 0)
        for index, block in enumerate(state.blocks):
            if index == len(self._written):
                self._written.append(0)
            if block.kind == "text":
                # Only the parts not yet written are joined: a frame never copies the whole answer.
                self._out.write("".join(block.parts[self._written[index] :]))
                self._written[index] = len(block.parts)
                if block.citations and (block.complete or final) and index not in self._marked:
                    self._marked.add(index)
                    self._out.write(markers_text(self._citations.numbers(block.citations)))
            elif not self._written[index] and (block.complete or final):
                # Thinking and tool input are printed whole, once finished.
                self._out.write(block_text(block))
                self._written[index] = 1
        self._out.flush()

    def finish(self, state: TurnState) -> None:
        self._write(state, final=True)
        if nothing_arrived(state):  # the error line alone (or nothing: the surface raises it)
            line = answer_bundle(state)["text/plain"]
            self._out.write(f"{line}\n" if line else "")
        else:
            if self._citations.sources:
                self._out.write(f"\n\n{sources_text(self._citations).rstrip()}")
            self._out.write(f"\n\n{footer_text(state)}\n")
        self._out.flush()


class _RichRenderer:
    """Finished pieces printed once above a Live area that holds the unfinished block and the status line.

    The Live area is transient: `finish` empties and stops it (also after Ctrl-C, so the cursor comes
    back), then prints the rest of the answer for good, the warning and the dimmed footer.
    The cut into finished and unfinished Markdown is IncrementalView's (`finished_prefix_length`), but
    not the view itself: it renders HTML for every frame and runs finished blocks of any kind into one
    text, where the terminal prints thinking and tool calls dimmed, not as Markdown.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        # Frames come from run_turn's throttle, so Live needs no refresh thread of its own; nothing is
        # printed meanwhile, so stdout and stderr stay as they are.
        self._live = Live(console=console, auto_refresh=False, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._index = 0  # blocks before this one are printed
        self._parts = 0  # parts of that block already taken into _tail
        self._tail = ""  # its Markdown not printed yet: the Markdown block still being written
        self._printed = False  # a piece is on screen: the next one starts after a blank line
        self._started = False  # the first frame has been taken
        self._citations = CitationIndex()  # cited passages' [n] markers, numbered as they are printed

    def start(self, state: TurnState) -> None:
        self._live.start()
        self._draw_live(state)

    def frame(self, state: TurnState) -> None:
        self._advance(state, final=False)
        self._draw_live(state)

    def finish(self, state: TurnState) -> None:
        # The live area goes first, whatever happens next (this also runs after Ctrl-C): stop() redraws
        # it once, empty, and shows the cursor again. Then the rest of the answer is printed for good.
        self._live.update(Group())
        self._live.stop()
        self._advance(state, final=True)
        warning = warning_line(state)
        lines: list[RenderableType] = [NewLine()] if self._printed else []
        if self._citations.sources:
            lines += [Text(printable(sources_text(self._citations).rstrip()), style=ASIDE_STYLE), NewLine()]
        if warning:
            lines.append(Text(f"⚠ {warning}", style=WARNING_STYLE))
        if not nothing_arrived(state):  # else a footer of zeros: the error line is the one report
            lines.append(Text(" · ".join(footer_parts(state)), style=FOOTER_STYLE))
        if lines:
            self._console.print(Group(*lines))

    def _advance(self, state: TurnState, *, final: bool) -> None:
        """Print what has become final since the last frame; keep the unfinished block in `_tail`."""
        blocks = state.blocks
        if not self._started and state.drawn_from is not None:  # a continuation: printed from where it goes on
            self._index, self._parts = state.drawn_from
        self._started = True
        while self._index < len(blocks):
            block = blocks[self._index]
            done = final or self._index < len(blocks) - 1  # a later block has started
            # A cited answer arrives as passages (text blocks side by side): they read on as one Markdown text.
            reads_on = self._index + 1 < len(blocks) and block.kind == "text" == blocks[self._index + 1].kind
            if block.kind == "text":
                # Only the parts not taken yet are joined: a frame never copies the whole answer.
                self._tail += printable("".join(block.parts[self._parts :]))
                self._parts = len(block.parts)
                if done and block.citations:  # the passage is finished: its [n] markers follow it
                    self._tail += markers_text(self._citations.numbers(block.citations))
                cut = len(self._tail) if done and not reads_on else finished_prefix_length(self._tail)
                if cut:
                    self._print(self._tail[:cut], markdown=True)
                    self._tail = self._tail[cut:]
            elif done or block.complete:
                self._print(block_text(block), markdown=False)
                done = True
            if not done:
                return
            self._index, self._parts, self._tail = self._index + 1, 0, self._tail if reads_on else ""

    def _print(self, text: str, *, markdown: bool) -> None:
        if not text.strip():
            return
        piece: RenderableType = (Markdown(text, code_theme=CODE_THEME) if markdown
                                 else Text(printable(text).rstrip("\n"), style=ASIDE_STYLE))
        self._console.print(_Piece(piece, gap=self._printed))
        self._printed = True

    def _draw_live(self, state: TurnState) -> None:
        shown: list[RenderableType] = []
        if self._index < len(state.blocks):
            block = state.blocks[self._index]
            if block.kind != "text":
                shown.append(Text(printable(block_text(block)[-LIVE_PREVIEW_CHARS:]), style=ASIDE_STYLE))
            elif self._tail.strip():
                shown.append(Markdown(self._tail, code_theme=CODE_THEME))
        if state.notice:
            shown.append(Text(printable(state.notice), style=NOTICE_STYLE))
        elif not state.has_content:
            shown.append(Text(WAITING_TEXT, style=STATUS_STYLE))
        self._live.update(_Piece(Group(*shown), gap=self._printed, bottom=True), refresh=True)


class _Piece:
    """A piece of the answer after `gap` blank line, whatever blank lines rich starts it with.

    Markdown rendered piece by piece loses the blank line between blocks, and rich starts some
    blocks (lists) with one of their own: leading blank lines are dropped and one is put back.
    `bottom` keeps only the end of a piece taller than the screen: Live can redraw only what is on it.
    """

    def __init__(self, renderable: RenderableType, *, gap: bool, bottom: bool = False) -> None:
        self._renderable = renderable
        self._gap = gap
        self._bottom = bottom

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self._renderable, options, pad=False)
        start = 0
        while start < len(lines) and _is_blank(lines[start]):
            start += 1
        lines = lines[start:]
        if self._gap and lines:
            lines.insert(0, [])
        room = options.size.height - 1  # the cursor's line stays free
        if self._bottom and len(lines) > room >= 2:
            hidden = len(lines) - room + 1
            lines = [[Segment(f"… {hidden} more lines above", Style(dim=True))], *lines[-(room - 1) :]]
        for line in lines:
            yield from line
            yield Segment.line()


def _is_blank(line: list[Segment]) -> bool:
    # A code block's padding line is blank text on a background colour: not blank.
    return not any(segment.text.strip() or (segment.style and segment.style.bgcolor) for segment in line)
