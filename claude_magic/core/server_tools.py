"""Claude's server tools — web search, web fetch, code execution — and document citations: their definitions
as the API takes them, the flag syntax that asks for them, and what their result blocks say (pure).

    definitions = server_tool_definitions(web_search="max_uses=3,allowed=example.com,python.org",
                                          code_execution=True)
    # [{"type": "web_search_20260318", "name": "web_search", "max_uses": 3,
    #   "allowed_domains": ["example.com", "python.org"]}, {"type": "code_execution_20260521", ...}]

The API runs these tools itself (https://platform.claude.com/docs/en/agents-and-tools/tool-use/server-tools):
the answer carries a `server_tool_use` block (the call), then its result block (`web_search_tool_result`,
`web_fetch_tool_result`, `bash_code_execution_tool_result`, ...) in the same assistant message; nothing runs
here, and both go back to the API in later requests exactly as they came. A long server-side loop may stop with
`stop_reason: "pause_turn"`; the engine sends the answer so far back and the turn goes on.

Versions: the newest each tool has in the installed SDK's types (`anthropic.types.*_tool_2026..._param`),
read from the SDK so an upgrade brings the next version along. All three are generally available in
SDK 2.17 (no beta header); the SDK's `beta` types list the same versions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

KINDS = ("web_search", "web_fetch", "code_execution")
# Options each tool takes from a flag, and the API field each becomes.
_OPTIONS = {
    "web_search": {"max_uses": "max_uses", "allowed": "allowed_domains", "blocked": "blocked_domains"},
    "web_fetch": {"max_uses": "max_uses", "allowed": "allowed_domains", "blocked": "blocked_domains",
                  "max_content_tokens": "max_content_tokens", "citations": "citations"},
    "code_execution": {},
}
_FALLBACK_VERSIONS = {"web_search": "web_search_20250305", "web_fetch": "web_fetch_20250910",
                      "code_execution": "code_execution_20250825"}
_OFF = ("", "off", "no", "false", "0", "none")
_ON = ("on", "yes", "true", "1", "default")
# Server tool names of the answers' `server_tool_use` blocks (SDK: ServerToolUseBlock.name).
SEARCH_NAMES = ("web_search",)
FETCH_NAMES = ("web_fetch",)
CODE_NAMES = ("code_execution", "bash_code_execution", "text_editor_code_execution")
RESULT_KINDS = ("web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
                "bash_code_execution_tool_result", "text_editor_code_execution_tool_result")
# Web search is billed per search (pricing page: "$10 per 1,000 searches"); fetch costs only its tokens.
# https://platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool (Usage and pricing)
WEB_SEARCH_USD_PER_SEARCH = 10 / 1000


class ServerToolError(ValueError):
    """A server tool option that cannot be sent: one line with the fix."""


@cache
def newest_version(kind: str) -> str:
    """The newest `type` of a server tool the installed SDK knows, e.g. "web_search_20260318"."""
    import anthropic.types as types

    pattern = re.compile(rf"^{kind}_(\d{{8}})$")
    found = []
    for name in dir(types):
        match = re.fullmatch(r"(WebSearch|WebFetch|CodeExecution)Tool(\d{8})Param", name)
        if match is None:
            continue
        tool = {"WebSearch": "web_search", "WebFetch": "web_fetch", "CodeExecution": "code_execution"}[match[1]]
        version = f"{tool}_{match[2]}"
        if pattern.match(version):
            found.append(version)
    return max(found) if found else _FALLBACK_VERSIONS[kind]


@dataclass(frozen=True)
class ServerToolSpec:
    """One server tool asked for, with its options (None: the API's default)."""

    kind: str
    max_uses: int | None = None
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # other API fields (max_content_tokens, citations)

    def definition(self) -> dict[str, Any]:
        tool: dict[str, Any] = {"type": newest_version(self.kind), "name": self.kind}
        if self.max_uses is not None:
            tool["max_uses"] = self.max_uses
        if self.allowed_domains:
            tool["allowed_domains"] = list(self.allowed_domains)
        if self.blocked_domains:
            tool["blocked_domains"] = list(self.blocked_domains)
        tool.update(self.extra)
        return tool


def parse_spec(kind: str, value: Any) -> ServerToolSpec | None:
    """A tool asked for by a flag, a setting or an argument; None when it is off.

    `value`: True / "on" (defaults), False / None / "" / "off", a mapping of options
    (`{"max_uses": 3, "allowed_domains": [...]}`), or the flag's text: comma-separated `key=value` options,
    where a bare word after `allowed=` or `blocked=` is one more domain:
    `max_uses=3,allowed=example.com,python.org`. ServerToolError (one line) for anything else.
    """
    flag = f"--{kind.replace('_', '-')}"
    if value is None or value is False:
        return None
    if value is True:
        return ServerToolSpec(kind)
    if isinstance(value, Mapping):
        options = {_option_name(kind, str(key), flag): item for key, item in value.items()}
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() in _OFF:
            return None
        if text.lower() in _ON:
            return ServerToolSpec(kind)
        options = _parse_text(kind, text, flag)
    else:
        raise ServerToolError(f"{flag}: expected True, a string of options or a dict, got {type(value).__name__}")
    return _spec(kind, options, flag)


def _option_name(kind: str, key: str, flag: str) -> str:
    names = _OPTIONS[kind]
    aliases = {api: short for short, api in names.items()}
    short = aliases.get(key, key)
    if short not in names:
        known = ", ".join(names) or "none"
        raise ServerToolError(f"{flag}: unknown option {key!r} (options: {known})")
    return short


def _parse_text(kind: str, text: str, flag: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    current: str | None = None
    for piece in (part.strip() for part in text.split(",")):
        if not piece:
            continue
        if "=" in piece:
            key, _, item = piece.partition("=")
            current = _option_name(kind, key.strip(), flag)
            if current in ("allowed", "blocked"):
                options.setdefault(current, []).append(item.strip())
            else:
                options[current] = item.strip()
        elif current in ("allowed", "blocked"):
            options[current].append(piece)
        else:
            raise ServerToolError(f"{flag}: expected key=value, got {piece!r} (e.g. {flag}=max_uses=3,"
                                  "allowed=example.com,python.org)")
    return options


def _spec(kind: str, options: dict[str, Any], flag: str) -> ServerToolSpec:
    max_uses = options.get("max_uses")
    if max_uses is not None:
        try:
            max_uses = int(max_uses)
        except (TypeError, ValueError):
            raise ServerToolError(f"{flag}: max_uses must be a whole number, got {max_uses!r}") from None
        if max_uses < 1:
            raise ServerToolError(f"{flag}: max_uses must be at least 1, got {max_uses}")
    allowed = _domains(options.get("allowed"), flag)
    blocked = _domains(options.get("blocked"), flag)
    if allowed and blocked:
        # "You can use either allowed_domains or blocked_domains, but not both in the same request."
        raise ServerToolError(f"{flag}: give allowed or blocked domains, not both (the API takes only one)")
    extra: dict[str, Any] = {}
    if "max_content_tokens" in options:
        try:
            extra["max_content_tokens"] = int(options["max_content_tokens"])
        except (TypeError, ValueError):
            raise ServerToolError(f"{flag}: max_content_tokens must be a whole number") from None
    if "citations" in options:
        enabled = options["citations"]
        if isinstance(enabled, str):
            enabled = enabled.lower() in _ON
        extra["citations"] = {"enabled": bool(enabled)}
    return ServerToolSpec(kind, max_uses, allowed, blocked, extra)


def _domains(value: Any, flag: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    domains = []
    for item in items:
        domain = str(item).strip()
        if "://" in domain:
            # "Domains should not include the HTTP/HTTPS scheme (use example.com instead of https://example.com)"
            raise ServerToolError(f"{flag}: write domains without a scheme: {domain.split('://', 1)[1]!r}, "
                                  f"not {domain!r}")
        if domain:
            domains.append(domain)
    return tuple(domains)


def server_tool_definitions(*, web_search: Any = None, web_fetch: Any = None,
                            code_execution: Any = None) -> list[dict[str, Any]]:
    """The `tools` entries for the server tools asked for (see `parse_spec` for each value)."""
    specs = [parse_spec(kind, value) for kind, value in
             (("web_search", web_search), ("web_fetch", web_fetch), ("code_execution", code_execution))]
    return [spec.definition() for spec in specs if spec is not None]


_ATTACHMENT = re.compile(r'<attachment name="(?P<name>[^"]*)" kind="(?P<kind>[^"]*)">\n(?P<body>.*)\n</attachment>\Z',
                         re.DOTALL)


def with_citations(content: Any) -> tuple[Any, int]:
    """A user message's content with citations turned on (`--cite`), and how many documents can be cited.

    Every document block (an attached PDF) gets `citations: {enabled: true}` and its attachment's name as
    title; an attached text file becomes a plain-text document, which the API cites by character position
    (https://platform.claude.com/docs/en/build-with-claude/citations: plain text → char_location,
    PDF → page_location, custom content → content_block_location)."""
    if not isinstance(content, list):
        return content, 0
    cited: list[Any] = []
    documents = 0
    title = None
    for block in content:
        if not isinstance(block, dict):
            cited.append(block)
            continue
        label = _ATTACHMENT.match(block.get("text", "")) if block.get("type") == "text" else None
        if label is not None and label["kind"].endswith("file"):
            document = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                       "data": label["body"]},
                        "title": label["name"], "citations": {"enabled": True}}
            cited.append(document)
            documents += 1
            continue
        if block.get("type") == "text" and block.get("text", "").startswith("<attachment name="):
            found = re.match(r'<attachment name="([^"]*)"', block["text"])
            title = found[1] if found else None
        if block.get("type") == "document":
            block = {**block, "citations": {"enabled": True}}
            if title and "title" not in block:
                block["title"] = title
            documents += 1
        cited.append(block)
    return cited, documents


def _documents_cited(messages: list[dict[str, Any]]) -> set[bool]:
    return {bool((block.get("citations") or {}).get("enabled"))
            for message in messages if isinstance(message.get("content"), list)
            for block in message["content"] if isinstance(block, dict) and block.get("type") == "document"}


def matching_citations(earlier: list[dict[str, Any]], content: Any) -> Any:
    """The user content, its documents cited like the conversation's: the API takes citations on all the
    documents of a request or on none (https://platform.claude.com/docs/en/build-with-claude/citations). A
    document attached after cited ones is cited too; citations asked for where earlier documents have none is
    one line (ValueError) with the fix, before anything is sent."""
    before = _documents_cited(earlier)
    if before == {True}:
        content = with_citations(content)[0]
    now = _documents_cited([{"content": content}])
    if now and before and before != now:
        raise ValueError("--cite: this conversation has documents without citations, and the API takes citations "
                         "on all of a request's documents or none: start a new conversation (--new) to cite")
    return content


# -- what result blocks say ---------------------------------------------------------------------------------


def safe_url(url: Any) -> str | None:
    """`url` when it is an http(s) URL with a host, else None (javascript:, data:, relative, garbage)."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    if any(ord(char) < 0x20 or char.isspace() for char in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return text


@dataclass(frozen=True)
class Link:
    """A search result, a fetched page, or a cited place: what a list of sources shows."""

    title: str
    url: str | None  # None: not a safe link (shown as text)
    detail: str = ""  # page age, "page 3", ...


def search_results(block: Mapping[str, Any]) -> tuple[list[Link], str | None]:
    """A `web_search_tool_result` block: its results, or its error code."""
    content = block.get("content")
    if isinstance(content, Mapping):
        return [], str(content.get("error_code", "error"))
    links = []
    for item in content if isinstance(content, list) else []:
        if isinstance(item, Mapping):
            url = item.get("url")
            links.append(Link(str(item.get("title") or url or ""), safe_url(url), str(item.get("page_age") or "")))
    return links, None


def fetch_result(block: Mapping[str, Any]) -> tuple[Link | None, str | None]:
    """A `web_fetch_tool_result` block: the page fetched, or its error code."""
    content = block.get("content")
    if not isinstance(content, Mapping):
        return None, "error"
    if content.get("type") != "web_fetch_result":
        return None, str(content.get("error_code", "error"))
    document = content.get("content") if isinstance(content.get("content"), Mapping) else {}
    url = content.get("url")
    title = document.get("title") if isinstance(document, Mapping) else None
    source = document.get("source") if isinstance(document, Mapping) else None
    size = len(source.get("data", "")) if isinstance(source, Mapping) and isinstance(source.get("data"), str) else 0
    return Link(str(title or url or ""), safe_url(url), f"{size:,} characters" if size else ""), None


@dataclass(frozen=True)
class CodeRun:
    """What a code execution result block says."""

    stdout: str = ""
    stderr: str = ""
    return_code: int | None = None
    error: str | None = None  # the result's error code, when the run failed to happen
    summary: str = ""  # a text editor operation: what it did


def code_result(block: Mapping[str, Any]) -> CodeRun:
    content = block.get("content")
    if not isinstance(content, Mapping):
        return CodeRun(error="error")
    kind = str(content.get("type", ""))
    if kind.endswith("_error"):
        return CodeRun(error=str(content.get("error_code", "error")))
    if kind.startswith("text_editor_code_execution"):
        action = kind.removeprefix("text_editor_code_execution_").removesuffix("_result")
        body = content.get("content") if isinstance(content.get("content"), str) else ""
        return CodeRun(stdout=body, summary=action.replace("_", " "))
    code = content.get("return_code")
    return CodeRun(str(content.get("stdout") or ""), str(content.get("stderr") or ""),
                   code if isinstance(code, int) else None)


def call_summary(name: str, tool_input: Any) -> tuple[str, str]:
    """(label, argument) of a server tool call: ("searched", "the query"), ("ran", "the command"), ..."""
    data = tool_input if isinstance(tool_input, Mapping) else {}
    if name in SEARCH_NAMES:
        return "web search", str(data.get("query", ""))
    if name in FETCH_NAMES:
        return "web fetch", str(data.get("url", ""))
    if name == "bash_code_execution":
        return "code execution", str(data.get("command", ""))
    if name == "text_editor_code_execution":
        return f"file {data.get('command', 'edit')}", str(data.get("path", ""))
    if name == "code_execution":
        return "code execution", str(data.get("code", data.get("command", "")))
    return name, ""


def citation_link(citation: Mapping[str, Any]) -> tuple[str, Link]:
    """A citation's source (the key that numbers it) and how it is shown: a web page links to its URL; a
    document's place is its title and where in it, with the quoted text as the title."""
    kind = citation.get("type")
    quoted = str(citation.get("cited_text", ""))
    if kind == "web_search_result_location" or "url" in citation:
        url = citation.get("url")
        return f"url:{url}", Link(str(citation.get("title") or url or ""), safe_url(url), quoted)
    title = str(citation.get("document_title") or f"document {int(citation.get('document_index', 0)) + 1}")
    if kind == "page_location":
        start, end = citation.get("start_page_number"), citation.get("end_page_number")
        where = f"p. {start}" if end in (None, start, (start or 0) + 1) else f"pp. {start}–{int(end) - 1}"
    elif kind == "content_block_location":
        where = f"block {citation.get('start_block_index')}"
    elif kind == "char_location":
        where = f"chars {citation.get('start_char_index')}–{citation.get('end_char_index')}"
    else:
        where = str(kind or "")
    key = f"doc:{citation.get('document_index')}:{where}"
    return key, Link(f"{title}, {where}", None, quoted)


class CitationIndex:
    """Numbers the sources an answer cites, in the order they are first cited: [1], [2], ... (a source cited
    again keeps its number). Shared by every view of one answer, so the cell, the terminal and the export
    number alike."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self.sources: list[Link] = []

    def numbers(self, citations: list[dict[str, Any]]) -> list[tuple[int, Link]]:
        """The (number, link) of each citation of one passage, each source once, in order."""
        seen: dict[int, Link] = {}
        for citation in citations:
            key, link = citation_link(citation)
            number = self._numbers.get(key)
            if number is None:
                self.sources.append(link)
                number = self._numbers[key] = len(self.sources)
            seen.setdefault(number, link)
        return list(seen.items())


def markers_text(numbered: list[tuple[int, Link]]) -> str:
    return "".join(f"[{number}]" for number, _link in numbered)


def sources_text(index: CitationIndex) -> str:
    """The sources list under a cited answer, as plain text."""
    if not index.sources:
        return ""
    lines = ["Sources:"]
    for number, link in enumerate(index.sources, start=1):
        where = f" — {link.url}" if link.url else ""
        lines.append(f"[{number}] {_one_line(link.title)}{where}")
        if link.detail:
            lines.append(f"    “{_one_line(link.detail, 200)}”")
    return "\n".join(lines) + "\n"


def _one_line(text: str, limit: int = 120) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else f"{line[: limit - 1]}…"


def call_text(block: Mapping[str, Any]) -> str:
    """A server tool call as one line of text: `web search “python 3.14”`."""
    label, argument = call_summary(str(block.get("name", "")), block.get("input"))
    if "\n" in argument.strip():
        return f"{label}:\n{argument.rstrip()}\n"
    return f"{label} “{_one_line(argument, 200)}”\n" if argument else f"{label}\n"


def result_text(block: Mapping[str, Any]) -> str:
    """A server tool's result block as text: the links found, the page fetched, the code's output."""
    kind = block.get("type")
    if kind == "web_search_tool_result":
        links, error = search_results(block)
        if error is not None:
            return f"search failed: {error}\n"
        if not links:
            return "no results\n"
        return "".join(f"  {n}. {_one_line(link.title)} — {link.url or '(unsafe link left out)'}\n"
                       for n, link in enumerate(links, start=1))
    if kind == "web_fetch_tool_result":
        link, error = fetch_result(block)
        if error is not None or link is None:
            return f"fetch failed: {error}\n"
        return f"  fetched {_one_line(link.title)} — {link.url or '(unsafe link left out)'}\n"
    run = code_result(block)
    if run.error is not None:
        return f"code execution failed: {run.error}\n"
    out = []
    if run.summary:
        out.append(f"  ({run.summary})\n")
    if run.stdout:
        out.append(run.stdout if run.stdout.endswith("\n") else f"{run.stdout}\n")
    if run.stderr:
        out.append(f"stderr:\n{run.stderr}" + ("" if run.stderr.endswith("\n") else "\n"))
    if run.return_code is not None:
        out.append(f"(return code {run.return_code})\n")
    return "".join(out)


def outcome_text(block: Mapping[str, Any] | None) -> str:
    """What a server tool's result block came to, in a few words: "3 results", "fetched “Title”",
    "return code 0", "failed: max_uses_exceeded"; "no result" when the call has none (a cut-off answer)."""
    if block is None:
        return "no result"
    kind = block.get("type")
    if kind == "web_search_tool_result":
        links, error = search_results(block)
        if error is not None:
            return f"failed: {error}"
        return f"{len(links)} result{'s' * (len(links) != 1)}"
    if kind == "web_fetch_tool_result":
        link, error = fetch_result(block)
        if error is not None or link is None:
            return f"failed: {error}"
        return f"fetched “{_one_line(link.title, 80)}”" if link.title and link.title != link.url else "fetched"
    run = code_result(block)
    if run.error is not None:
        return f"failed: {run.error}"
    if run.summary:
        return run.summary
    return f"return code {run.return_code}" if run.return_code is not None else "ran"


def call_line(call: Mapping[str, Any], result: Mapping[str, Any] | None) -> str:
    """A server tool call and its result as one line: `web search “python 3.14” → 3 results`."""
    label, argument = call_summary(str(call.get("name", "")), call.get("input"))
    shown = f" “{_one_line(argument, 120)}”" if argument.strip() else ""
    return f"{label}{shown} → {outcome_text(result)}"


# -- Markdown (the conversation export) --------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def markdown_escape(text: str) -> str:
    """`text` as literal Markdown text: every character Markdown could read as syntax backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text, 300))


