"""Markdown → safe HTML, and where a growing Markdown text can be cut into finished blocks.

Model output is untrusted (prompt injection): JupyterLab renders executed outputs as trusted HTML, so
a raw `<img onerror>` would run JavaScript that can drive the kernel. We therefore never let raw HTML
through: markdown-it runs with `html=False` (tags come out as text) and nh3 sanitizes the result with an
allow-list. Images are rendered as plain links, because an auto-loading remote image is a way to
exfiltrate data through its URL.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

_ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "td": {"style"},
    "th": {"style"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
# Table cells carry their alignment as `style="text-align:..."`; nothing else may be styled.
_ALLOWED_STYLES = {"td": {"text-align"}, "th": {"text-align"}}


def _render_image_as_link(
    self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = html.escape(self.renderInlineAsText(token.children or [], options, env))
    src = html.escape(str(token.attrGet("src") or ""), quote=True)
    return f'<a href="{src}">[image: {alt or "untitled"}]</a>'


def _make_parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable(["table", "strikethrough"])
    parser.add_render_rule("image", _render_image_as_link)
    return parser


_PARSER = _make_parser()


def sanitize_html(markup: str) -> str:
    """Clean HTML with the same allow-list the Markdown renderer uses (for any HTML we assemble)."""
    return nh3.clean(
        markup,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        filter_style_properties={p for props in _ALLOWED_STYLES.values() for p in props},
    )


def render_markdown(text: str) -> str:
    """Render untrusted Markdown to sanitized HTML.

    >>> render_markdown("**hi** <script>x</script>")
    '<p><strong>hi</strong> &lt;script&gt;x&lt;/script&gt;</p>\\n'
    """
    return sanitize_html(_PARSER.render(text))


def finished_prefix_length(text: str) -> int:
    """Length of the longest prefix of `text` made only of finished top-level Markdown blocks.

    A block is finished once a later top-level block has started on a complete line: nothing that
    arrives afterwards can change how it renders (CommonMark closes it). The block still being
    written is never part of the prefix. Only complete lines are looked at, because a partial last
    line may still turn into a continuation of the block above it (a setext underline, an indent).
    Cost is O(len(text)), so callers pass only the unfinished tail, never the whole answer.
    """
    last_newline = text.rfind("\n")
    if last_newline < 0:
        return 0
    complete = text[: last_newline + 1]
    start_lines = [tok.map[0] for tok in _PARSER.parse(complete) if tok.level == 0 and tok.map and tok.nesting >= 0]
    if len(start_lines) < 2:
        return 0
    last_block_line = start_lines[-1]
    offset = 0
    for _ in range(last_block_line):
        offset = complete.index("\n", offset) + 1
    return offset
