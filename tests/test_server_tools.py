"""Server tools and citations end to end (the emulator over HTTP, the real SDK): the flags and options, what
history keeps (server tool blocks exactly as received), the reducer's citations, a paused server-side loop
resumed into one answer, and what the cell, the terminal and the Markdown export show — links escaped and
sanitized, citations numbered after the cited text with a sources list."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from claude_magic.core.history import STORE
from claude_magic.core.pricing import estimate_cost
from claude_magic.core.server_tools import (
    WEB_SEARCH_USD_PER_SEARCH,
    ServerToolError,
    newest_version,
    parse_spec,
    safe_url,
)
from claude_magic.core.turn import Usage
from claude_magic.emulator import Emulator
from claude_magic.emulator._server_tools import MAX_ITERATIONS
from claude_magic.render.view import answer_bundle
from claude_magic.surfaces.api import ask
from claude_magic.surfaces.magic import ClaudeMagics, split_options

PAGES = [{"title": "Python 3.14 <b>released</b>", "url": "https://www.python.org/news/314",
          "text": "Python 3.14 is out.", "page_age": "2 days ago"},
         {"title": "Hostile \" onmouseover=\"alert(1)", "url": "javascript:alert(document.domain)",
          "text": "<img src=x onerror=alert(1)>"}]
SCRIPT = {"turns": [
    {"match": "latest python", "content": [
        {"type": "web_search", "query": "latest python <release>", "results": PAGES},
        {"type": "text", "text": "The newest release: "},
        {"type": "text", "text": "Python 3.14 is out", "citations": [{"url": PAGES[0]["url"]}]},
        {"type": "text", "text": ", with free threading."},
        {"type": "code_execution", "command": "python -c 'import sys; print(sys.version)'",
         "stdout": "3.14.0 <script>alert(1)</script>\n", "stderr": "warning: `x`", "return_code": 3}]},
    {"match": "keep searching", "content": [
        *({"type": "web_search", "query": f"query {n}", "results": PAGES[:1]} for n in range(MAX_ITERATIONS + 1)),
        {"type": "text", "text": "Searched everything."}]},
    {"match": "What do the notes say", "content": [
        {"type": "text", "text": "The notes say the launch moved", "citations": [
            {"document": 0, "cited_text": "The launch moved to May."}]},
        {"type": "text", "text": "."}]},
]}


@pytest.fixture
def scripted(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    return emulator


def test_flag_options_parse_into_the_apis_fields() -> None:
    spec = parse_spec("web_search", "max_uses=3,allowed=example.com,python.org")
    assert spec is not None and spec.definition() == {
        "type": newest_version("web_search"), "name": "web_search", "max_uses": 3,
        "allowed_domains": ["example.com", "python.org"]}
    assert parse_spec("web_fetch", {"blocked_domains": ["a.com"]}).definition()["blocked_domains"] == ["a.com"]
    assert parse_spec("code_execution", "off") is None and parse_spec("web_search", True) is not None
    for bad, fix in (("allowed=a.com,blocked=b.com", "not both"), ("max_uses=0", "at least 1"),
                     ("allowed=https://a.com", "without a scheme"), ("colour=red", "unknown option")):
        with pytest.raises(ServerToolError, match=fix):
            parse_spec("web_search", bad)


def test_a_line_prompt_after_a_server_tool_flag_stays_the_prompt() -> None:
    parser = ClaudeMagics.claude.parser
    options, prompt = split_options("--web-search What changed in Python 3.14", parser)
    assert (parser.parse_args(options).web_search, prompt) == ("on", "What changed in Python 3.14")
    options, prompt = split_options("--web-fetch=max_uses=2,allowed=python.org --cite Summarise it", parser)
    args = parser.parse_args(options)
    assert (args.web_fetch, args.cite, prompt) == ("max_uses=2,allowed=python.org", True, "Summarise it")


def test_safe_url_keeps_only_http_links() -> None:
    assert safe_url("https://example.com/a?b=1") == "https://example.com/a?b=1"
    for url in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>", "//evil.com",
                "/relative", "https://exa mple.com", "http:\\\\evil", "https://a.com/\nx", None, 42):
        assert safe_url(url) is None, url


def test_history_keeps_server_tool_blocks_exactly_as_received(scripted: Emulator) -> None:
    reply = ask("What is the latest python?", web_search=True, code_execution=True, display="none",
                new=True)
    sent = [block.to_dict() for block in reply.state.final_message.content]
    kept = STORE.get("default").messages[-1]["content"]
    assert kept == sent
    kinds = [block["type"] for block in kept]
    assert {"server_tool_use", "web_search_tool_result", "bash_code_execution_tool_result"} <= set(kinds)
    cited = next(block for block in reply.state.blocks if block.citations)  # folded from citations_delta
    assert cited.text == "Python 3.14 is out" and cited.citations[0]["url"] == PAGES[0]["url"]
    assert reply.state.total_usage.web_search_requests == 1
    # The emulator checks the history it is sent like the API: the next turn is accepted.
    assert ask("Thanks. And the one before?", display="none").state.status == "complete"


def test_a_paused_server_loop_resumes_into_one_answer(scripted: Emulator) -> None:
    reply = ask("keep searching", web_search=True, display="none", new=True)
    assert (reply.state.status, reply.state.stop_reason) == ("complete", "end_turn")
    messages = STORE.get("default").messages
    assert [message["role"] for message in messages] == ["user", "assistant"]
    calls = [block for block in messages[-1]["content"] if block["type"] == "server_tool_use"]
    assert len(calls) == MAX_ITERATIONS + 1 and reply.text.endswith("Searched everything.")
    assert reply.state.total_usage.web_search_requests == MAX_ITERATIONS + 1


def test_the_cell_shows_links_escaped_and_citations_numbered(scripted: Emulator) -> None:
    reply = ask("What is the latest python?", web_search=True, code_execution=True, display="none",
                new=True)
    page = answer_bundle(reply.state)["text/html"]
    assert "<code>latest python &lt;release&gt;</code>" in page  # the query
    assert ('<a href="https://www.python.org/news/314" target="_blank" rel="noopener noreferrer">'
            "Python 3.14 &lt;b&gt;released&lt;/b&gt;</a>") in page
    assert "javascript:" not in page and "<img" not in page and "<script>" not in page
    assert "Hostile &quot; onmouseover=&quot;alert(1)" in page  # shown as text, never an attribute
    # The cited passage reads on in its paragraph, its numbered link right after it; sources below.
    assert "The newest release: Python 3.14 is out<sup" in page and "[1]</a></sup>, with free threading." in page
    assert 'class="claude-magic-sources"' in page and "— “Python 3.14 is out.”" in page
    assert "3.14.0 &lt;script&gt;" in page and "return code 3" in page
    text = answer_bundle(reply.state)["text/plain"]
    assert "Python 3.14 is out[1], with free threading." in text
    assert "Sources:\n[1] Python 3.14 <b>released</b> — https://www.python.org/news/314" in text
    assert "(unsafe link left out)" in text


def test_terminal_and_export_show_the_same(shell: Any, scripted: Emulator, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell("%%claude --web-search --code-execution\nWhat is the latest python?")
    out = capsys.readouterr().out
    assert "web search “latest python <release>”" in out and "Python 3.14 is out[1]" in out
    assert "Sources:\n[1] Python 3.14 <b>released</b> — https://www.python.org/news/314" in out
    assert "(return code 3)" in out and "1 web search ·" in out
    target = tmp_path / "chat.md"
    shell.run_cell(f"%claude export {target}")
    exported = target.read_text()
    assert "*web search* “latest python \\<release\\>”" in exported
    assert "1. [Python 3.14 \\<b\\>released\\</b\\>](https://www.python.org/news/314)" in exported
    assert "Python 3.14 is out[\\[1\\]](https://www.python.org/news/314)" in exported
    assert "javascript:" not in exported and "**Sources**" in exported


def test_history_shows_each_server_call_on_one_line_and_citations_numbered(
        shell: Any, scripted: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    from claude_magic.surfaces.history_view import HistoryView

    hostile = "**bold** [x](https://evil.example) <img src=x onerror=alert(1)>"
    scripted.set_script({"turns": [*SCRIPT["turns"], {"match": "hostile search", "content": [
        {"type": "web_search", "query": hostile, "results": []},
        {"type": "text", "text": "Nothing found."}]}]})
    shell.run_cell("%%claude --web-search --code-execution\nWhat is the latest python?")
    shell.run_cell("%%claude --web-search\nhostile search")
    capsys.readouterr()
    bundle = HistoryView(STORE.get("default"))._repr_mimebundle_()
    text, page = bundle["text/plain"], bundle["text/html"]
    assert "web search “latest python <release>” → 2 results" in text
    assert "code execution “python -c 'import sys; print(sys.version)'” → return code 3" in text
    assert "The newest release: Python 3.14 is out[1], with free threading." in text
    assert "Sources:\n[1] Python 3.14 <b>released</b> — https://www.python.org/news/314" in text
    assert f"web search “{hostile}” → 0 results" in text and "[server_tool_use block]" not in text
    # The HTML view: the same lines, everything from the network escaped (shown as written, never markup).
    assert "<em>web search “latest python &lt;release&gt;” → 2 results</em>" in page
    assert "The newest release: Python 3.14 is out[1], with free threading.</p>" in page
    assert "Python 3.14 &lt;b&gt;released&lt;/b&gt;" in page and "<b>released" not in page
    assert "**bold** [x](https://evil.example)" in page  # literally: no <strong>, no link
    assert "evil.example\"" not in page and "<img" not in page and "javascript:" not in page
    screen = io.StringIO()
    HistoryView(STORE.get("default")).print_to_terminal(Console(file=screen, width=200, color_system=None))
    shown = screen.getvalue()
    assert "web search “latest python <release>” → 2 results" in shown
    assert "Python 3.14 is out[1], with free threading." in shown and f"web search “{hostile}”" in shown


def test_cite_turns_on_document_citations(shell: Any, scripted: Emulator, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Status. The launch moved to May. Budget unchanged.")
    shell.run_cell(f"%%claude -a {notes} --cite\nWhat do the notes say?")
    out = capsys.readouterr().out
    assert "The notes say the launch moved[1]." in out
    assert "[1] notes.txt, chars 8–32\n    “The launch moved to May.”" in out.replace(str(tmp_path) + "/", "")
    sent = STORE.get("default").messages[0]["content"]
    document = next(block for block in sent if block["type"] == "document")
    assert document["citations"] == {"enabled": True} and document["source"]["type"] == "text"
    result = shell.run_cell("%%claude --cite\nNothing attached")
    assert isinstance(result.error_in_exec, UsageError) and "needs something to cite" in str(result.error_in_exec)


def test_map_offers_web_search_to_every_prompt(scripted: Emulator) -> None:
    import claude_magic

    prompts = ["Who maintains numpy", "Where is PyCon next year", "What is new in pandas"]
    replies = claude_magic.map(prompts, web_search="max_uses=2", concurrency=2, display="none")
    sent = [request.body for request in scripted.requests]
    assert len(sent) == len(prompts)
    assert all(body["tools"] == [{"type": newest_version("web_search"), "name": "web_search", "max_uses": 2}]
               for body in sent)
    for prompt, reply in zip(prompts, replies, strict=True):
        assert reply.state.status == "complete" and reply.error is None
        kinds = [block.kind for block in reply.state.blocks]
        assert "server_tool_use" in kinds and "web_search_tool_result" in kinds
        call = next(block for block in reply.state.final_message.content if block.type == "server_tool_use")
        assert call.input["query"] == prompt  # each reply answers its own prompt, in input order
        found = next(block for block in reply.state.final_message.content
                     if block.type == "web_search_tool_result")
        urls = {result.url for result in found.content}
        cited = [citation["url"] for block in reply.state.blocks for citation in block.citations]
        assert cited and set(cited) <= urls
        assert reply.state.total_usage.web_search_requests == 1
        assert "[1]" in answer_bundle(reply.state)["text/plain"]
    scripted.clear_requests()
    awaited = asyncio.run(claude_magic.map_async(prompts[:1], code_execution=True, display="none"))
    assert [tool["name"] for tool in scripted.requests[-1].body["tools"]] == ["code_execution"]
    assert "bash_code_execution_tool_result" in [block.kind for block in awaited[0].state.blocks]


def test_web_searches_are_priced() -> None:
    tokens_only = estimate_cost("claude-sonnet-5-5", Usage(input_tokens=1000, output_tokens=100))
    with_searches = estimate_cost("claude-sonnet-5-5", Usage(input_tokens=1000, output_tokens=100,
                                                             web_search_requests=3))
    assert tokens_only is not None and with_searches == pytest.approx(tokens_only + 3 * WEB_SEARCH_USD_PER_SEARCH)


def test_the_request_carries_the_newest_definitions(scripted: Emulator) -> None:
    reply = ask("What is the latest python?", web_search="max_uses=2,blocked=pinterest.com", display="none",
                new=True)
    assert reply.state.status == "complete"
    tools = json.loads(json.dumps(STORE.get("default").turns[-1].tools))
    assert tools["web_search"] == {"type": newest_version("web_search"), "name": "web_search", "max_uses": 2,
                                   "blocked_domains": ["pinterest.com"]}


def _panel_answers(panel: Any) -> list[str]:
    def html_of(widget: Any) -> str:
        value = getattr(widget, "value", None)
        return value if isinstance(value, str) else "".join(html_of(c) for c in getattr(widget, "children", ()))

    return [html_of(w) for w in panel.transcript.children if "claude-panel-answer" in w._dom_classes]


def test_the_panel_shows_the_same_live_and_redrawn_from_history(scripted: Emulator) -> None:
    from claude_magic import ChatPanel

    STORE.get("panel-search").reset()
    panel = ChatPanel(conversation="panel-search", web_search=True, code_execution=True)
    try:
        assert panel.send("What is the latest python?")
        state = panel.wait(30)
        assert state is not None and state.status == "complete"
        live = _panel_answers(panel)[-1]
        assert "Python 3.14 is out<sup>" in live and 'class="claude-magic-sources"' in live
        assert 'target="_blank" rel="noopener noreferrer"' in live and "javascript:" not in live
        assert STORE.get("panel-search").turns[-1].tools.keys() == {"web_search", "code_execution"}
    finally:
        panel.close()
        panel.wait(5)
    again = ChatPanel(conversation="panel-search")  # a second panel draws the turn from history
    try:
        redrawn = _panel_answers(again)[-1]
        assert "Python 3.14 is out<sup>" in redrawn and 'class="claude-magic-sources"' in redrawn
        assert "<code>latest python &lt;release&gt;</code>" in redrawn and "return code 3" in redrawn
    finally:
        again.close()


def test_the_rich_terminal_reads_a_cited_answer_as_one_paragraph(scripted: Emulator) -> None:
    import io
    import re

    from rich.console import Console

    from claude_magic.core.engine import prepare_turn, run_exchange
    from claude_magic.settings import ClaudeMagic
    from claude_magic.surfaces.terminal import TerminalSink

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, force_interactive=True, force_jupyter=False, width=120,
                      color_system=None)
    turn = prepare_turn("What is the latest python?", ClaudeMagic(), web_search=True, conversation=None)
    run_exchange(turn, TerminalSink(console=console))
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.getvalue())
    assert "The newest release: Python 3.14 is out[1], with free threading." in shown
    assert "Sources:\n[1] Python 3.14 <b>released</b> — https://www.python.org/news/314" in shown
