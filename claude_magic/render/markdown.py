"""Markdown → safe HTML, and where a growing Markdown text can be cut into finished blocks.

Model output is untrusted (prompt injection): JupyterLab renders executed outputs as trusted HTML, so
a raw `<img onerror>` would run JavaScript that can drive the kernel. We therefore never let raw HTML
through: markdown-it runs with `html=False` (tags come out as text) and nh3 sanitizes the result with an
allow-list. Images are rendered as plain links, because an auto-loading remote image is a way to
exfiltrate data through its URL.

Code blocks are highlighted here, in Python, with Pygments (the fence's language; an unlabelled or
unknown one is shown plain, never guessed) as inline-styled spans, and table cells carry their
alignment inline: everything survives JupyterLab's sanitizer for untrusted notebooks, which drops
<style> elements and classes' CSS would not reach. Inline styles pass only per element and property,
with values made of words, numbers and hex colours (`_ALLOWED_STYLES`).

Colours follow JupyterLab's theme (light or dark): each is written twice, a hex colour and then
`var(--jp-…, hex)` (see `themed`). Where JupyterLab's variables exist the second wins; a frontend
without them, or a sanitizer that drops `var()` (an untrusted notebook), keeps the hex colour, which
pairs with the hex background of the code box, so a saved notebook stays readable anywhere.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments.lexer import Lexer
from pygments.lexers import find_lexer_class_by_name
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound

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
    "pre": {"style"},
    "code": {"style"},
    "span": {"style"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
# The only inline styles that survive, per element: table alignment, the code box, token colours.
# Values are plain words, numbers, lengths and hex colours: nothing that can load a resource
# (`url(`), run script (`expression(`), escape (`\`) or start a comment or a second declaration.
_ALLOWED_STYLES = {
    "td": {"text-align"},
    "th": {"text-align"},
    "pre": {"background-color", "padding", "border-radius"},
    "code": {"background-color", "color"},
    "span": {"color", "font-weight", "font-style"},
}
_STYLE_VALUE = re.compile(r"[#a-zA-Z0-9.% -]+|var\(--jp-[a-z0-9-]+, #[0-9a-fA-F]{3,8}\)")
_STYLE_PROPERTIES = {p for props in _ALLOWED_STYLES.values() for p in props}



def themed(css_property: str, variable: str, fallback: str) -> str:
    """`property:fallback;property:var(variable, fallback)`: JupyterLab's theme colour where it is
    defined, the hex colour wherever `var()` is unknown or stripped (see the module's docstring)."""
    return f"{css_property}:{fallback};{css_property}:var({variable}, {fallback})"


# Fenced and indented code: a box in the theme's editor colours (a light box with dark text where the
# theme is unknown), and `code`'s own background (JupyterLab paints one) made transparent. Inline
# styles, because a saved notebook opened from disk is untrusted and JupyterLab then drops <style>
# elements; it keeps these.
_PRE_STYLE = (f"{themed('background-color', '--jp-cell-editor-background', '#f3f5f7')};"
              "padding:8px 12px;border-radius:4px")
_CODE_STYLE = f"background-color:transparent;{themed('color', '--jp-content-font-color1', '#1f2328')}"
_PYGMENTS_STYLE = get_style_by_name("default")
# Pygments token types → the CodeMirror colour variables JupyterLab's themes set for its own editors,
# so highlighted answers look like the notebook's code cells in every theme. A token type not listed
# takes its nearest listed parent's; the hex fallback is the Pygments default style's colour.
_THEME_COLOUR_VARIABLES = {
    "Keyword": "--jp-mirror-editor-keyword-color",
    "Keyword.Constant": "--jp-mirror-editor-keyword-color",
    "Operator": "--jp-mirror-editor-operator-color",
    "Operator.Word": "--jp-mirror-editor-keyword-color",
    "Name.Builtin": "--jp-mirror-editor-builtin-color",
    "Name.Function": "--jp-mirror-editor-def-color",
    "Name.Class": "--jp-mirror-editor-def-color",
    "Name.Decorator": "--jp-mirror-editor-meta-color",
    "Name.Attribute": "--jp-mirror-editor-property-color",
    "Name.Tag": "--jp-mirror-editor-tag-color",
    "Name.Variable": "--jp-mirror-editor-variable-2-color",
    "Name.Constant": "--jp-mirror-editor-atom-color",
    "Name.Entity": "--jp-mirror-editor-atom-color",
    "Name.Label": "--jp-mirror-editor-atom-color",
    "Name.Exception": "--jp-mirror-editor-builtin-color",
    "Name.Namespace": "--jp-mirror-editor-variable-color",
    "Literal.String": "--jp-mirror-editor-string-color",
    "Literal.Number": "--jp-mirror-editor-number-color",
    "Comment": "--jp-mirror-editor-comment-color",
    "Comment.Preproc": "--jp-mirror-editor-meta-color",
    "Punctuation": "--jp-mirror-editor-punctuation-color",
    "Generic.Heading": "--jp-mirror-editor-header-color",
    "Generic.Subheading": "--jp-mirror-editor-header-color",
    "Generic.Deleted": "--jp-mirror-editor-error-color",
    "Generic.Inserted": "--jp-mirror-editor-string-color",
    "Generic.Error": "--jp-mirror-editor-error-color",
    "Error": "--jp-mirror-editor-error-color",
}
# Highlighting costs ~2 µs a character and the block being written is highlighted again on each
# frame: longer blocks are shown plain (the same in every frame and in the final rendering).
HIGHLIGHT_LIMIT = 10_000


def _render_image_as_link(
    self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = html.escape(self.renderInlineAsText(token.children or [], options, env))
    src = html.escape(str(token.attrGet("src") or ""), quote=True)
    return f'<a href="{src}">[image: {alt or "untitled"}]</a>'


@lru_cache(maxsize=128)
def _lexer_class(language: str) -> type[Lexer] | None:
    """The Pygments lexer for a fence's language name, or None (unknown: shown plain, never guessed)."""
    if not language or len(language) > 40:
        return None
    try:
        return find_lexer_class_by_name(language)
    except ClassNotFound:
        return None


def _theme_variable(ttype: _TokenType) -> str | None:
    """The theme's colour variable for a token type, from the type itself or its nearest listed parent."""
    while ttype is not None:
        variable = _THEME_COLOUR_VARIABLES.get(str(ttype).removeprefix("Token."))
        if variable is not None:
            return variable
        ttype = ttype.parent
    return None


@lru_cache(maxsize=512)
def _token_style(ttype: _TokenType) -> str:
    """Inline style for a token type: colour, bold, italic from the Pygments style ("" for plain)."""
    while ttype.parent is not None and not _PYGMENTS_STYLE.styles_token(ttype):
        ttype = ttype.parent
    spec = _PYGMENTS_STYLE.style_for_token(ttype)
    parts = []
    color = spec.get("color") or ""
    if re.fullmatch(r"[0-9a-fA-F]{6}", color):
        variable = _theme_variable(ttype)
        hex_colour = f"#{color.lower()}"
        parts.append(themed("color", variable, hex_colour) if variable else f"color:{hex_colour}")
    if spec.get("bold"):
        parts.append("font-weight:bold")
    if spec.get("italic"):
        parts.append("font-style:italic")
    return ";".join(parts)


def highlight(code: str, lexer: Lexer) -> str:
    """`code` as escaped HTML with `<span style="...">` runs; its text is exactly `code`.

    Adjacent tokens of one style share a span, and whitespace joins the run it is in, which keeps the
    markup (sent again on every frame while the block grows) small. A span never ends in whitespace,
    so the last visible character of the code is the last thing inside its span (the live cursor goes
    right after it, not after a newline).
    """
    out: list[str] = []
    run: list[str] = []
    run_style = ""
    values: list[str] = []

    def flush() -> None:
        text = "".join(run)
        core = text.rstrip() if run_style else ""
        if core:
            out.append(f'<span style="{run_style}">{html.escape(core, quote=False)}</span>')
        out.append(html.escape(text[len(core):], quote=False))

    for ttype, value in lexer.get_tokens(code):
        values.append(value)
        style = run_style if value.isspace() else _token_style(ttype)
        if style != run_style and run:
            flush()
            run = []
        run_style = style
        run.append(value)
    if run:
        flush()
    if "".join(values) != code:  # a lexer that changed the text (tabs, line ends): show it as it is
        return html.escape(code, quote=False)
    return "".join(out)


def code_block_html(code: str, language: str = "") -> str:
    """A code block: the box, and Pygments colours when `language` names a lexer."""
    lexer_class = _lexer_class(language.lower()) if len(code) <= HIGHLIGHT_LIMIT else None
    # A new lexer each time (cheap): the cell and the panel render in different threads. The text is
    # kept exactly as it is (no stripped newlines), so what is copied is what was written.
    lexer = lexer_class(stripnl=False, ensurenl=False) if lexer_class is not None else None
    body = highlight(code, lexer) if lexer is not None else html.escape(code, quote=False)
    return f'<pre style="{_PRE_STYLE}"><code style="{_CODE_STYLE}">{body}</code></pre>\n'


def _render_fence(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    info = unescapeAll(token.info).strip() if token.info else ""
    return code_block_html(token.content, info.split(maxsplit=1)[0] if info else "")


def _render_code_block(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    return code_block_html(tokens[idx].content)


def _render_cell_open(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """Table cells are left-aligned (JupyterLab right-aligns HTML output tables) unless the column says."""
    token = tokens[idx]
    if not token.attrGet("style"):
        token.attrSet("style", "text-align:left")
    rendered: str = self.renderToken(tokens, idx, options, env)
    return rendered


def _make_parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable(["table", "strikethrough"])
    parser.add_render_rule("image", _render_image_as_link)
    parser.add_render_rule("fence", _render_fence)
    parser.add_render_rule("code_block", _render_code_block)
    parser.add_render_rule("th_open", _render_cell_open)
    parser.add_render_rule("td_open", _render_cell_open)
    return parser


_PARSER = _make_parser()


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    """Per-element style allow-list (nh3's own property filter is one list for every element)."""
    if attribute != "style":
        return value
    allowed = _ALLOWED_STYLES.get(element, set())
    kept = []
    for declaration in value.split(";"):
        name, colon, val = declaration.partition(":")
        name, val = name.strip().lower(), val.strip()
        if colon and name in allowed and _STYLE_VALUE.fullmatch(val):
            kept.append(f"{name}:{val}")
    return ";".join(kept) or None


def sanitize_html(markup: str) -> str:
    """Clean HTML with the same allow-list the Markdown renderer uses (for any HTML we assemble)."""
    return nh3.clean(
        markup,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        attribute_filter=_filter_attribute,
        filter_style_properties=_STYLE_PROPERTIES,
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
