"""The emulator serves server tools (web search, web fetch, code execution) and citations as the API does,
through the real SDK over HTTP: definitions checked with the API's messages, calls streamed with
input_json_delta, results in the same message, citations as citations_delta, usage.server_tool_use counts,
max_uses, domain filters, and pause_turn after the server-side loop's iteration limit (resumed when the paused
answer is sent back)."""

from __future__ import annotations

import base64
import typing
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.core.server_tools import newest_version, server_tool_definitions
from claude_magic.emulator import Emulator, ScriptError, parse_script
from claude_magic.emulator._script import SERVER_TOOL_NAMES
from claude_magic.emulator._server_tools import MAX_ITERATIONS

RESULTS = [{"title": "Python 3.14 released", "url": "https://www.python.org/news/314", "text": "Python 3.14 is out."},
           {"title": "Elsewhere", "url": "https://blocked.example/page", "text": "Not wanted."}]
SCRIPT = {"turns": [
    {"match": "search please", "content": [
        {"type": "web_search", "query": "python 3.14 release", "results": RESULTS},
        {"type": "text", "text": "Python 3.14 is out", "citations": [{"url": RESULTS[0]["url"]}]},
        {"type": "text", "text": "."}]},
    {"match": "search twice", "content": [
        {"type": "web_search", "query": "first", "results": RESULTS[:1]},
        {"type": "web_search", "query": "second", "results": RESULTS[:1]},
        {"type": "text", "text": "Done."}]},
    {"match": "run code", "content": [
        {"type": "code_execution", "command": "python -c 'print(1/0)'", "stdout": "",
         "stderr": "ZeroDivisionError: division by zero", "return_code": 1},
        {"type": "text", "text": "It failed."}]},
    {"match": "fetch it", "content": [
        {"type": "web_fetch", "url": "https://docs.python.org/3/", "title": "Docs", "text": "The docs."},
        {"type": "text", "text": "Fetched."}]},
    {"match": "many searches", "content": [
        *({"type": "web_search", "query": f"q{n}", "results": RESULTS[:1]} for n in range(MAX_ITERATIONS + 2)),
        {"type": "text", "text": "All searched."}]},
    {"match": "quote the report", "content": [
        {"type": "text", "text": "The report says revenue grew",
         "citations": [{"document": 0, "cited_text": "Revenue grew 12%"}]}]},
]}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(script=SCRIPT) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emu.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def _ask(client: anthropic.Anthropic, prompt: Any, tools: list[dict[str, Any]], **extra: Any) -> Any:
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    with client.messages.stream(model=DEFAULT_MODEL, max_tokens=4000, messages=messages, tools=tools,
                                thinking={"type": "adaptive", "display": "omitted"}, **extra) as stream:
        events = [event.type + ":" + getattr(getattr(event, "delta", None), "type", "") for event in stream]
        return stream.get_final_message(), events


def _bad_request(client: anthropic.Anthropic, tools: list[dict[str, Any]]) -> str:
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=DEFAULT_MODEL, max_tokens=100, tools=tools,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400
    return str(caught.value.body["error"]["message"])


def test_the_newest_versions_the_sdk_knows_are_offered() -> None:
    tools = server_tool_definitions(web_search=True, web_fetch=True, code_execution=True)
    assert [tool["type"] for tool in tools] == [newest_version(kind) for kind in
                                                ("web_search", "web_fetch", "code_execution")]
    assert all(tool["type"] > f"{tool['name']}_2026" for tool in tools)  # not the 2025 versions


def test_a_script_names_only_the_server_tools_the_api_sends() -> None:
    # The emulator's list is the API's enum, which the installed SDK's ServerToolUseBlock.name is generated from.
    sdk_names = typing.get_args(anthropic.types.ServerToolUseBlock.model_fields["name"].annotation)
    assert set(SERVER_TOOL_NAMES) == set(sdk_names)
    block = {"type": "server_tool_use", "name": "web_search", "input": {"query": "q"}}
    assert parse_script({"turns": [{"content": [block]}]}).turns[0].content[0]["name"] == "web_search"
    with pytest.raises(ScriptError, match=r"turns\[0\]\.content\[0\]\.name: expected one of web_search, .*got '<b>x'"):
        parse_script({"turns": [{"content": [{**block, "name": "<b>x"}]}]})


def test_definitions_are_checked_with_the_apis_messages(client: anthropic.Anthropic) -> None:
    # The wordings users quoted from the real API (emulator/_server_tools.py names where each was seen).
    search = newest_version("web_search")
    unknown = _bad_request(client, [{"type": "web_search_20990101", "name": "web_search"}])
    head = "tools.0: Input tag 'web_search_20990101' found using 'type' does not match any of the expected tags: "
    assert unknown.startswith(head)
    tags = [tag.strip("'") for tag in unknown.removeprefix(head).split(", ")]
    assert tags == sorted(tags) and "custom" in tags and search in tags and "web_search_20990101" not in tags
    assert _bad_request(client, [{"type": search, "name": "search"}]) == (
        f"tools.0.{search}.name: Input should be 'web_search'")
    assert _bad_request(client, [{"type": "custom", "name": "x", "input_schema": {"type": "object"}},
                                 {"type": search, "name": "web_search", "max_results": 3}]) == (
        f"tools.1.{search}.max_results: Extra inputs are not permitted")
    assert _bad_request(client, [{"type": search, "name": "web_search", "max_uses": 0}]) == (
        f"tools.0.{search}.max_uses: Input should be greater than 0")
    # The rules below are documented, their wording is not: only that they are refused, and where.
    both = _bad_request(client, [{"type": search, "name": "web_search", "allowed_domains": ["a.com"],
                                  "blocked_domains": ["b.com"]}])
    assert both.startswith(f"tools.0.{search}: ") and "allowed_domains or blocked_domains" in both
    scheme = _bad_request(client, [{"type": search, "name": "web_search", "allowed_domains": ["https://a.com"]}])
    assert scheme.startswith(f"tools.0.{search}.allowed_domains: ") and "scheme" in scheme


