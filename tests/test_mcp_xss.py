"""An MCP server's tool names, descriptions and results never run as script: the XSS corpus
(fixtures/xss_payloads.json) goes through a real MCP server into the tool call display (live frames and the
final answer, in this process) and into `%claude mcp`, then through JupyterLab and Chromium (0 executions)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason='the mcp extra is not installed (pip install "claude_magic[mcp]")')

from harness.lab import JupyterLab, write_notebook  # noqa: E402 - after the skip
from test_xss_browser import (  # noqa: E402 - the corpus and its checkers, shared with the other XSS tests
    ALL_PAYLOADS,
    BY_ID,
    CORPUS,
    RecordingDisplay,
    assert_dom_inert,
    assert_inert,
    assert_page_clean,
    check_html,
    lab_for_xss,
    open_watched,
)

from claude_magic.core.history import STORE  # noqa: E402
from claude_magic.emulator import Emulator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TROUBLED = str(ROOT / "tests" / "mcp_servers" / "troubled_server.py")
NAME_PAYLOAD = BY_ID["tool-name-breakout"]["payload"]
# The server's own tool name is a payload: Claude sees it as mcp__evil__ and the payload's characters as "_".
SERVERS = {"evil": {"command": sys.executable, "args": [TROUBLED],
                    "env": {"TROUBLED_XSS_CORPUS": str(ROOT / "tests" / "fixtures" / "xss_payloads.json"),
                            "TROUBLED_TOOL_NAME": NAME_PAYLOAD}}}
PROMPT = "xss-mcp: call the server's tools"
RESULT_MARK = "XSS-MCP-RESULT"  # upper case: the tool shouts its input


def script(tool_name: str) -> dict[str, Any]:
    tool_input = BY_ID["tool-input-breakout"]["payload"]
    return {"turns": [
        {"match": RESULT_MARK, "content": "MCP results received."},
        {"match": PROMPT, "content": [
            {"type": "text", "text": "Calling the server."},
            {"type": "tool_use", "id": "toolu_xss1", "name": tool_name,
             "input": {"text": f"xss-mcp-result {tool_input}\n{ALL_PAYLOADS}"}},
            {"type": "tool_use", "id": "toolu_xss2", "name": "mcp__evil__refuse", "input": {"reason": ALL_PAYLOADS}},
        ]},
    ]}


def evil_tool_name() -> str:
    from claude_magic.core.mcp_config import api_tool_name

    return api_tool_name("evil", NAME_PAYLOAD)


@pytest.fixture
def fresh_store() -> Iterator[None]:
    yield
    for name in STORE.names():
        STORE.get(name).reset()


def test_mcp_tool_calls_and_the_listing_are_inert(emulator: Emulator, shell: Any, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], fresh_store: None) -> None:
    import claude_magic.surfaces.sinks as sinks_module

    emulator.set_script(script(evil_tool_name()))
    published: list[dict[str, str]] = []
    monkeypatch.setattr(RecordingDisplay, "published", published)
    monkeypatch.setattr(sinks_module, "IPythonDisplay", RecordingDisplay)
    shell.run_line_magic("config", f"ClaudeMagic.mcp_servers = {SERVERS!r}")
    shell.run_cell_magic("claude", "--mcp evil --display live --no-raise", PROMPT)
    turn = shell.magics_manager.registry["ClaudeMagics"].last_turn
    assert turn.status == "complete" and turn.tool_rounds == 1, turn.error
    results = emulator.requests[-1].messages[-1]["content"]
    assert RESULT_MARK in results[0]["content"][0]["text"] and results[1]["is_error"] is True
    assert len(published) > 2  # live frames, then the final one
    for bundle in published:
        assert_inert(bundle["text/html"], "MCP tool call frame")
    final_text = check_html(published[-1]["text/html"])[1]
    assert "MCP results received." in final_text
    assert BY_ID["tool-input-breakout"]["payload"] in final_text  # shown, as text
    # `%claude mcp`: plain text (the frontend escapes it), one line per tool, no control characters.
    capsys.readouterr()
    shell.run_line_magic("claude", "mcp")
    listing = capsys.readouterr().out
    assert f"    {evil_tool_name()}  Says it loudly" in listing
    assert all(ch in "\n" or ch.isprintable() for ch in listing)
    assert len(CORPUS) > 20


@pytest.mark.browser
def test_mcp_views_run_no_payload_in_jupyterlab(
    jupyterlab_factory: Callable[..., JupyterLab], emulator: Emulator, api_env: dict[str, str], lab_page: Any,
) -> None:
    emulator.set_script(script(evil_tool_name()))
    lab = lab_for_xss(jupyterlab_factory, api_env)
    cells = [f"%load_ext claude_magic\n%config ClaudeMagic.mcp_servers = {SERVERS!r}",
             f"%%claude --mcp evil\n{PROMPT}",
             "%claude mcp"]
    write_notebook(lab.root_dir / "xss_mcp.ipynb", cells)
    nb, watch, title = open_watched(lab_page, lab, "xss_mcp.ipynb")
    url = lab_page.url
    nb.run_all(timeout=120)
    nb.wait_output_text(1, "stop_reason", timeout=60)
    nb.wait_output_text(2, "Says it loudly", timeout=30)
    lab_page.wait_for_timeout(500)  # late handlers (image errors) get their chance
    text = "\n".join(nb.output_texts(1))
    assert "MCP results received." in text and "1 tool round" in text, text[:500]
    assert assert_dom_inert(nb.output(1), "%%claude --mcp output") == 1
    assert "Says it loudly" in "\n".join(nb.output_texts(2))
    assert_page_clean(nb, watch, title, url)
    assert json.dumps(emulator.requests[-1].messages[-1]["content"]).count("is_error") == 1
