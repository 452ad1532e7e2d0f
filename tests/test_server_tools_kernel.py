"""Server tools in a real kernel (jupyter_client, the real SDK, the emulator): what a `%%claude --web-search`
cell shows live and at the end, what the API is sent, and that the next turn is accepted with the server
tool blocks in history."""

from __future__ import annotations

import pytest
from harness.kernel import KernelSession

from claude_magic.core.server_tools import newest_version
from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel

NEWS = "https://www.python.org/news/"
SCRIPT = {"turns": [
    {"match": "What is new in Python", "content": [
        {"type": "web_search", "query": "python 3.14 what's new",
         "results": [{"title": "What's New In Python 3.14", "url": NEWS, "text": "Free-threaded Python is supported."},
                     {"title": "PEP 779", "url": "https://peps.python.org/pep-0779/", "text": "Criteria."}]},
        {"type": "text", "text": "Python 3.14 "},
        {"type": "text", "text": "supports free threading", "citations": [{"url": NEWS}]},
        {"type": "text", "text": " officially."}]},
    {"match": "And the speed", "content": "About the same."},
]}


def test_a_cell_shows_the_search_live_then_cited_links(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=60)  # a few frames while the query streams
    result = magic_kernel.execute("%%claude --web-search=max_uses=2\nWhat is new in Python 3.14?")
    assert result.status == "ok", result.traceback_text()
    frames = [m["content"]["data"].get("text/html", "") for m in result.displays()]
    # Live: the query showed while the answer was still being written (before the footer).
    assert any("web search" in frame and "python 3.14 what" in frame and "claude-magic-footer" not in frame
               for frame in frames[:-1])
    final = frames[-1]
    assert f'<a href="{NEWS}" target="_blank" rel="noopener noreferrer">What&#x27;s New In Python 3.14</a>' in final
    assert "Python 3.14 supports free threading<sup>" in final and "[1]</a></sup> officially." in final
    assert 'class="claude-magic-sources"' in final and "1 web search" in final
    text = result.final_text()
    assert "supports free threading[1] officially." in text and f"[1] What's New In Python 3.14 — {NEWS}" in text
    sent = emulator.requests[-1].body["tools"]
    assert sent == [{"type": newest_version("web_search"), "name": "web_search", "max_uses": 2}]

    follow_up = magic_kernel.execute("%%claude\nAnd the speed?")
    assert follow_up.status == "ok", follow_up.traceback_text()
    last = emulator.requests[-1]
    assert last.status == 200
    kinds = [block["type"] for block in last.messages[1]["content"]]
    assert "server_tool_use" in kinds and "web_search_tool_result" in kinds  # sent back as received


def test_a_bad_flag_is_one_line_and_nothing_is_sent(magic_kernel: KernelSession, emulator: Emulator) -> None:
    before = len(emulator.requests)
    result = magic_kernel.execute("%%claude --web-search=allowed=a.com,blocked=b.com\nHi", allow_error=True)
    line = result.traceback_text()
    assert "not both" in line and "Traceback" not in line and len(line.strip().splitlines()) == 1
    assert len(emulator.requests) == before
