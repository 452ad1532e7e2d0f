"""How Claude's server tools and citations look in HTML: the query or URL as it streams, search results as a
compact list of links, the fetched page, code's output and return code, and the answer's citations as numbered
links after the cited text with a sources list below. Pure.

Everything here comes from the network (titles, snippets, URLs, code output, tool names) and is untrusted:
text is escaped, never rendered as Markdown or HTML; a link is drawn only for an http(s) URL
(`core.server_tools.safe_url`: no javascript:, data:, relative or malformed ones), opens in a new tab with
`rel="noopener noreferrer"`, and its title attribute is escaped too.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

from claude_magic.core.errors import redact_secrets
from claude_magic.core.server_tools import (
    CitationIndex,
    Link,
    call_summary,
    code_result,
    fetch_result,
    search_results,
)
from claude_magic.core.turn import Block
from claude_magic.render.markdown import themed

_BOX = "margin:0.3em 0;font-size:0.9em"
_MUTED = themed("color", "--jp-content-font-color2", "#6e6e6e")
_ERROR = themed("color", "--jp-error-color1", "#b00020")
_PRE = "max-height:16em;overflow:auto;margin:0.2em 0"
LIVE_PREVIEW_CHARS = 800


def link_html(link: Link, text: str | None = None) -> str:
    """An anchor for a safe URL (new tab, no opener, no referrer), else the escaped text alone."""
    label = html.escape(text if text is not None else (link.title or link.url or ""))
    if link.url is None:
        return label
    tip = f' title="{html.escape(link.detail[:300], quote=True)}"' if link.detail else ""
    return (f'<a href="{html.escape(link.url, quote=True)}" target="_blank" rel="noopener noreferrer"{tip}>'
            f"{label}</a>")


def _domain(url: str | None) -> str:
    return (urlsplit(url).hostname or "") if url else ""


def server_call_html(block: Block, *, live: bool) -> str:
    """A server tool call: what it searches, fetches or runs, as it streams (the fields parsed so far)."""
    tool_input: Any = block.snapshot
    if tool_input is None:
        param = block.to_param()
        tool_input = param["input"] if param is not None else {}
    label, argument = call_summary(block.tool_name, tool_input)
    argument = redact_secrets(argument)
    if live and not block.complete and len(argument) > LIVE_PREVIEW_CHARS:
        argument = "…" + argument[-LIVE_PREVIEW_CHARS:]
    head = f'<span style="{_MUTED}">{html.escape(label)}</span>'
    if "\n" in argument.strip() or label == "code execution":
        code = f'<pre style="{_PRE}">{html.escape(argument)}</pre>'
        return f'<div class="claude-magic-server-tool" style="{_BOX}">{head}{code}</div>'
    shown = f" <code>{html.escape(argument)}</code>" if argument else ("…" if live else "")
    return f'<div class="claude-magic-server-tool" style="{_BOX}">{head}{shown}</div>'


def server_result_html(block: Block) -> str:
    """A server tool's result block (it arrives whole): links, a fetched page, or code output."""
    data = block.extra
    kind = block.kind
    if kind == "web_search_tool_result":
        links, error = search_results(data)
        if error is not None:
            return _error(f"search failed: {error}")
        items = "".join(
            f"<li>{link_html(Link(link.title, link.url))}"
            f' <span style="{_MUTED}">{html.escape(" · ".join(filter(None, (_domain(link.url), link.detail))))}</span>'
            "</li>" for link in links)
        body = f"<ol>{items}</ol>" if items else f'<span style="{_MUTED}">no results</span>'
        return f'<div class="claude-magic-search-results" style="{_BOX}">{body}</div>'
    if kind == "web_fetch_tool_result":
        link, error = fetch_result(data)
        if error is not None or link is None:
            return _error(f"fetch failed: {error}")
        size = f' <span style="{_MUTED}">({html.escape(link.detail)})</span>' if link.detail else ""
        return (f'<div class="claude-magic-fetch" style="{_BOX}"><span style="{_MUTED}">fetched</span> '
                f"{link_html(link)}{size}</div>")
    run = code_result(data)
    if run.error is not None:
        return _error(f"code execution failed: {run.error}")
    parts = []
    if run.summary:
        parts.append(f'<span style="{_MUTED}">{html.escape(run.summary)}</span>')
    if run.stdout:
        parts.append(f'<pre style="{_PRE}">{html.escape(redact_secrets(run.stdout))}</pre>')
    if run.stderr:
        parts.append(f'<pre style="{_PRE};{_ERROR}">{html.escape(redact_secrets(run.stderr))}</pre>')
    if run.return_code is not None:
        style = _ERROR if run.return_code else _MUTED
        parts.append(f'<span style="{style}">return code {run.return_code}</span>')
    return f'<div class="claude-magic-code-run" style="{_BOX}">{"".join(parts)}</div>'


def _error(text: str) -> str:
    return f'<div style="{_BOX};{_ERROR}">{html.escape(text)}</div>'


def markers_html(numbered: list[tuple[int, Link]]) -> str:
    """`[1][2]` after a cited passage: each a link to its source, its quote as the link's title (a document's
    place has no link: its number leads to the sources list, which quotes it)."""
    return f"<sup>{''.join(link_html(link, f'[{number}]') for number, link in numbered)}</sup>"


def sources_html(index: CitationIndex) -> str:
    """The numbered sources list under a cited answer: each source's link (or document place) and what it
    says, quoted."""
    if not index.sources:
        return ""
    items = []
    for link in index.sources:
        quoted = f' <span style="{_MUTED}">— “{html.escape(link.detail[:300])}”</span>' if link.detail else ""
        items.append(f"<li>{link_html(link)}{quoted}</li>")
    return (f'<div class="claude-magic-sources" style="{_BOX}"><span style="{_MUTED}">Sources</span>'
            f'<ol>{"".join(items)}</ol></div>')


__all__ = ["link_html", "markers_html", "server_call_html", "server_result_html", "sources_html"]
