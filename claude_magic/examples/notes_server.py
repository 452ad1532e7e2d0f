"""A tiny MCP server for the MCP tutorial and the tests: a notebook of notes, in memory.

    python -m claude_magic.examples.notes_server              # stdio (what `command`/`args` start)
    python -m claude_magic.examples.notes_server --http 8765  # streamable HTTP on 127.0.0.1:8765/mcp

Configured in a notebook the way Claude Desktop and Claude Code configure servers:

    %config ClaudeMagic.mcp_servers = {"notes": {"command": sys.executable,
                                                  "args": ["-m", "claude_magic.examples.notes_server"]}}

Tools: `list_notes`, `read_note`, `add_note`; every note is also a resource, `notes://TITLE`
(`%%claude -a @notes:notes://groceries`). Needs the `mcp` package (`pip install "claude_magic[mcp]"`).
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("notes", instructions="A small notebook of notes: list, read and add notes.")

NOTES: dict[str, str] = {
    "groceries": "eggs, flour, milk, lemons",
    "ideas": "a notebook that answers questions about itself",
}


@server.tool()
def list_notes() -> str:
    """The titles of all notes, comma-separated."""
    return ", ".join(sorted(NOTES))


@server.tool()
def read_note(title: str) -> str:
    """The text of one note.

    Args:
        title: The note's title, as list_notes gives it.
    """
    if title not in NOTES:
        raise ToolError(f"No note titled {title!r}; titles: {', '.join(sorted(NOTES))}")
    return NOTES[title]


@server.tool()
def add_note(title: str, text: str) -> str:
    """Add a note, or replace the note with that title.

    Args:
        title: A short title.
        text: What the note says.
    """
    NOTES[title] = text
    return f"Saved note {title!r} ({len(text)} characters)."


@server.resource("notes://{title}", mime_type="text/plain")
def note(title: str) -> str:
    """One note's text, as a resource."""
    return NOTES.get(title, "")


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
