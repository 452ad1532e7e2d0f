"""Server tools (web search, web fetch, code execution) and citations, served the way the API serves them.

Definitions are checked like the API checks them (400 invalid_request_error, pydantic-style locations as in the
API's other messages): the `type` must be one of the tool versions the API knows (read from the installed SDK's
`ToolUnionParam`), the `name` the one that version takes, only its own fields, `max_uses` at least 1, and not
both `allowed_domains` and `blocked_domains`
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool, "Domain filtering": "You can
use either allowed_domains or blocked_domains, but not both in the same request"; domains are written without
the scheme).

A reply uses them through script blocks (SCRIPT_FORMAT.md, "Server tools"): `web_search`, `web_fetch` and
`code_execution` shorthands expand to the `server_tool_use` block and its result block; a text block's
`citations` point at a search result (`web_search_result_location`) or a document of the request
(`char_location` for text, `page_location` for a PDF, `content_block_location` for a content document,
https://platform.claude.com/docs/en/build-with-claude/citations). Without a script the default reply uses the
tools the request offers. The server-side loop stops after MAX_ITERATIONS tool calls with `pause_turn`
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/server-tools, "The server-side loop and
pause_turn": the default limit is 10 iterations); the paused answer sent back goes on where it stopped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import typing
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from ._errors import ApiError

MAX_ITERATIONS = 10  # server tool calls in one response before the API pauses the turn (pause_turn)
SERVER_FAMILIES = ("web_search", "web_fetch", "code_execution")
RESULT_TYPES = {"web_search": "web_search_tool_result", "web_fetch": "web_fetch_tool_result",
                "bash_code_execution": "bash_code_execution_tool_result",
                "text_editor_code_execution": "text_editor_code_execution_tool_result",
                "code_execution": "code_execution_tool_result"}
SHORTHANDS = ("web_search", "web_fetch", "code_execution")


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


@cache
def tool_versions() -> dict[str, tuple[str, frozenset[str]]]:
    """Every tool `type` the installed SDK's ToolUnionParam knows: its required name and its fields."""
    from anthropic.types import ToolUnionParam

    versions: dict[str, tuple[str, frozenset[str]]] = {}
    for param in typing.get_args(ToolUnionParam):
        hints = typing.get_type_hints(param, include_extras=True)
        kind = _literal(hints.get("type"))
        name = _literal(hints.get("name"))
        if kind is not None and kind != "custom":
            versions[kind] = (name or "", frozenset(hints))
    return versions


def _literal(hint: Any) -> str | None:
    while hint is not None and typing.get_origin(hint) is not typing.Literal:
        args = typing.get_args(hint)
        if not args:
            return None
        hint = args[0]
    return typing.get_args(hint)[0] if hint is not None else None


# Where each 400 below comes from. The API's own pages give the rules but not the messages; the wordings marked
# "seen" are the API's answers as users quoted them, the rest are not documented anywhere we could find (the
# docs corpus, GitHub issues and public code were searched) and follow the pydantic style of the seen ones:
# - unknown `type`, seen: "tools.0: Input tag 'web_search_20250305' found using 'type' does not match any of the
#   expected tags: 'bash_20250124', 'custom', 'text_editor_20250124'" (https://github.com/anthropics/
#   anthropic-sdk-python/issues/948): the expected tags sorted, 'custom' among them.
# - wrong `name`, seen: "tools.0.web_search_20250305.name: Input should be 'web_search'"
#   (https://github.com/router-for-me/CLIProxyAPI/issues/1094).
# - a field the version does not take, seen: "tools.0.custom.defer_loading: Extra inputs are not permitted"
#   (https://github.com/anthropics/claude-code/issues/31033).
# - `max_uses: 0`, seen: "tools.0.web_search_20260209.max_uses: Input should be greater than 0" (a project's notes
#   from the real API, github.com/cellear/factcheck-site, AMS/HANDOFF/handoff-2026-08-26-s1-2-spike-script-cody.md).
#   A non-integer's "Input should be a valid integer" is pydantic's wording, not documented for this field.
# - both domain lists: the rule is documented ("You can use either allowed_domains or blocked_domains, but not
#   both in the same request", web-search-tool page, "Domain filtering"); the message's wording is not.
# - a domain with a scheme: the page says only "Domains should not include the HTTP/HTTPS scheme (use
#   example.com instead of https://example.com)"; that the API answers 400, and with which words, is not
#   documented. The emulator refuses it so a client that writes one finds out offline.
BOTH_DOMAIN_LISTS = "Only one of allowed_domains or blocked_domains can be specified, not both."