def markdown_link(link: Link) -> str:
    """`[title](url)`, the URL percent-escaped where Markdown would end it; plain text when it is not safe."""
    title = markdown_escape(link.title) or "link"
    if link.url is None:
        return title
    url = link.url.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    return f"[{title}]({url})"


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def block_markdown(block: Mapping[str, Any], index: CitationIndex) -> str | None:
    """A content block of history as Markdown for the export; None for kinds this module does not draw."""
    kind = block.get("type")
    if kind == "text" and block.get("citations"):
        marks = "".join(f"[\\[{number}\\]]({link.url})" if link.url else f"\\[{number}\\]"
                        for number, link in index.numbers(list(block["citations"])))
        return f"{block.get('text', '')}{marks}"
    if kind == "server_tool_use":
        label, argument = call_summary(str(block.get("name", "")), block.get("input"))
        if label == "code execution" or "\n" in argument.strip():
            fence = _fence(argument)
            return f"*{label}*\n\n{fence}\n{argument.rstrip()}\n{fence}"
        return f"*{label}* “{markdown_escape(argument)}”"
    if kind == "web_search_tool_result":
        links, error = search_results(block)
        if error is not None:
            return f"*search failed: {markdown_escape(error)}*"
        return "\n".join(f"{n}. {markdown_link(link)}" for n, link in enumerate(links, start=1)) or "*no results*"
    if kind == "web_fetch_tool_result":
        link, error = fetch_result(block)
        if link is None:
            return f"*fetch failed: {markdown_escape(str(error))}*"
        return f"*fetched* {markdown_link(link)}"
    if kind in RESULT_KINDS:
        text = result_text(block)
        fence = _fence(text)
        return f"{fence}\n{text.rstrip()}\n{fence}"
    return None


def sources_markdown(index: CitationIndex) -> str:
    """The numbered sources list after a cited answer in the export."""
    if not index.sources:
        return ""
    lines = ["**Sources**", ""]
    for number, link in enumerate(index.sources, start=1):
        quoted = f" — “{markdown_escape(link.detail)}”" if link.detail else ""
        lines.append(f"{number}. {markdown_link(link)}{quoted}")
    return "\n".join(lines)


__all__ = ["CODE_NAMES", "CitationIndex", "CodeRun", "FETCH_NAMES", "KINDS", "Link", "RESULT_KINDS", "SEARCH_NAMES",
           "ServerToolError", "ServerToolSpec", "WEB_SEARCH_USD_PER_SEARCH", "block_markdown", "call_line",
           "call_summary", "call_text", "citation_link", "code_result", "fetch_result", "markdown_escape",
           "markdown_link", "matching_citations", "markers_text", "newest_version", "outcome_text", "parse_spec",
           "result_text", "safe_url", "search_results", "server_tool_definitions", "sources_markdown",
           "sources_text", "with_citations"]
