"""MCP servers in a real kernel (jupyter_client, the real SDK, the emulator, real MCP servers over stdio): what a
cell shows for an MCP tool call, `%claude mcp`, a server that cannot start, resources with -a, the panel and
`ask`, and the server process ending with the kernel."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason='the mcp extra is not installed (pip install "claude_magic[mcp]")')

import psutil  # noqa: E402 - after the skip
from harness.kernel import KernelSession  # noqa: E402

from claude_magic.emulator import Emulator  # noqa: E402

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
TROUBLED = str(ROOT / "tests" / "mcp_servers" / "troubled_server.py")
PAYLOAD = '<img src=x onerror="window.__xss=1">'
CONFIG = {
    "notes": {"command": sys.executable, "args": ["-m", "claude_magic.examples.notes_server"], "cwd": str(ROOT)},
    "troubled": {"command": sys.executable, "args": [TROUBLED]},
    "missing": {"command": "no-such-mcp-server-command"},
}


def call(name: str, tool_input: dict[str, Any], tool_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


SCRIPT = {"turns": [
    {"match": "What do I need to buy?", "content": [call("mcp__notes__read_note", {"title": "groceries"}, "toolu_g")]},
    {"match": "eggs, flour, milk, lemons", "content": "You need **eggs, flour, milk and lemons**."},
    {"match": "Shout hello", "content": [call("mcp__troubled__shout_loud", {"text": "hello"}, "toolu_s")]},
    {"match": "HELLO", "content": "Shouted."},
    {"match": "Panel: list my notes", "content": [call("mcp__notes__list_notes", {}, "toolu_p")]},
    {"match": "groceries", "content": "Two notes: groceries and ideas."},
    {"match": "Wait forever", "content": [call("mcp__troubled__hang", {}, "toolu_h")]},
    {"match": "plain", "content": "A plain answer."},
]}


@pytest.fixture
def kernel(magic_kernel: KernelSession, emulator: Emulator) -> KernelSession:
    emulator.set_script(SCRIPT)
    magic_kernel.execute(f"%config ClaudeMagic.mcp_servers = {json.dumps(CONFIG)}\nimport claude_magic, json")
    return magic_kernel


def test_a_cell_offers_a_servers_tools_and_shows_the_call_live(kernel: KernelSession, emulator: Emulator) -> None:
    listing = kernel.execute("%claude mcp").stdout()
    assert "notes (stdio: " in listing and "— not started" in listing
    result = kernel.execute("%%claude --mcp notes\nWhat do I need to buy?")
    assert result.status == "ok", result.traceback_text()
    text = result.final_text()
    assert "mcp__notes__read_note(title='groceries') → 25 characters" in text
    assert "You need **eggs, flour, milk and lemons**." in text and "1 tool round" in text
    assert "Traceback" not in json.dumps(result.messages, default=str)
    sent = emulator.requests[-1]
    assert sent.messages[-1]["content"][0]["content"] == [{"type": "text", "text": "eggs, flour, milk, lemons"}]
    # `%claude mcp` now: running, and the tools by the names Claude sees.
    listing = kernel.execute("%claude mcp").stdout()
    assert "notes (stdio: " in listing and "— running" in listing
    assert "    mcp__notes__read_note  The text of one note." in listing
    # A resource attached from the same server.
    attached = kernel.execute("%%claude -a @notes:notes://groceries\nplain question about the note")
    assert attached.status == "ok", attached.traceback_text()
    assert "Attached: @notes:notes://groceries (MCP resource" in attached.final_text()
    assert "eggs, flour, milk, lemons" in json.dumps(emulator.requests[-1].messages[-1]["content"])


def test_a_server_that_cannot_start_stops_the_cell_with_one_line(kernel: KernelSession,
                                                                 emulator: Emulator) -> None:
    before = len(emulator.requests)
    result = kernel.execute("%%claude --mcp missing\nplain question", allow_error=True)
    assert result.status == "error"
    assert result.traceback_text() == (
        "McpUnavailable: MCP server 'missing' could not start: FileNotFoundError: [Errno 2] No such file or "
        "directory: 'no-such-mcp-server-command' (check its command in %config ClaudeMagic.mcp_servers); "
        "nothing was sent")
    assert len(emulator.requests) == before
    assert "missing (stdio: no-such-mcp-server-command) — failed: FileNotFoundError" in \
        kernel.execute("%claude mcp").stdout()
    # A name that is not configured: a usage line.
    unknown = kernel.execute("%%claude --mcp nope\nplain question", allow_error=True)
    assert "--mcp: no MCP server named 'nope' (servers: notes, troubled, missing)" in unknown.stderr()
    assert len(emulator.requests) == before


def test_interrupt_during_a_hanging_mcp_call_ends_the_cell_at_once(kernel: KernelSession) -> None:
    msg_id = kernel.execute_async("%%claude --mcp troubled\nWait forever")
    kernel.wait_for(lambda m: "running mcp__troubled__hang()" in m["content"].get("data", {}).get("text/html", ""),
                    msg_id=msg_id, timeout=60)
    kernel.interrupt()
    result = kernel.collect(msg_id, timeout=30)
    assert result.status == "error" and "mcp__troubled__hang() interrupted after" in result.final_text()
    assert result.traceback_text().startswith("ClaudeInterrupted: Interrupted after")
    # The server still answers the next turn (only the call was cancelled), and history is valid.
    again = kernel.execute("%%claude --mcp troubled\nShout hello")
    assert again.status == "ok" and "Shouted." in again.final_text(), again.traceback_text()
    tokens = kernel.execute("%claude -c counting --mcp notes tokens").stdout()
    assert "3 tools; counted with messages.count_tokens" in tokens, tokens  # the MCP tools are counted


def test_untrusted_tool_names_descriptions_and_results_stay_text(kernel: KernelSession) -> None:
    listing = kernel.execute("%claude mcp")
    result = kernel.execute("%%claude --mcp troubled\nShout hello")
    assert result.status == "ok", result.traceback_text()
    for message in listing.messages:  # the listing is plain text only: no markup can reach the page
        assert set(message["content"].get("data", {})) <= {"text/plain"}
    html = "".join(m["content"]["data"].get("text/html", "") for m in result.displays())
    assert "mcp__troubled__shout_loud(text=&#x27;hello&#x27;)" in html
    assert "<img" not in html and "HELLO &lt;img src=x onerror=" in html


def test_ask_and_the_panel_take_mcp(kernel: KernelSession, emulator: Emulator) -> None:
    out = kernel.execute("r = claude_magic.ask('What do I need to buy?', mcp=['notes'], display='none')\n"
                         "print(r.text, r.state.tool_rounds)").stdout()
    assert "You need **eggs, flour, milk and lemons**. 1" in out
    out = kernel.execute("rs = claude_magic.map(['What do I need to buy?'] * 3, mcp='notes', display='none')\n"
                         "print([(r.text, r.state.tool_rounds) for r in rs])").stdout()
    assert out.count("('You need **eggs, flour, milk and lemons**.', 1)") == 3, out
    out = kernel.execute(
        "from claude_magic import ChatPanel\n"
        "p = ChatPanel(conversation='mcp-panel', mcp='notes')\n"
        "assert p.send('Panel: list my notes')\n"
        "t = p.wait(60)\n"
        "html = ''.join(w.value for w in p.transcript.children[-1].children if hasattr(w, 'value'))\n"
        "bad = ChatPanel(conversation='mcp-bad', mcp='missing')\n"
        "print(json.dumps({'status': t.status, 'html': html, 'sent': bad.send('plain'),\n"
        "                  'note': bad.transcript.children[-1].value if bad.transcript.children else ''}))",
        timeout=90).stdout().strip().splitlines()
    state = json.loads(out[-1])
    assert state["status"] == "complete" and "mcp__notes__list_notes()" in state["html"]
    assert "Two notes: groceries and ideas." in state["html"]
    assert state["sent"] is False and "MCP server &#x27;missing&#x27; could not start" in state["note"]


def test_the_servers_end_with_the_kernel(kernel_factory: Any, api_env: dict[str, str], emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    kernel = kernel_factory(env=api_env)
    kernel.execute("%load_ext claude_magic")
    kernel.execute(f"%config ClaudeMagic.mcp_servers = {json.dumps(CONFIG)}")
    assert kernel.execute("%%claude --mcp notes\nplain question").status == "ok"
    pid = int(kernel.execute("import os\nprint(os.getpid())").stdout().strip())
    children = [child for child in psutil.Process(pid).children(recursive=True)
                if "claude_magic.examples.notes_server" in " ".join(child.cmdline())]
    assert len(children) == 1
    kernel.shutdown(now=False)  # a shutdown request: the kernel exits, and its exit stops the servers
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [child.cmdline() for child in alive]
