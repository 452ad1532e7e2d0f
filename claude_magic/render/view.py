"""How a turn looks: HTML and plain text for a TurnState, whole or piece by piece.

`answer_bundle` renders a whole turn once (the final output, and what nbval sees).
`IncrementalView` renders a growing turn so that each frame costs O(unfinished part), not
O(answer): finished Markdown blocks are rendered once and handed out as frozen pieces, and only the
block still being written is rendered again on each frame.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from claude_magic.core.server_tools import (
    RESULT_KINDS,
    CitationIndex,
    call_text,
    markers_text,
    result_text,
    sources_text,
)
from claude_magic.core.turn import Block, TurnState
from claude_magic.render.footer import footer_html, footer_text, warning_html, warning_line
from claude_magic.render.markdown import finished_prefix_length, render_markdown, themed
from claude_magic.render.server_view import markers_html, server_call_html, server_result_html, sources_html
from claude_magic.render.tool_view import tool_result_html, tool_result_text, tool_use_html, tool_use_text
from claude_magic.render.typed import typed_html, typed_text

LIVE_PREVIEW_CHARS = 800  # thinking and tool input shown while streaming: the tail only
WAITING_TEXT = "Waiting for Claude…"
CURSOR = '<span class="claude-magic-cursor">▍</span>'
MUTED_COLOUR = themed("color", "--jp-content-font-color2", "#6e6e6e")
_STATUS_STYLE = f"{MUTED_COLOUR};font-style:italic"
_QUIET_STYLE = f"{MUTED_COLOUR};font-size:0.9em"  # omitted/redacted thinking markers, between-tools narration
# Thinking is prose: the page's proportional font, wrapped between words, its line breaks kept. (A
# <pre> is monospace and JupyterLab breaks its lines anywhere, splitting words: "not / hing".)
_THINKING_STYLE = f"white-space:pre-wrap;overflow-wrap:break-word;{MUTED_COLOUR};margin:0.3em 0 0.5em 1em"
_CLOSING_TAG = re.compile(r"</([a-z][a-z0-9]*)>")
# The cursor goes inside every element still open at the end, except a highlighted token's span (so it
# keeps the code's own colour) and a link (so it is not underlined or clickable): right after the text.
_CURSOR_STAYS_OUTSIDE = {"span", "a"}

Bundle = dict[str, str]


def with_cursor(markup: str) -> str:
    """`markup` with CURSOR right after its last character of text, inside the innermost element.

    Sanitized HTML escapes every `<` in text, so the trailing run of closing tags and whitespace is
    found by walking back from the end, tag by tag: O(that run), not O(markup). The cursor goes in
    front of it (paragraph, heading, list item however nested, blockquote, table cell, `<pre><code>`).
    """
    end = len(markup)
    while True:
        text_end = end
        while text_end and markup[text_end - 1].isspace():
            text_end -= 1
        if not (text_end and markup[text_end - 1] == ">"):
            break
        start = markup.rfind("<", 0, text_end)
        closing = _CLOSING_TAG.fullmatch(markup, start, text_end) if start >= 0 else None
        if closing is None or closing.group(1) in _CURSOR_STAYS_OUTSIDE:
            break
        end = start
    return markup[:text_end] + CURSOR + markup[text_end:]


def _thinking_prose(text: str) -> str:
    return f'<div class="claude-magic-thinking" style="{_THINKING_STYLE}">{html.escape(text)}</div>'


def _quiet(text: str) -> str:
    return f'<div class="claude-magic-quiet" style="{_QUIET_STYLE}">{html.escape(text)}</div>'


# Where a passage's citation markers go in its Markdown: private-use characters Markdown leaves alone, swapped
# for the markers' HTML after rendering and sanitizing (the same characters in model text become U+FFFD first:
# one character for one, so positions in the text stay where they were).
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARK = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")
_NO_MARKS = str.maketrans({_MARK_OPEN: "\ufffd", _MARK_CLOSE: "\ufffd"})


def _unmarked(text: str) -> str:
    return text.translate(_NO_MARKS) if _MARK_OPEN in text or _MARK_CLOSE in text else text


def _with_marks(source: str, marks: list[str]) -> str:
    """`source` (Markdown with mark placeholders) rendered, each placeholder replaced by its marks' HTML."""
    rendered = render_markdown(source)
    return _MARK.sub(lambda found: marks[int(found[1])], rendered) if marks else rendered


