"""The Messages API's rules for tools, checked the way the API checks them (400 invalid_request_error).

From the API's tool use documentation: client tools need a name matching ``^[a-zA-Z0-9_-]{1,64}$``
and an object ``input_schema``; names are unique; ``tool_choice`` (auto | any | tool | none) needs
``tools`` and a ``tool`` choice must name one of them; requests whose ``messages`` hold ``tool_use`` or
``tool_result`` blocks must define ``tools``; each ``tool_use`` is answered by a ``tool_result`` in the
next user message, and in that message the results come before any other content. The pairing itself
is checked in ``_validate._check_tool_pairs``.
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import ApiError
from ._server_tools import check_server_tool

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def custom_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's client tools (no server tool ``type``, or ``type: custom``)."""
    tools = body.get("tools") or []
    return [tool for tool in tools if isinstance(tool, dict) and tool.get("type", "custom") == "custom"]


def _check_definitions(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        raise _bad("tools: Input should be a valid list")
    names: list[str] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad(f"tools.{i}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str):
            raise _bad(f"tools.{i}.name: Field required")
        if tool.get("type", "custom") != "custom":
            check_server_tool(i, tool)
        else:
            if not TOOL_NAME.match(name):
                raise _bad(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise _bad(f"tools.{i}.custom.input_schema: Field required")
            if schema.get("type") != "object":
                raise _bad(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        if name in names:
            raise _bad("tools: Tool names must be unique.")
        names.append(name)
    return names


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def check_tools(body: dict[str, Any]) -> None:
    """Raise ApiError (400) where the real API would reject the request's tools or tool blocks."""
    tools = body.get("tools")
    names = _check_definitions(tools) if tools is not None else []
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICE_TYPES:
            raise _bad("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', "
                       "'none'")
        if not names:
            raise _bad("tool_choice: tool_choice may only be specified while providing tools.")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise _bad(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in provided tools")
    messages = body.get("messages") or []
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        kinds = [block.get("type") for block in blocks]
        if ("tool_use" in kinds or "tool_result" in kinds) and not names:
            raise _bad("Requests which include `tool_use` or `tool_result` blocks must define tools.")
        for k, block in enumerate(blocks):
            if block.get("type") == "tool_use" and block.get("name") not in names:
                raise _bad(f"messages.{i}.content.{k}: tool_use names a tool that is not defined in tools: "
                           f"{block.get('name')!r}")
        if isinstance(message, dict) and message.get("role") == "user" and "tool_result" in kinds:
            first_other = next((n for n, kind in enumerate(kinds) if kind != "tool_result"), len(kinds))
            if "tool_result" in kinds[first_other:]:
                raise _bad(f"messages.{i}: `tool_result` blocks must come first in the content of a user "
                           "message, before any other content.")
