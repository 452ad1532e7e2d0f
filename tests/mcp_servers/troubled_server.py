"""An MCP server that misbehaves on request, for the failure-mode tests: a tool that crashes the server, one
that never answers, one that reports an error, and names and descriptions carrying markup.

    python tests/mcp_servers/troubled_server.py           # stdio
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import zlib

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


def _one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1×1, 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) \
        + chunk(b"IEND", b"")


@server.resource("image://dot", mime_type="image/png")
def dot() -> bytes:
    """A one-pixel red PNG (a binary resource)."""
    return _one_pixel_png()


if __name__ == "__main__":
    if os.environ.get("TROUBLED_FAIL_AT_START"):
        sys.stderr.write("troubled server: missing configuration TROUBLED_TOKEN\n")
        sys.exit(2)
    server.run()