def cited_html(passages: list[Block], citations: CitationIndex) -> str:
    """Consecutive text blocks (passages, some cited) rendered as one Markdown text, each cited passage
    followed by its numbered links: the cited sentence reads on in its paragraph."""
    source: list[str] = []
    marks: list[str] = []
    for block in passages:
        source.append(_unmarked(block.text))
        if block.citations:
            marks.append(markers_html(citations.numbers(block.citations)))
            source.append(f"{_MARK_OPEN}{len(marks) - 1}{_MARK_CLOSE}")
    return _with_marks("".join(source), marks)


def block_html(block: Block, *, live: bool = False, citations: CitationIndex | None = None) -> str:
    """One content block as HTML; `live` shows only the tail of long non-text blocks.

    Thinking streams in an open fold while it is written and folds away once the answer goes on. A block
    without text (`display: "omitted"`, the default from Claude 4.7 on when not asked for `summarized`)
    is a quiet "Thinking…" line while it streams and nothing after: never an empty fold. On the models
    that send the text they write between tool calls as thinking (`Block.between_tools`), it is shown in
    its place in the tool flow, as the narration it is.
    """
    if block.kind == "text":
        if block.citations and citations is not None:
            return cited_html([block], citations)
        return render_markdown(block.text)
    if block.kind == "thinking":
        text = block.text
        if not text:
            return _quiet("Thinking…") if live and not block.complete else ""
        if block.between_tools:
            return f'<div class="claude-magic-between-tools" style="{_QUIET_STYLE}">{render_markdown(text)}</div>'
        shown = text[-LIVE_PREVIEW_CHARS:] if live else text
        label = "Thinking…" if live else "Thinking"
        return (f"<details{' open' if live else ''}><summary>{label} ({len(text):,} characters)</summary>"
                f"{_thinking_prose(shown)}</details>")
    if block.kind == "redacted_thinking":
        return _quiet("(some reasoning was redacted)")
    if block.kind == "server_tool_use" and not block.cut_off:
        return server_call_html(block, live=live)
    if block.kind in ("tool_use", "server_tool_use"):
        return tool_use_html(block, live=live)
    if block.kind == "tool_result":
        return tool_result_html(block)
    if block.kind in RESULT_KINDS:
        return server_result_html(block)
    return f"<div><em>[{html.escape(block.kind)} block]</em></div>"


def block_text(block: Block, citations: CitationIndex | None = None) -> str:
    if block.kind == "text":
        if block.citations and citations is not None:
            return block.text + markers_text(citations.numbers(block.citations))
        return block.text
    if block.kind == "thinking":
        if not block.text:
            return ""  # omitted: only a signature, nothing to read
        if block.between_tools:
            return f"{block.text}\n"
        return f"[thinking]\n{block.text}\n[/thinking]\n"
    if block.kind == "redacted_thinking":
        return "(some reasoning was redacted)\n"
    if block.kind == "server_tool_use" and not block.cut_off:
        param = block.to_param()
        return "\n" + call_text({"name": block.tool_name, "input": param["input"] if param else block.snapshot})
    if block.kind in ("tool_use", "server_tool_use"):
        return tool_use_text(block)
    if block.kind == "tool_result":
        return tool_result_text(block)
    if block.kind in RESULT_KINDS:
        return result_text(block.extra)
    return f"[{block.kind} block]\n"


def status_html(state: TurnState) -> str:
    """The line shown while a turn runs: retry notices, or the waiting indicator before the first token."""
    if state.notice:
        return f'<div style="{_STATUS_STYLE}">{html.escape(state.notice)}</div>'
    if not state.has_content:
        return f'<div style="{_STATUS_STYLE}">{WAITING_TEXT}</div>'
    return ""


