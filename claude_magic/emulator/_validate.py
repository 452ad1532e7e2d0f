"""Request checks that mirror the real API, raising :class:`ApiError` with the API's status and wording.

The point is to catch client bugs offline: a history that does not alternate roles, an empty message or
a missing tool_result is rejected here exactly where the real API would reject it on the next turn.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from anthropic.types import ModelParam

from .._model_facts import SAMPLING_PARAMETERS, takes_sampling
from ._binding import BindingOutcome, apply_binding, check_signatures
from ._errors import ApiError
from ._media_blocks import check_media_block
from ._server_tools import check_citation_settings
from ._structured import check_output_config
from ._thinking_rules import check_thinking
from ._tool_rules import check_tools

ROLES = ("user", "assistant")


@cache
def served_models() -> tuple[str, ...]:
    """The model ids the emulator serves: the installed SDK's, plus every model of the contract table. The API
    serves today's models whichever SDK release sends the request (an older SDK only lacks their names in its
    types), so a model the table knows is answered even where the installed SDK does not list it."""
    from .._model_facts import known_contracts

    return tuple(dict.fromkeys((*sdk_models(), *(row.model for row in known_contracts()))))


@cache
def sdk_models() -> tuple[str, ...]:
    """The model ids the installed SDK knows (the literals inside ``anthropic.types.ModelParam``).

    Read from the SDK rather than listed here so the emulator follows SDK upgrades on its own.
    """
    found: list[str] = []

    def walk(tp: Any) -> None:
        if typing.get_origin(tp) is typing.Literal:
            found.extend(arg for arg in typing.get_args(tp) if isinstance(arg, str))
            return
        for arg in typing.get_args(tp):
            walk(arg)

    walk(ModelParam)
    return tuple(dict.fromkeys(found))


def api_key_from(headers: Mapping[str, str]) -> str | None:
    """The credential a request carries: ``x-api-key``, or the token of ``authorization: Bearer``.

    SDK 2.x sends ``api_key`` as a Bearer token, older clients and curl examples use x-api-key.
    """
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def check_auth(headers: Mapping[str, str]) -> None:
    """401 unless the request carries a credential (any value is accepted: the emulator has no keys)."""
    if api_key_from(headers) is None:
        raise ApiError(401, "x-api-key header is required")


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_content(index: int, message: Mapping[str, Any], is_last: bool, images_in_request: int = 0,
                   ) -> None:
    content = message.get("content")
    where = f"messages.{index}"
    if isinstance(content, str):
        if not content:
            raise _bad(f"{where}: all messages must have non-empty content")
        if is_last and message.get("role") == "assistant" and content != content.rstrip():
            raise _bad("messages: final assistant content cannot end with trailing whitespace")
        return
    if not isinstance(content, list):
        raise _bad(f"{where}.content: Input should be a valid string or a list of content blocks")
    if not content:
        raise _bad(f"{where}: all messages must have non-empty content")
    for k, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad(f"{where}.content.{k}: Input should be a valid content block")
        if block["type"] == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise _bad(f"{where}.content.{k}.text: Field required")
            if not text:
                raise _bad("messages: text content blocks must be non-empty")
        elif block["type"] in ("image", "document"):
            check_media_block(f"{where}.content.{k}", block, images_in_request)


def _tool_ids(content: Any, kind: str, key: str) -> list[str]:
    if not isinstance(content, list):
        return []
    return [str(b.get(key)) for b in content if isinstance(b, dict) and b.get("type") == kind]


def _check_tool_pairs(messages: list[Any]) -> None:
    """Every tool_use must be answered by a tool_result in the next message, and only those."""
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and i + 1 < len(messages):
            uses = _tool_ids(message["content"], "tool_use", "id")
            results = set(_tool_ids(messages[i + 1]["content"], "tool_result", "tool_use_id"))
            missing = [u for u in uses if u not in results]
            if missing:
                raise _bad(
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
        if message["role"] == "user":
            previous = messages[i - 1]["content"] if i > 0 else []
            uses = set(_tool_ids(previous, "tool_use", "id"))
            for result in _tool_ids(message["content"], "tool_result", "tool_use_id"):
                if result not in uses:
                    raise _bad(
                        f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{result}. Each `tool_result` block must have a corresponding `tool_use` block in "
                        "the previous message."
                    )


def _image_count(messages: list[Any]) -> int:
    return sum(1 for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list)
               for b in m["content"] if isinstance(b, dict) and b.get("type") == "image")


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    images = _image_count(messages)  # more than 20 in one request lowers the size limit
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise _bad(f"messages.{i}.content: Field required")
        _check_content(i, message, i == len(messages) - 1, images)
    if messages[0]["role"] != "user":
        raise _bad('messages: first message must use the "user" role')
    for previous, current in zip(messages, messages[1:], strict=False):
        if previous["role"] == current["role"]:
            raise _bad(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{current["role"]}" roles in a row'
            )
    _check_tool_pairs(messages)


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system
    ):
        raise _bad("system: Input should be a valid string or a list of text blocks")


def validate_request(body: Any, models: Iterable[str], *, count_only: bool = False,
                     paused: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Check a Messages (or count_tokens) request body; returns it, or raises :class:`ApiError`.

    The thinking blocks it carries are checked afterwards by :func:`check_thinking_blocks`."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise _bad("model: Field required")
    if not isinstance(model, str):
        raise _bad("model: Input should be a valid string")
    if not count_only:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise _bad("max_tokens: Field required")
        if not _is_int(max_tokens):
            raise _bad("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise _bad("max_tokens: Input should be greater than or equal to 1")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _bad("stream: Input should be a valid boolean")
    _check_messages(body.get("messages"))
    check_tools(body)
    check_citation_settings(body)
    for name in SAMPLING_PARAMETERS:
        if body.get(name) is not None and not takes_sampling(model):
            raise _bad(f"`{name}` is deprecated for this model.")
    check_thinking(body, count_only=count_only, paused=paused)
    check_output_config(body)
    _check_system(body.get("system"))
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1
    ):
        raise _bad("temperature: range: 0..1")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise _bad("stop_sequences: Input should be a valid list of strings")
    # The API checks the schema first and resolves the model last, so a bad body wins over a bad model.
    if model not in set(models):
        raise ApiError(404, f"model: {model}")
    return body


def check_thinking_blocks(body: dict[str, Any], signatures: frozenset[str] = frozenset(),
                          headers: dict[str, str] | None = None) -> BindingOutcome:
    """The thinking blocks of a valid request checked the way the API checks them (signatures, and on the
    models with preserved thinking, the model and prefix each block is bound to): the messages the model
    sees and what was dropped, or the API's 400. `signatures`: signatures a script set by hand."""
    return apply_binding(body, signatures, headers)


HISTORY_MODEL = "history-check"


def history_problem(messages: Any, tools: list[dict[str, Any]] | None = None) -> str | None:
    """Why the API would reject `messages` as a conversation's history (None: it would accept it).

    The request checks above, applied to a history on its own: roles alternate starting with the user,
    no content is empty, every `tool_use` is answered by a `tool_result` in the next message, the tools
    those blocks name are among `tools`; and a history ends with an answer (an assistant message).
    """
    body: dict[str, Any] = {"model": HISTORY_MODEL, "messages": messages}
    if tools:
        body["tools"] = tools
    try:
        validate_request(body, (HISTORY_MODEL,), count_only=True)
        check_signatures(messages)
    except ApiError as error:
        return error.message
    if messages[-1]["role"] != "assistant":
        return "the history must end with an assistant message (an answer)"
    return None
