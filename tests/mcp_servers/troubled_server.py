"""An MCP server that misbehaves on request, for the failure-mode tests: a tool that crashes the server, one
that never answers, one that reports an error, and names and descriptions carrying markup.

    python tests/mcp_servers/troubled_server.py           # stdio
"""

from __future__ import annotations

import json
import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("troubled")
# Markup in a tool's name, description and result (tests/test_mcp_xss.py sets the whole XSS corpus).
PAYLOAD = '<img src=x onerror="window.__xss=1">'
if os.environ.get("TROUBLED_XSS_CORPUS"):  # a file: some payloads hold characters an environment cannot (NUL)
    with open(os.environ["TROUBLED_XSS_CORPUS"], encoding="utf-8") as corpus:
        PAYLOAD = "\n".join(entry["payload"] for entry in json.load(corpus)["payloads"])
ODD_NAME = os.environ.get("TROUBLED_TOOL_NAME", "shout.loud")


@server.tool()
def crash() -> str:
    """Ends the server's process at once, mid-call."""
    sys.stderr.write("troubled server: crashing on purpose\n")
    sys.stderr.flush()
    os._exit(3)


@server.tool()
def hang() -> str:
    """Never answers."""
    time.sleep(3600)
    return "unreachable"


@server.tool()
def refuse(reason: str) -> str:
    """Fails with the reason given (an isError result)."""
    raise ToolError(f"refused: {reason}")


@server.tool(name=ODD_NAME, description=f"Says it loudly {PAYLOAD}")
def shout(text: str) -> str:
    return f"{text.upper()} {PAYLOAD}"


if __name__ == "__main__":
    if os.environ.get("TROUBLED_FAIL_AT_START"):
        sys.stderr.write("troubled server: missing configuration TROUBLED_TOKEN\n")
        sys.exit(2)
    server.run()