def drawn_blocks(state: TurnState) -> list[Block]:
    """The blocks a cell draws: all of them, or those from `state.drawn_from` on (a continuation)."""
    if state.drawn_from is None:
        return state.blocks
    index, part = state.drawn_from
    blocks = state.blocks[index:]
    if blocks and part:
        first = blocks[0]
        blocks = [Block(first.kind, parts=first.parts[part:], complete=first.complete, citations=first.citations),
                  *blocks[1:]]
    return blocks


def nothing_arrived(state: TurnState) -> bool:
    """A finished turn that failed before the API answered anything (unknown model, bad key, no
    connection): no block, no token counted. Its footer would only say "0 in / 0 out · stop_reason: —"."""
    return (state.finished and state.error is not None and not state.blocks
            and not state.total_usage.input_tokens and not state.tokens_so_far)


def answer_bundle(state: TurnState) -> Bundle:
    """The whole turn, rendered once: answer, then warning and footer when finished. A turn that failed
    before anything arrived is its error line alone (nothing at all when the surface raises it: the
    raised line is then the one report). A typed answer that parsed (`output=Model`) shows its object as a
    table in place of the JSON it streamed as."""
    if nothing_arrived(state):
        warning = warning_line(state)
        if warning is None:
            return {"text/plain": "", "text/html": ""}
        return {"text/plain": f"⚠ {warning}", "text/html": warning_html(warning)}
    blocks = drawn_blocks(state)
    citations = CitationIndex()
    if state.parsed is not None:
        others = [block for block in blocks if block.kind != "text"]
        body = "".join(block_html(block) for block in others) + typed_html(state.parsed, _type_name(state.parsed))
        text = "".join(block_text(block) for block in others) + typed_text(state.parsed)
    else:
        body = _blocks_html(blocks, citations)
        text = "".join(block_text(block, citations) for block in blocks)
    if citations.sources:
        body += sources_html(citations)
        text = f"{text.rstrip()}\n\n{sources_text(citations)}"
    if state.finished:
        body += footer_html(state)
        text = f"{text.rstrip()}\n\n{footer_text(state)}" if text else footer_text(state)
    else:
        body += status_html(state)
    return {"text/plain": text, "text/html": body}


def cited_blocks_html(blocks: list[Block]) -> str:
    """Finished blocks as HTML with their citations numbered and the sources listed below (a turn redrawn
    from history)."""
    citations = CitationIndex()
    body = _blocks_html(blocks, citations)
    return body + sources_html(citations) if citations.sources else body


def _blocks_html(blocks: list[Block], citations: CitationIndex) -> str:
    """The blocks as HTML; a run of text blocks with citations among them is one Markdown text (a cited
    answer arrives as passages: text, cited text, text), so its sentences stay in their paragraphs."""
    out: list[str] = []
    start = 0
    while start < len(blocks):
        end = start
        while end < len(blocks) and blocks[end].kind == "text":
            end += 1
        run = blocks[start:end]
        if len(run) > 1 and any(block.citations for block in run):
            out.append(cited_html(run, citations))
            start = end
            continue
        out.append(block_html(blocks[start], citations=citations))
        start += 1
    return "".join(out)


def _type_name(parsed: object) -> str:
    return "" if isinstance(parsed, dict) else type(parsed).__name__


@dataclass
class Piece:
    html: str
    text: str