def test_search_streams_the_call_then_results_then_cited_text(client: anthropic.Anthropic) -> None:
    tools = server_tool_definitions(web_search="blocked=blocked.example")
    message, events = _ask(client, "search please", tools)
    kinds = [block.type for block in message.content]
    assert kinds[-4:] == ["server_tool_use", "web_search_tool_result", "text", "text"]
    call, result, cited = message.content[-4:-1]
    assert call.name == "web_search" and call.input == {"query": "python 3.14 release"}
    assert call.id.startswith("srvtoolu_") and result.tool_use_id == call.id
    assert [item.url for item in result.content] == [RESULTS[0]["url"]]  # the blocked domain filtered out
    assert cited.citations[0].type == "web_search_result_location"
    assert cited.citations[0].url == RESULTS[0]["url"] and cited.citations[0].encrypted_index
    assert "content_block_delta:input_json_delta" in events and "content_block_delta:citations_delta" in events
    assert message.usage.server_tool_use.web_search_requests == 1


def test_max_uses_turns_later_searches_into_errors(client: anthropic.Anthropic) -> None:
    message, _ = _ask(client, "search twice", server_tool_definitions(web_search="max_uses=1"))
    results = [block for block in message.content if block.type == "web_search_tool_result"]
    assert isinstance(results[0].content, list)
    assert results[1].content.error_code == "max_uses_exceeded"


def test_code_execution_and_fetch_results(client: anthropic.Anthropic) -> None:
    message, _ = _ask(client, "run code", server_tool_definitions(code_execution=True))
    run = next(block for block in message.content if block.type == "bash_code_execution_tool_result")
    assert (run.content.return_code, run.content.stderr) == (1, "ZeroDivisionError: division by zero")
    message, _ = _ask(client, "fetch it: https://docs.python.org/3/",
                      server_tool_definitions(web_fetch="allowed=python.org"))
    fetched = next(block for block in message.content if block.type == "web_fetch_tool_result")
    assert fetched.content.url == "https://docs.python.org/3/"
    assert fetched.content.content.source.data == "The docs."
    message, _ = _ask(client, "fetch it: https://docs.python.org/3/",
                      server_tool_definitions(web_fetch="allowed=example.com"))
    refused = next(block for block in message.content if block.type == "web_fetch_tool_result")
    assert refused.content.error_code == "url_not_allowed"
    # Claude fetches only URLs the conversation holds (the user's, or a result's).
    message, _ = _ask(client, "fetch it", server_tool_definitions(web_fetch=True))
    unseen = next(block for block in message.content if block.type == "web_fetch_tool_result")
    assert unseen.content.error_code == "url_not_in_prior_context"


def test_the_loop_pauses_after_its_iteration_limit_and_resumes(client: anthropic.Anthropic) -> None:
    tools = server_tool_definitions(web_search=True)
    first, _ = _ask(client, "many searches", tools)
    assert first.stop_reason == "pause_turn"
    assert sum(block.type == "server_tool_use" for block in first.content) == MAX_ITERATIONS
    sent_back = [block.to_dict() for block in first.content]
    messages = [{"role": "user", "content": "many searches"}, {"role": "assistant", "content": sent_back}]
    rest, _ = _ask(client, messages, tools)
    assert rest.stop_reason == "end_turn"
    assert sum(block.type == "server_tool_use" for block in rest.content) == 2
    assert rest.content[-1].text == "All searched."


def test_document_citations(client: anthropic.Anthropic) -> None:
    report = "Annual report. Revenue grew 12% this year. Costs fell."
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": report},
                "title": "report.txt", "citations": {"enabled": True}}
    pdf = {"type": "document", "citations": {"enabled": True},
           "source": {"type": "base64", "media_type": "application/pdf",
                      "data": base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()}}
    message, events = _ask(client, [{"role": "user", "content": [
        document, {"type": "text", "text": "quote the report"}]}], [])
    citation = message.content[-1].citations[0]
    assert citation.type == "char_location" and citation.cited_text == "Revenue grew 12%"
    assert report[citation.start_char_index:citation.end_char_index] == "Revenue grew 12%"
    assert "content_block_delta:citations_delta" in events
    message, _ = _ask(client, [{"role": "user", "content": [pdf, {"type": "text", "text": "quote the report"}]}], [])
    assert message.content[-1].citations[0].type == "page_location"


def test_citations_on_some_documents_but_not_all_are_refused(client: anthropic.Anthropic) -> None:
    cited = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "One. Two."},
             "citations": {"enabled": True}}
    plain = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Three."}}
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=DEFAULT_MODEL, max_tokens=100, messages=[
            {"role": "user", "content": [cited, plain, {"type": "text", "text": "quote the report"}]}])
    assert caught.value.status_code == 400
    # The citations page's rule; the API's exact wording is not documented.
    assert "all or none of the documents" in caught.value.body["error"]["message"]
    accepted, _ = _ask(client, [{"role": "user", "content": [cited, {**plain, "citations": {"enabled": True}},
                                                              {"type": "text", "text": "quote the report"}]}], [])
    assert accepted.content[-1].citations
