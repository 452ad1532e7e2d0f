"""MCP servers without a kernel: configuration, names, and real servers written with the `mcp` SDK
(claude_magic/examples/notes_server.py, tests/mcp_servers/troubled_server.py) started over stdio and
streamable HTTP, through the real tool loop against the emulator."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason='the mcp extra is not installed (pip install "claude_magic[mcp]")')

from claude_magic.core import mcp as servers  # noqa: E402 - after the skip
from claude_magic.core.context import ContextError, resolve_attachments  # noqa: E402
from claude_magic.core.engine import prepare_turn, run_exchange  # noqa: E402
from claude_magic.core.history import STORE  # noqa: E402
from claude_magic.core.tools import call_tool  # noqa: E402
from claude_magic.emulator import Emulator  # noqa: E402
from claude_magic.settings import ClaudeMagic  # noqa: E402
from claude_magic.surfaces.terminal import TerminalSink  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TROUBLED = str(ROOT / "tests" / "mcp_servers" / "troubled_server.py")
NOTES = {"command": sys.executable, "args": ["-m", "claude_magic.examples.notes_server"], "cwd": str(ROOT)}
CONFIG = {
    "notes": NOTES,
    "troubled": {"command": sys.executable, "args": [TROUBLED]},
    "missing": {"command": "no-such-mcp-server-command"},
    "broken": {"command": sys.executable, "args": [TROUBLED], "env": {"TROUBLED_FAIL_AT_START": "1"}},
}


def call(name: str, tool_input: dict[str, Any], tool_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


@pytest.fixture
def sdk_env(emulator: Emulator, api_env: dict[str, str]) -> Iterator[Emulator]:
    yield emulator
    for name in STORE.names():
        STORE.get(name).reset()


def settings(**values: Any) -> ClaudeMagic:
    return ClaudeMagic(**{"mcp_servers": CONFIG, "mcp_timeout": 20.0, **values})


# -- configuration -------------------------------------------------------------------------------------------


def test_the_claude_desktop_and_claude_code_shapes_are_read(tmp_path: Path) -> None:
    parsed = servers.parse_servers({
        "local": {"command": "uvx", "args": ["notes-mcp", "--db", "x"], "env": {"TOKEN": "t"}},
        "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer t"}},
        "typed": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
        "typed-stdio": {"type": "stdio", "command": "node", "args": ["server.js"]},
    })
    assert parsed["local"].transport == "stdio" and parsed["local"].args == ("notes-mcp", "--db", "x")
    assert parsed["local"].env == (("TOKEN", "t"),)
    assert parsed["remote"].transport == "http" and parsed["remote"].headers == (("Authorization", "Bearer t"),)
    assert parsed["typed"].transport == "http" and parsed["typed-stdio"].command == "node"
    # What is shown of a server never includes env or header values (they hold tokens).
    assert "Bearer" not in parsed["remote"].describe() and "TOKEN" not in parsed["local"].describe()
    # A Claude Desktop / Claude Code file, by path: the servers under "mcpServers".
    path = tmp_path / ".mcp.json"
    path.write_text(json.dumps({"mcpServers": {"notes": NOTES}}))
    assert servers.parse_servers(str(path))["notes"].args == tuple(NOTES["args"])


@pytest.mark.parametrize(("value", "message"), [
    ({"x": {"args": ["a"]}}, "a stdio server needs a 'command'"),
    ({"x": {"type": "sse", "url": "http://h/sse"}}, "the old SSE transport is not supported"),
    ({"x": {"url": "ftp://h"}}, "'url' must be an http:// or https:// address"),
    ({"x": {"command": "c", "args": "a b"}}, "'args' must be a list of strings"),
    ({"x": {"command": "c", "env": {"A": 1}}}, "mcp_servers['x']['env'] must map strings to strings"),
    ({"bad name": {"command": "c"}}, "a server name takes letters"),
    ("/no/such/file.json", "mcp_servers: cannot read '/no/such/file.json'"),
    (["notes"], "mcp_servers takes a dict of servers or a path to a JSON file, got list"),
])
def test_a_malformed_configuration_is_one_line(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^mcp_servers") as caught:
        servers.parse_servers(value)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    # The setting refuses it when it is set, with the same line.
    with pytest.raises(Exception, match="mcp_servers"):
        ClaudeMagic(mcp_servers=value)


def test_tool_names_are_prefixed_and_kept_within_the_api_rule() -> None:
    assert servers.api_tool_name("notes", "read_note") == "mcp__notes__read_note"
    assert servers.api_tool_name("my.server", "files/read.v2") == "mcp__my_server__files_read_v2"
    long = servers.api_tool_name("server", "x" * 100)
    other = servers.api_tool_name("server", "x" * 99 + "y")
    assert len(long) == 64 and len(other) == 64 and long != other
    taken = servers.api_tool_name("a.b", "c")
    assert servers.api_tool_name("a_b", "c", taken=[taken]) != taken  # two names that sanitize alike


# -- real servers over stdio ----------------------------------------------------------------------------------


def test_a_stdio_server_starts_once_and_its_tools_run(sdk_env: Emulator) -> None:
    tools = servers.offered_tools(CONFIG, "notes", timeout=20)
    assert [tool.name for tool in tools] == ["mcp__notes__list_notes", "mcp__notes__read_note",
                                             "mcp__notes__add_note"]
    read = tools[1]
    assert read.definition["input_schema"]["required"] == ["title"]  # the server's own schema
    assert read.definition["description"].startswith("The text of one note.")
    server = servers.MANAGER.servers["notes"]
    session, started = server.session, server.started_at
    assert call_tool(read, read.name, {"title": "groceries"}).content == [
        {"type": "text", "text": "eggs, flour, milk, lemons"}]
    # An isError result is an error result for Claude, with the server's message.
    failed = call_tool(read, read.name, {"title": "nope"})
    assert failed.is_error and "No note titled 'nope'" in failed.preview
    # Asked again (another turn), the same session serves: started once per process.
    servers.offered_tools(CONFIG, ["notes"], timeout=20)
    assert servers.MANAGER.servers["notes"].session is session and server.started_at == started


def test_a_turn_with_mcp_tools_runs_through_the_tool_loop(sdk_env: Emulator) -> None:
    sdk_env.set_script({"turns": [
        {"match": "What do I need to buy?", "content": [
            {"type": "text", "text": "Reading your note."},
            call("mcp__notes__read_note", {"title": "groceries"}, "toolu_g")]},
        {"match": "eggs, flour, milk, lemons", "content": "Eggs, flour, milk and lemons."},
    ]})
    out = io.StringIO()
    state = run_exchange(prepare_turn("What do I need to buy?", settings(), mcp="notes"), TerminalSink(out))
    assert state.status == "complete" and state.tool_rounds == 1, state.error
    assert "mcp__notes__read_note(title='groceries')" in out.getvalue()
    first, second = sdk_env.requests[-2], sdk_env.requests[-1]
    assert [tool["name"] for tool in first.body["tools"]] == ["mcp__notes__list_notes", "mcp__notes__read_note",
                                                              "mcp__notes__add_note"]
    assert second.messages[-1]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_g",
                                               "content": [{"type": "text", "text": "eggs, flour, milk, lemons"}]}]
    assert [m["role"] for m in STORE.get().messages] == ["user", "assistant", "user", "assistant"]
    # The default servers come from the setting when a turn names none.
    sdk_env.set_script({"turns": [{"content": "Plain."}]})
    run_exchange(prepare_turn("Anything?", settings(mcp=["notes"])), None)
    assert [tool["name"] for tool in sdk_env.requests[-1].body["tools"]][0] == "mcp__notes__list_notes"


@pytest.mark.parametrize("name", ["missing", "broken"])
def test_a_server_that_cannot_start_is_one_line_and_nothing_is_sent(sdk_env: Emulator, name: str) -> None:
    before = len(sdk_env.requests)
    with pytest.raises(servers.McpUnavailable) as caught:
        prepare_turn("Hello", settings(), mcp=name)
    line = str(caught.value)
    assert line.startswith(f"MCP server '{name}' could not start: ") and line.endswith("nothing was sent")
    assert "\n" not in line and "Traceback" not in line
    if name == "missing":
        assert "No such file or directory: 'no-such-mcp-server-command'" in line
    else:  # the server's own last stderr line says why
        assert "missing configuration TROUBLED_TOKEN" in line
    assert len(sdk_env.requests) == before
    assert servers.MANAGER.servers[name].state == "failed"


def test_an_unknown_server_name_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^--mcp: no MCP server named 'nope' \(servers: notes, troubled"):
        servers.offered_tools(CONFIG, "nope")


def test_hang_crash_and_error_are_error_results_and_the_server_comes_back(sdk_env: Emulator) -> None:
    sdk_env.set_script({"turns": [
        {"match": "Try everything", "content": [call("mcp__troubled__refuse", {"reason": "no"}, "toolu_1"),
                                                call("mcp__troubled__hang", {}, "toolu_2"),
                                                call("mcp__troubled__crash", {}, "toolu_3")]},
        {"match": "refused: no", "content": "All three failed."},
        {"match": "Again", "content": [call("mcp__troubled__refuse", {"reason": "again"}, "toolu_4")]},
        {"match": "refused: again", "content": "It refused again."},
    ]})
    servers.offered_tools(CONFIG, "troubled", timeout=20)  # started with time to spare: the turn's 2 s bound calls
    started = time.monotonic()
    state = run_exchange(prepare_turn("Try everything", settings(mcp_timeout=2.0), mcp="troubled"), None)
    assert state.status == "complete", state.error
    assert time.monotonic() - started < 20  # the hang cost its timeout, not forever
    results = sdk_env.requests[-1].messages[-1]["content"]
    assert [result.get("is_error") for result in results] == [True, True, True]
    texts = [result["content"][0]["text"] for result in results]
    assert "refused: no" in texts[0]
    assert texts[1] == "MCP server 'troubled' did not answer within 2 s (mcp_timeout); the call was cancelled"
    assert texts[2].startswith("MCP server 'troubled' stopped during the call")
    assert "crashing on purpose" in texts[2]  # its stderr's last line
    assert servers.MANAGER.servers["troubled"].state == "failed"
    assert "crashing on purpose" in servers.MANAGER.report(servers.parse_servers(CONFIG))
    # The next turn that names it starts it again.
    state = run_exchange(prepare_turn("Again", settings(), mcp="troubled"), None)
    assert state.status == "complete" and servers.MANAGER.servers["troubled"].state == "running"


def test_the_listing_shows_state_and_tools_as_plain_text(sdk_env: Emulator) -> None:
    servers.offered_tools(CONFIG, "troubled", timeout=20)
    report = servers.MANAGER.report(servers.parse_servers(CONFIG))
    lines = report.splitlines()
    assert any(line.startswith("troubled (stdio: ") and line.endswith("— running") for line in lines)
    assert "    mcp__troubled__shout_loud  Says it loudly" in report  # the server's `shout.loud`
    assert any(line.startswith("missing (stdio: no-such-mcp-server-command)") for line in lines)
    assert "\x1b" not in servers.plain("a\x1b[31mred\u202e")
    assert servers.MANAGER.report({}).startswith("No MCP servers configured.")


def test_a_resource_is_attached_like_a_file(sdk_env: Emulator) -> None:
    [attachment] = resolve_attachments(["@notes:notes://groceries"], {}, budget=10, mcp=(CONFIG, 20.0))
    assert attachment.kind == "MCP resource" and attachment.name == "@notes:notes://groceries"
    text = attachment.blocks[0]["text"]
    assert text.startswith('<attachment name="@notes:notes://groceries" kind="MCP resource">\neggs, flou')
    assert "cut to 10 of 25 characters" in text  # the attachment budget, as for a file
    # A binary image resource becomes an image block, as an attached PNG file does.
    [image] = resolve_attachments(["@troubled:image://dot"], {}, mcp=(CONFIG, 20.0))
    assert image.kind == "MCP resource image" and image.is_image
    assert image.blocks[-1]["source"]["media_type"] == "image/png"
    with pytest.raises(ContextError, match=r"^-a @nope:x://y: no MCP server named 'nope'.*nothing was sent\.$"):
        resolve_attachments(["@nope:x://y"], {}, mcp=(CONFIG, 20.0))


def test_without_the_mcp_package_the_line_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # what an environment without the package imports
    with pytest.raises(servers.McpUnavailable, match=r'^MCP servers need the mcp package: pip install '
                                                     r'"claude_magic\[mcp\]"$'):
        servers.offered_tools(CONFIG, "notes")


# -- streamable HTTP ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The notes server over streamable HTTP (uvicorn, inside the SDK's `run`), on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "claude_magic.examples.notes_server", "--http", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def test_a_streamable_http_server_works_like_a_stdio_one(sdk_env: Emulator, http_server: str) -> None:
    config = {"remote": {"type": "http", "url": http_server, "headers": {"X-Notebook": "yes"}}}
    tools = servers.offered_tools(config, "remote", timeout=20)
    assert [tool.name for tool in tools][:2] == ["mcp__remote__list_notes", "mcp__remote__read_note"]
    outcome = call_tool(tools[0], tools[0].name, {})
    assert not outcome.is_error and "groceries" in outcome.preview
    assert "remote (streamable HTTP http://127.0.0.1:" in servers.MANAGER.report(servers.parse_servers(config))
    [attachment] = resolve_attachments(["@remote:notes://ideas"], {}, mcp=(config, 20.0))
    assert "a notebook that answers questions about itself" in attachment.blocks[0]["text"]
    # A url where nothing listens: one line, nothing sent.
    with pytest.raises(servers.McpUnavailable, match="^MCP server 'gone' could not start: .*check that it is running"):
        servers.offered_tools({"gone": {"url": "http://127.0.0.1:9/mcp"}}, "gone", timeout=10)


def test_servers_start_together_and_a_changed_configuration_restarts_one(sdk_env: Emulator) -> None:
    servers.MANAGER.stop_all()  # from nothing: both start in the same call
    with pytest.raises(servers.McpUnavailable, match="^MCP server 'missing' could not start"):
        servers.offered_tools(CONFIG, "notes,missing", timeout=20)
    assert servers.MANAGER.servers["notes"].state == "running"  # the one that could start, did
    assert servers.MANAGER.servers["missing"].state == "failed"
    session = servers.MANAGER.servers["notes"].session
    changed = {**CONFIG, "notes": {**NOTES, "env": {"NOTES_FLAVOUR": "changed"}}}
    report = servers.MANAGER.report(servers.parse_servers(changed))
    assert "notes (stdio: " in report and "configuration changed: restarts on next use" in report
    servers.offered_tools(changed, "notes", timeout=20)
    assert servers.MANAGER.servers["notes"].session is not session
    assert servers.MANAGER.servers["notes"].config.env == (("NOTES_FLAVOUR", "changed"),)


def test_a_server_that_never_answers_at_start_is_stopped_after_the_timeout(sdk_env: Emulator) -> None:
    silent = {"silent": {"command": sys.executable, "args": ["-c", "import time; time.sleep(120)"]}}
    started = time.monotonic()
    with pytest.raises(servers.McpUnavailable, match=r"^MCP server 'silent' could not start: did not start within "
                                                     r"1 s \(mcp_timeout\)"):
        servers.offered_tools(silent, "silent", timeout=1)
    assert time.monotonic() - started < 15  # the timeout, then the SDK's bounded shutdown of the process
    server = servers.MANAGER.servers["silent"]
    assert server.state == "failed" and server.task.done()  # its session task is over, and its process:
    import psutil

    assert not [child for child in psutil.Process().children(recursive=True)
                if "time.sleep(120)" in " ".join(child.cmdline())]