def check_server_tool(i: int, tool: dict[str, Any]) -> None:
    """400 for a server tool definition the API would reject (see the module docstring)."""
    kind = tool.get("type")
    versions = tool_versions()
    if kind not in versions:
        expected = ", ".join(repr(k) for k in sorted(("custom", *versions)))
        raise _bad(f"tools.{i}: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
                   f"{expected}")
    name, fields = versions[kind]
    where = f"tools.{i}.{kind}"
    if name and tool.get("name") != name:
        raise _bad(f"{where}.name: Input should be {name!r}")
    for key in tool:
        if key not in fields:
            raise _bad(f"{where}.{key}: Extra inputs are not permitted")
    max_uses = tool.get("max_uses")
    if max_uses is not None and (isinstance(max_uses, bool) or not isinstance(max_uses, int)):
        raise _bad(f"{where}.max_uses: Input should be a valid integer")
    if max_uses is not None and max_uses < 1:
        raise _bad(f"{where}.max_uses: Input should be greater than 0")
    allowed, blocked = tool.get("allowed_domains"), tool.get("blocked_domains")
    for key, value in (("allowed_domains", allowed), ("blocked_domains", blocked)):
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _bad(f"{where}.{key}: Input should be a valid list of strings")
        for domain in value:
            if "://" in domain:  # wording not documented (see above)
                raise _bad(f"{where}.{key}: Domains should not include the HTTP/HTTPS scheme: {domain!r}")
    if allowed and blocked:  # wording not documented (see above)
        raise _bad(f"{where}: {BOTH_DOMAIN_LISTS}")


