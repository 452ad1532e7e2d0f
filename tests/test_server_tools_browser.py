"""Server tools' views run no payload: search titles, snippets and URLs, fetched pages, code output, queries,
tool names and cited passages are untrusted. The XSS corpus (`fixtures/xss_payloads.json`) goes through every
new view in Python (the allow-list checker of test_xss_browser), then through the real magic in JupyterLab +
Chromium, live and final, where nothing may execute, navigate or load, and every link must open safely
(http(s) only, a new tab, rel="noopener noreferrer")."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, write_notebook
from test_xss_browser import (
    CORPUS,
    PACE,
    assert_dom_inert,
    assert_inert,
    assert_page_clean,
    lab_for_xss,
    open_watched,
)

from claude_magic.core.history import Conversation
from claude_magic.core.server_tools import CitationIndex
from claude_magic.core.turn import Block, TurnState
from claude_magic.emulator import Emulator
from claude_magic.render.server_view import markers_html, server_call_html, server_result_html, sources_html
from claude_magic.render.view import IncrementalView, answer_bundle
from claude_magic.surfaces.history_view import HistoryView

PAYLOADS = [p["payload"] for p in CORPUS]
HOSTILE_URLS = ["javascript:window.__xss=(window.__xss||[]).concat(900)", "data:text/html,<script>x</script>",
                " JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "//attacker.example/x", "vbscript:x"]
GOOD_URL = "https://www.python.org/news/"


def _results() -> list[dict[str, Any]]:
    results = [{"title": payload, "url": f"https://example.com/?q={payload}", "text": payload}
               for payload in PAYLOADS]
    results += [{"title": f"hostile url {n}", "url": url, "text": "x"} for n, url in enumerate(HOSTILE_URLS)]
    return [{"title": "Python news", "url": GOOD_URL, "text": "Python 3.14 is out."}, *results]


def script() -> dict[str, Any]:
    everything = "\n".join(PAYLOADS)
    content = [
        {"type": "web_search", "query": everything, "results": _results()},
        {"type": "text", "text": "Cited: "},
        {"type": "text", "text": everything[:2000], "citations": [{"url": GOOD_URL}, *(
            {"url": f"https://example.com/?q={payload}", "cited_text": payload} for payload in PAYLOADS[:20])]},
        {"type": "web_fetch", "url": HOSTILE_URLS[0], "title": everything, "text": everything},
        {"type": "web_fetch", "url": f"https://example.com/{PAYLOADS[0]}", "title": PAYLOADS[1], "text": "page"},
        {"type": "code_execution", "command": everything, "stdout": everything, "stderr": everything,
         "return_code": 1},
        # A call whose input keys and values are payloads. (Its name is one the API sends: server tool names are a
        # fixed set, a Literal in the SDK, and SDK 2.5 cannot read a stream naming another; a hostile name is
        # drawn by the views in the tests above.)
        {"type": "server_tool_use", "name": "bash_code_execution", "input": {"command": everything,
                                                                              PAYLOADS[2]: PAYLOADS[3]}},
        {"type": "text", "text": "End of server tools."},
    ]
    return {"pace": PACE, "turns": [{"match": "xss-server-tools", "content": content}]}


def _state(*blocks: Block) -> TurnState:
    state = TurnState(model="claude-test", prompt="p", started_at=0.0, status="complete")
    state.blocks, state.finished_at = list(blocks), 1.0
    return state


def _without_new_tab(markup: str, *, every_link: bool = True) -> str:
    """The server views' links open in a new tab; the shared checker's allow-list (kept independent on purpose)
    has no `target`: a link may carry only target="_blank" (`every_link`: each one must), which is then taken
    out and the rest checked as usual. (Links Claude writes in its Markdown answer keep their own rendering.)"""
    anchors = re.findall(r"<a [^>]*>", markup)
    for anchor in anchors:
        if every_link or "target=" in anchor:
            assert ' target="_blank" rel="noopener noreferrer"' in anchor, anchor
    return markup.replace(' target="_blank"', "")


def _hrefs(markup: str) -> list[str]:
    """The href of every real <a> element the server views drew (they open a new tab; text that looks like a
    link is not one, and the links of Claude's own Markdown are test_xss_browser's)."""
    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            fields = dict(attrs)
            if tag == "a" and fields.get("target") == "_blank":
                found.append(fields.get("href") or "")

    Links().feed(markup)
    return found


@pytest.mark.parametrize("payload", CORPUS, ids=[p["id"] for p in CORPUS])
def test_every_server_view_renders_a_payload_inert(payload: dict[str, Any]) -> None:
    text = payload["payload"]
    blocks = [
        Block("server_tool_use", parts=[json.dumps({"query": text})], tool_id="srvtoolu_1", tool_name="web_search",
              complete=True),
        Block("server_tool_use", parts=[json.dumps({"command": text})], tool_id="srvtoolu_2", tool_name=text,
              complete=True),
        Block("web_search_tool_result", complete=True, extra={"type": "web_search_tool_result", "content": [
            {"type": "web_search_result", "title": text, "url": url, "encrypted_content": "e", "page_age": text}
            for url in (f"https://e.com/{text}", text, *HOSTILE_URLS)]}),
        Block("web_search_tool_result", complete=True, extra={"content": {"error_code": text}}),
        Block("web_fetch_tool_result", complete=True, extra={"type": "web_fetch_tool_result", "content": {
            "type": "web_fetch_result", "url": text, "content": {"type": "document", "title": text,
                                                                 "source": {"data": text}}}}),
        Block("bash_code_execution_tool_result", complete=True, extra={"content": {
            "type": "bash_code_execution_result", "stdout": text, "stderr": text, "return_code": 1}}),
        Block("text", parts=[text], complete=True, citations=[
            {"type": "web_search_result_location", "url": url, "title": text, "cited_text": text}
            for url in (text, f"https://e.com/{text}", *HOSTILE_URLS)] + [
            {"type": "char_location", "document_title": text, "cited_text": text, "document_index": 0,
             "start_char_index": 0, "end_char_index": 1}]),
    ]
    for block in blocks:
        if block.kind == "server_tool_use":
            for live in (True, False):
                assert_inert(server_call_html(block, live=live), f"call ({block.tool_name[:20]})")
        elif block.kind != "text":
            assert_inert(_without_new_tab(server_result_html(block)), block.kind)
    index = CitationIndex()
    assert_inert(_without_new_tab(markers_html(index.numbers(blocks[-1].citations))), "markers")
    assert_inert(_without_new_tab(sources_html(index)), "sources")
    whole = answer_bundle(_state(*blocks))["text/html"]
    assert_inert(_without_new_tab(whole, every_link=False), "answer_bundle")
    hrefs = _hrefs(whole)
    assert all(href.startswith("https://e.com/") for href in hrefs), hrefs  # only http(s) URLs become links
    view = IncrementalView()
    state = _state(*blocks)
    state.status = "streaming"
    frozen, tail = view.advance(state)
    assert_inert(_without_new_tab((frozen.html if frozen else "") + tail.html, every_link=False), "live frames")
    # `%claude history`: each call on one line, the cited passage's markers and the sources, from history.
    conversation = Conversation("xss-server-history")
    conversation.commit("q", [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": text}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": blocks[2].extra["content"]},
        {"type": "server_tool_use", "id": "srvtoolu_2", "name": "web_fetch", "input": {"url": text}},
        {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_2", "content": blocks[4].extra["content"]},
        {"type": "server_tool_use", "id": "srvtoolu_3", "name": text, "input": {"command": text}},
        {"type": "text", "text": text, "citations": blocks[-1].citations}])
    history = HistoryView(conversation)._repr_mimebundle_()["text/html"]
    assert_inert(history, "%claude history")
    # Below Claude's own Markdown, our links only (an unclosed fence in the answer keeps it all as code).
    sources = history.partition("<strong>Sources</strong>")[2]
    assert all(href.startswith("https://e.com/") for href in re.findall(r'<a href="([^"]*)"', sources))


@pytest.mark.browser
def test_server_tool_views_run_no_payload_in_jupyterlab(
    jupyterlab_factory: Callable[..., JupyterLab], emulator: Emulator, api_env: dict[str, str],
    lab_page: Any, artifacts: Path,
) -> None:
    emulator.set_script(script())
    lab = lab_for_xss(jupyterlab_factory, api_env)
    cells = ["%load_ext claude_magic",
             # The fetched URLs are in the prompt: Claude fetches only URLs the conversation holds.
             "%%claude -c xss-server --web-search --web-fetch --code-execution\nxss-server-tools: search, then "
             f"fetch {HOSTILE_URLS[0]} and https://example.com/{PAYLOADS[0]}",
             "%claude -c xss-server export xss-server.md\nprint(open('xss-server.md').read()[:100])",
             "from claude_magic import ChatPanel\nChatPanel(conversation='xss-server')"]
    write_notebook(lab.root_dir / "xss_server_tools.ipynb", cells)
    nb, watch, title = open_watched(lab_page, lab, "xss_server_tools.ipynb")
    url = lab_page.url
    nb.run_all(timeout=90)
    nb.wait_output_text(1, "stop_reason", timeout=60)
    lab_page.wait_for_timeout(500)  # late handlers (image errors, MathJax typesetting) get their chance

    output = nb.output(1)
    text = "\n".join(nb.output_texts(1))
    assert "End of server tools." in text and "1 web search" in text and "Sources" in text
    # Our links open in a new tab without an opener. (JupyterLab rewrites the rel of every target=_blank link it
    # renders to "noopener": the HTML we send says "noopener noreferrer", checked in the test above.)
    results = output.locator(".claude-magic-search-results a")
    linkable = [r["url"] for r in _results() if not re.search(r"\s", r["url"]) and r["url"].startswith("https://")]
    assert results.count() == len(linkable) > 5  # every http(s) result is a link, no other one is
    assert {rel for rel in results.evaluate_all("els => els.map((a) => a.target + ' ' + a.rel)")} <= {
        "_blank noopener", "_blank noopener noreferrer"}
    hrefs: list[str] = output.locator("a[href]").evaluate_all("els => els.map((a) => a.href)")
    assert GOOD_URL in hrefs
    assert all(href.startswith(("https://", "http://")) for href in hrefs), [h for h in hrefs if "http" not in h]
    # (The page's own DOM holds JupyterLab's MathJax typesetting of `$...$` in the payloads, so it is checked by
    # the page scanner below, which knows MathJax's elements, not by the Python allow-list.)
    assert assert_dom_inert(nb.output(2), "export cell") >= 1
    # The panel redraws the same turn from history: its links look like links, as in the cell (an ipywidgets
    # HTML widget gets none of JupyterLab's rendered-Markdown styles).
    panel_links = nb.output(3).locator(".claude-magic-panel .widget-html-content a[href]")
    panel_links.first.wait_for(timeout=30_000)
    colour = "(el) => getComputedStyle(el).color"
    assert panel_links.first.evaluate(colour) == results.first.evaluate(colour)
    assert panel_links.first.evaluate(colour) != nb.output(3).locator(".claude-panel-user").first.evaluate(colour)
    assert_page_clean(nb, watch, title, url)
    nb.screenshot(artifacts / "server-tools.png", full_page=True)