class IncrementalView:
    """Cuts a growing turn into frozen pieces (final, never re-rendered) and a live tail.

    Position is (block index, part index in that block, character offset in that part), so a frame
    joins only the parts after the frozen position, never the whole answer. Blocks before the last
    one are finished by definition; inside the last text block, finished Markdown blocks are frozen
    as soon as a later block starts (see `finished_prefix_length`).

    A cited answer arrives as a run of text blocks (text, cited passage, text): the Markdown block still
    open when one of them ends is carried into the next (`_carry`, with the finished passage's markers as
    placeholders) and rendered with it, so a cited sentence stays in its paragraph live as in the final
    view. The carry never holds a finished Markdown block: a frame still renders only the unfinished one.
    """

    def __init__(self) -> None:
        self._block = 0
        self._part = 0
        self._offset = 0
        self._fresh = True  # no frame drawn yet
        self._citations = CitationIndex()  # numbers the sources as cited passages are frozen, in order
        self._carry = ""  # the open Markdown block of finished text blocks, the next one writes on in it
        self._marks: list[tuple[str, str]] = []  # (HTML, text) of the carry's placeholders

    def _rest(self, block: Block) -> str:
        return "".join(block.parts[self._part :])[self._offset :]

    def _skip(self, block: Block, chars: int) -> None:
        """Move the position `chars` characters further into `block`."""
        self._offset += chars
        while self._part < len(block.parts) and self._offset >= len(block.parts[self._part]):
            self._offset -= len(block.parts[self._part])
            self._part += 1

    def _render(self, source: str) -> Piece:
        """Carried Markdown (placeholders and all) as HTML and as text."""
        if not self._marks:
            return Piece(render_markdown(source), source)
        text = _MARK.sub(lambda found: self._marks[int(found[1])][1], source)
        return Piece(_with_marks(source, [mark for mark, _text in self._marks]), text)

    def _finish_text(self, block: Block, reads_on: bool) -> Piece | None:
        """A text block that has ended: the rest of it (and its markers) joins the carry. When the next block
        is text too (`reads_on`), what stays open of it is carried on and only finished Markdown blocks are
        frozen; otherwise all of it is."""
        self._carry += _unmarked(self._rest(block))
        if block.citations:  # its links go after its last words, once the passage is finished
            numbered = self._citations.numbers(block.citations)
            self._marks.append((markers_html(numbered), markers_text(numbered)))
            self._carry += f"{_MARK_OPEN}{len(self._marks) - 1}{_MARK_CLOSE}"
        cut = finished_prefix_length(self._carry) if reads_on else len(self._carry)
        if not cut:
            return None
        piece = self._render(self._carry[:cut])
        self._carry = self._carry[cut:]
        if not self._carry:
            self._marks = []
        return piece

    def advance(self, state: TurnState) -> tuple[Piece | None, Piece]:
        """Returns (newly frozen piece or None, live tail piece)."""
        frozen: list[Piece] = []
        blocks = state.blocks
        if self._fresh and state.drawn_from is not None:  # a continuation: drawn from where it goes on
            self._block, self._part = state.drawn_from
        self._fresh = False
        while self._block < len(blocks) - 1:
            block = blocks[self._block]
            if block.kind == "text":
                piece = self._finish_text(block, reads_on=blocks[self._block + 1].kind == "text")
                if piece is not None:
                    frozen.append(piece)
            else:
                frozen.append(Piece(block_html(block), block_text(block)))
            self._block += 1
            self._part = self._offset = 0
        tail = Piece("", "")
        if self._block < len(blocks):  # (a continuation's view may start past the blocks it continues)
            block = blocks[self._block]
            if block.kind == "text":
                carried = len(self._carry)
                source = self._carry + _unmarked(self._rest(block))
                cut = finished_prefix_length(source)
                if cut:
                    frozen.append(self._render(source[:cut]))
                    self._skip(block, max(cut - carried, 0))
                    self._carry = self._carry[cut:] if cut < carried else ""
                    if not self._carry:
                        self._marks = []
                    source = source[cut:]
                tail = self._render(source)
            else:
                tail = Piece(block_html(block, live=True), block_text(block)[-LIVE_PREVIEW_CHARS:])
        tail_html = with_cursor(tail.html) if state.has_content else tail.html  # at the end of the text written
        tail_html += status_html(state)
        joined = Piece("".join(p.html for p in frozen), "".join(p.text for p in frozen)) if frozen else None
        return joined, Piece(tail_html, tail.text or (state.notice or WAITING_TEXT))