def offered(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request's server tools by family (web_search, web_fetch, code_execution)."""
    found: dict[str, dict[str, Any]] = {}
    for tool in body.get("tools") or []:
        kind = str(tool.get("type", "custom")) if isinstance(tool, dict) else "custom"
        for family in SERVER_FAMILIES:
            if kind.startswith(f"{family}_"):
                found[family] = tool
    return found


# -- documents with citations on ----------------------------------------------------------------------------


def check_citation_settings(body: dict[str, Any]) -> None:
    """Citations on all of a request's documents or on none: "Currently, citations must be enabled on all or
    none of the documents within a request" (https://platform.claude.com/docs/en/build-with-claude/citations).
    The rule is documented, the wording of the API's 400 is not (no user quotes it in an issue or in public
    code either): this message is the page's sentence."""
    settings = {bool((d.get("citations") or {}).get("enabled")) for d in cited_documents(body)}
    if len(settings) > 1:
        raise _bad("Citations must be enabled on all or none of the documents within a request.")


def cited_documents(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The documents of the request, in order (document_index counts them all), each a dict with its text."""
    documents = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "document":
                documents.append(block)
    return documents


def _document_text(document: dict[str, Any]) -> str:
    source = document.get("source") or {}
    if source.get("type") == "text":
        return str(source.get("data", ""))
    if source.get("type") == "content":
        return "".join(str(b.get("text", "")) for b in source.get("content") or [] if isinstance(b, dict))
    if source.get("type") == "base64" and source.get("media_type") == "text/plain":
        try:
            return base64.b64decode(source.get("data", "")).decode("utf-8", "replace")
        except ValueError:
            return ""
    return ""


def document_citation(documents: list[dict[str, Any]], index: int, cited: str | None) -> dict[str, Any] | None:
    """A citation of document `index` (of those with citations on): the quoted text's place, in the location
    type the document's kind gets (plain text: char_location; PDF: page_location; content: content_block_location).
    `cited`: the text to quote (default: the document's first sentence)."""
    if not 0 <= index < len(documents):
        return None
    document = documents[index]
    if not (document.get("citations") or {}).get("enabled"):
        return None
    source = document.get("source") or {}
    title = document.get("title")
    base = {"document_index": index, "document_title": title}
    if source.get("type") == "content":
        blocks = [str(b.get("text", "")) for b in source.get("content") or [] if isinstance(b, dict)]
        position = next((n for n, text in enumerate(blocks) if cited and cited in text), 0)
        return {"type": "content_block_location", "cited_text": blocks[position] if blocks else "", **base,
                "start_block_index": position, "end_block_index": position + 1}
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        return {"type": "page_location", "cited_text": cited or "", **base, "start_page_number": 1,
                "end_page_number": 2}
    text = _document_text(document)
    if not cited:
        cited = text.split(". ")[0].strip()[:200]
    start = max(text.find(cited), 0)
    return {"type": "char_location", "cited_text": cited, **base, "start_char_index": start,
            "end_char_index": start + len(cited)}


# -- building the reply's blocks ----------------------------------------------------------------------------


def _encrypted(*parts: str) -> str:
    """An opaque value standing for the API's encrypted content / index (stable for the same input)."""
    return base64.b64encode(hashlib.sha256("\x00".join(parts).encode()).digest()).decode()


def _domain_ok(url: str, tool: dict[str, Any]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    path = f"{host}{urlsplit(url).path}"

    def matches(domain: str) -> bool:
        domain = domain.lower().removeprefix("*.")
        bare = domain.split("/", 1)[0]
        return (host == bare or host.endswith(f".{bare}")) and ("/" not in domain or path.startswith(domain))

    if tool.get("allowed_domains"):
        return any(matches(d) for d in tool["allowed_domains"])
    return not any(matches(d) for d in tool.get("blocked_domains") or [])


class ServerToolRun:
    """Expands one reply's server tool blocks for one request: ids, max_uses, domains, the iteration limit."""

    def __init__(self, body: dict[str, Any], new_id: Callable[[], str]) -> None:
        self.tools = offered(body)
        self.documents = cited_documents(body)
        self._new_id = new_id
        self.uses: dict[str, int] = {}
        self.results: dict[str, dict[str, Any]] = {}  # url -> search result, for citations
        self.calls = 0
        # What the conversation holds so far: a fetch needs its URL there (or in a result of this reply).
        self._context = json.dumps(body.get("messages") or [], ensure_ascii=False)

    def expand(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        """The blocks a script block stands for (a shorthand: the call and its result); [] when the request
        does not offer that tool (the model cannot call it)."""
        kind = block["type"]
        if kind == "text":
            return [self._cited_text(block)]
        if kind in SHORTHANDS:
            if kind not in self.tools:
                return []
            return getattr(self, f"_{kind}")(block)
        if kind == "server_tool_use":
            self.calls += 1
            return [{"type": "server_tool_use", "id": block.get("id") or self._new_id(), "name": block["name"],
                     "input": dict(block["input"])}]
        return [block]  # thinking, a result block written out in full: sent as it is

    def _call(self, name: str, tool_input: dict[str, Any], family: str) -> tuple[dict[str, Any], str | None]:
        """The server_tool_use block, and the error code when max_uses is used up."""
        self.calls += 1
        self.uses[family] = self.uses.get(family, 0) + 1
        limit = self.tools[family].get("max_uses")
        error = "max_uses_exceeded" if limit is not None and self.uses[family] > limit else None
        return {"type": "server_tool_use", "id": self._new_id().replace("toolu_", "srvtoolu_"), "name": name,
                "input": tool_input}, error

    def _web_search(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        call, error = self._call("web_search", {"query": block["query"]}, "web_search")
        if error is None:
            error = block.get("error")
        if error is not None:
            content: Any = {"type": "web_search_tool_result_error", "error_code": error}
        else:
            content = []
            for result in block.get("results") or []:
                url = str(result["url"])
                if not _domain_ok(url, self.tools["web_search"]):
                    continue
                item = {"type": "web_search_result", "url": url, "title": str(result.get("title", url)),
                        "encrypted_content": _encrypted(url, str(result.get("text", ""))),
                        "page_age": result.get("page_age")}
                self.results[url] = {**item, "text": str(result.get("text", ""))}
                content.append(item)
        return [call, {"type": "web_search_tool_result", "tool_use_id": call["id"], "content": content}]

    def _web_fetch(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        url = str(block["url"])
        call, error = self._call("web_fetch", {"url": url}, "web_fetch")
        if error is None:
            error = block.get("error") or (None if _domain_ok(url, self.tools["web_fetch"]) else "url_not_allowed")
        if error is None and url not in self._context and url not in self.results:
            # "Claude can only fetch URLs that have been explicitly provided by the user or that come from
            # previous web search or web fetch results" (web-fetch-tool page): url_not_in_prior_context.
            error = "url_not_in_prior_context"
        if error is None:
            self._context += url
        if error is not None:
            content: dict[str, Any] = {"type": "web_fetch_tool_result_error", "error_code": error}
        else:
            document: dict[str, Any] = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                                       "data": str(block.get("text", ""))}}
            if block.get("title"):
                document["title"] = str(block["title"])
            if (self.tools["web_fetch"].get("citations") or {}).get("enabled"):
                document["citations"] = {"enabled": True}
            content = {"type": "web_fetch_result", "url": url, "content": document,
                       "retrieved_at": "2026-01-01T00:00:00Z"}
        return [call, {"type": "web_fetch_tool_result", "tool_use_id": call["id"], "content": content}]

    def _code_execution(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        call, error = self._call("bash_code_execution", {"command": str(block["command"])}, "code_execution")
        if error is not None or block.get("error"):
            content: dict[str, Any] = {"type": "bash_code_execution_tool_result_error",
                                       "error_code": error or block["error"]}
        else:
            content = {"type": "bash_code_execution_result", "stdout": str(block.get("stdout", "")),
                       "stderr": str(block.get("stderr", "")), "return_code": int(block.get("return_code", 0)),
                       "content": []}
        return [call, {"type": "bash_code_execution_tool_result", "tool_use_id": call["id"], "content": content}]

    def _cited_text(self, block: dict[str, Any]) -> dict[str, Any]:
        wanted = block.get("citations")
        text = {"type": "text", "text": block["text"]}
        if not wanted:
            return text
        citations = []
        for item in wanted:
            if "url" in item:
                found = self.results.get(str(item["url"]))
                if found is None:
                    continue  # a result that was not returned (not offered, filtered out) cannot be cited
                cited = str(item.get("cited_text") or found["text"] or block["text"])[:150]
                citations.append({"type": "web_search_result_location", "url": found["url"], "title": found["title"],
                                  "encrypted_index": _encrypted(found["url"], cited), "cited_text": cited})
            else:
                citation = document_citation(self.documents, int(item.get("document", 0)), item.get("cited_text"))
                if citation is not None:
                    citations.append(citation)
        if citations:
            text["citations"] = citations
        return text


def expand_blocks(blocks: list[dict[str, Any]], body: dict[str, Any],
                  new_id: Callable[[], str]) -> list[dict[str, Any]]:
    """The reply's blocks with server tool shorthands expanded and citations resolved (blocks that need no
    change are the same objects)."""
    run = ServerToolRun(body, new_id)
    return [expanded for block in blocks for expanded in run.expand(block)]


def resumed_blocks(body: dict[str, Any]) -> int:
    """A paused server-tool answer sent back to go on (the request ends with it): how many of its blocks,
    thinking aside, the reply has already sent. 0 when the request does not resume one."""
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content") if isinstance(last, dict) and last.get("role") == "assistant" else None
    if not isinstance(content, list) or not any(
            isinstance(b, dict) and b.get("type") == "server_tool_use" for b in content):
        return 0
    return sum(1 for b in content if isinstance(b, dict) and b.get("type") not in ("thinking", "redacted_thinking"))


def iteration_cut(blocks: list[dict[str, Any]]) -> tuple[int, dict[str, int], bool]:
    """Where the server-side loop pauses (after MAX_ITERATIONS calls): how many blocks are sent, the
    usage.server_tool_use counts of those, and whether it paused."""
    calls = 0
    counts = {"web_search_requests": 0, "web_fetch_requests": 0}
    for n, block in enumerate(blocks):
        if block["type"] == "server_tool_use":
            if calls >= MAX_ITERATIONS:
                return n, counts, True
            calls += 1
            key = {"web_search": "web_search_requests", "web_fetch": "web_fetch_requests"}.get(block["name"])
            if key is not None:
                counts[key] += 1
    return len(blocks), counts, False


def default_server_blocks(body: dict[str, Any], prompt: str) -> list[dict[str, Any]] | None:
    """The default reply when the request offers server tools: use each one once, then answer citing what
    was found. None when no server tool is offered (and no document asks for citations)."""
    tools = offered(body)
    documents = [d for d in cited_documents(body) if (d.get("citations") or {}).get("enabled")]
    if not tools and not documents:
        return None
    query = " ".join(prompt.split())[:80] or "offline emulator"
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "*(Offline emulator, not Claude.)* "}]
    if "web_search" in tools:
        slug = "".join(ch if ch.isalnum() else "-" for ch in query.lower())[:40].strip("-") or "query"
        results = [{"title": f"Emulated result {n} for “{query}”", "url": f"https://example.com/{slug}/{n}",
                    "text": f"Made-up search result {n}: no web page was read."} for n in (1, 2)]
        blocks += [{"type": "web_search", "query": query, "results": results},
                   {"type": "text", "text": "The emulated search found two made-up pages",
                    "citations": [{"url": results[0]["url"]}, {"url": results[1]["url"]}]},
                   {"type": "text", "text": ". "}]
    url = next((word.strip("<>()[].,;\"'") for word in prompt.split() if word.startswith(("http://", "https://"))),
               None)
    if "web_fetch" in tools and url is not None:  # a URL the prompt gives: Claude fetches only those
        blocks += [{"type": "web_fetch", "url": url, "title": "Emulated page",
                    "text": "This page was not fetched: the offline emulator made it up."},
                   {"type": "text", "text": f"I fetched {url} (emulated). "}]
    if "code_execution" in tools:
        blocks += [{"type": "code_execution", "command": "python -c 'print(6 * 7)'", "stdout": "42\n", "stderr": "",
                    "return_code": 0},
                   {"type": "text", "text": "The emulated code run printed 42. "}]
    if documents:
        blocks.append({"type": "text", "text": "Your document begins with a sentence worth quoting",
                       "citations": [{"document": 0}]})
        blocks.append({"type": "text", "text": "."})
    return blocks


def block_cost_text(block: dict[str, Any]) -> str | None:
    """The text a server tool block costs output tokens for (its call's input), None for result blocks (the
    API counts those as input of the next iteration, not as output)."""
    import json

    if block["type"] == "server_tool_use":
        return json.dumps(block["input"], ensure_ascii=False)
    return None


__all__ = ["MAX_ITERATIONS", "check_server_tool", "default_server_blocks", "document_citation", "expand_blocks",
           "iteration_cut", "offered", "resumed_blocks", "tool_versions"]
