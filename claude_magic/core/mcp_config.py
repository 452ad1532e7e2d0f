"""MCP server configuration, read without importing the MCP or Anthropic SDKs (`%config` checks it at once).

    parse_servers({"notes": {"command": "python", "args": ["-m", "claude_magic.examples.notes_server"]}})

The shape Claude Desktop and Claude Code use: `{"name": {"command", "args", "env", "cwd"}}` for a server started
as a subprocess (stdio), `{"name": {"url", "headers"}}` for streamable HTTP; an optional `"type"` (`stdio`,
`http`, `streamable-http`) as in Claude Code's `.mcp.json`; the servers may sit under a top-level
`"mcpServers"`, and a path to such a JSON file is taken too. The servers themselves: core/mcp.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME_PREFIX = "mcp__"
TOOL_NAME_LIMIT = 64  # the API's `^[a-zA-Z0-9_-]{1,64}$`
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_TRANSPORTS = {"stdio": "stdio", "http": "http", "streamable-http": "http", "streamable_http": "http",
               "streamableHttp": "http"}


@dataclass(frozen=True)
class ServerConfig:
    """One configured server; `==` tells whether a running server still matches its configuration."""

    name: str
    transport: str  # stdio | http
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """How it is reached, without env or header values (they hold tokens)."""
        if self.transport == "http":
            return f"streamable HTTP {self.url}"
        return "stdio: " + " ".join([self.command, *self.args])


def load_servers_setting(value: Any) -> Mapping[str, Any]:
    """`mcp_servers` as a mapping: the dict itself, or the JSON file a path names (Claude Desktop's
    `claude_desktop_config.json`, Claude Code's `.mcp.json`)."""
    if isinstance(value, (str, Path)):
        if not str(value).strip():
            return {}
        path = Path(value).expanduser()
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"mcp_servers: cannot read {str(path)!r}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"mcp_servers: {str(path)!r} is not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"mcp_servers takes a dict of servers or a path to a JSON file, got {type(value).__name__}")
    return value


def parse_servers(value: Any) -> dict[str, ServerConfig]:
    """Every server of `mcp_servers` (a dict, or a path to a JSON file); ValueError (one line) when one is
    malformed."""
    servers = load_servers_setting(value)
    if "mcpServers" in servers:
        servers = servers["mcpServers"]
        if not isinstance(servers, Mapping):
            raise ValueError("mcp_servers: 'mcpServers' must map server names to their settings")
    return {str(name): _parse_server(str(name), spec) for name, spec in servers.items()}


def _parse_server(name: str, spec: Any) -> ServerConfig:
    where = f"mcp_servers[{name!r}]"
    if not name or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"{where}: a server name takes letters, digits, '_', '-' or '.'")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} must be a dict with 'command' (stdio) or 'url' (streamable HTTP)")
    kind = spec.get("type")
    if kind is not None and kind not in _TRANSPORTS:
        hint = " (the old SSE transport is not supported: use the server's streamable HTTP endpoint)" \
            if kind == "sse" else ""
        raise ValueError(f"{where}: unknown type {kind!r}; use stdio or http{hint}")
    transport = _TRANSPORTS.get(kind) if kind else ("http" if "url" in spec else "stdio")
    if transport == "http":
        url = spec.get("url")
        if not isinstance(url, str) or not re.match(r"https?://", url):
            raise ValueError(f"{where}: 'url' must be an http:// or https:// address")
        return ServerConfig(name, "http", url=url, headers=_string_pairs(spec.get("headers"), f"{where}['headers']"))
    command = spec.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ValueError(f"{where}: a stdio server needs a 'command' (or give a 'url' for streamable HTTP)")
    args = spec.get("args", [])
    if not isinstance(args, (list, tuple)) or not all(isinstance(arg, str) for arg in args):
        raise ValueError(f"{where}: 'args' must be a list of strings")
    cwd = spec.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ValueError(f"{where}: 'cwd' must be a string")
    return ServerConfig(name, "stdio", command=command, args=tuple(args),
                        env=_string_pairs(spec.get("env"), f"{where}['env']"), cwd=cwd)


def _string_pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{where} must map strings to strings")
    return tuple(sorted(value.items()))


def split_server_names(value: str | Iterable[str] | None) -> list[str]:
    """`--mcp a,b` / `mcp=["a", "b"]` / `mcp="a"` as a list of names, in order, without repeats."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [part for item in value for part in str(item).split(",")]
    return list(dict.fromkeys(part.strip() for part in parts if part.strip()))


def api_tool_name(server: str, tool: str, taken: Iterable[str] = ()) -> str:
    """`mcp__SERVER__TOOL` within the API's tool-name rule; a cut (or clashing) name ends in a short hash."""
    name = _NOT_IN_NAME.sub("_", f"{NAME_PREFIX}{server}__{tool}")
    taken = set(taken)
    if len(name) <= TOOL_NAME_LIMIT and name not in taken:
        return name
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
    return f"{name[: TOOL_NAME_LIMIT - 9]}_{digest}"


def plain(text: Any, limit: int = 200) -> str:
    """Untrusted text (a tool's name or description, a server's message) for a one-line text view: control
    and bidirectional characters (terminal escapes, spoofing) removed, whitespace folded, cut to `limit`."""
    folded = " ".join(_CONTROL.sub("", str(text or "")).split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


__all__ = ["NAME_PREFIX", "ServerConfig", "api_tool_name", "load_servers_setting", "parse_servers", "plain",
           "split_server_names"]
