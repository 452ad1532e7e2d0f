"""One exchange for every surface: options → conversation → client → request → stream → commit.

The magic, the chat panel and the Python API all run a turn the same way:

    turn = prepare_turn(prompt, current_settings(), model="claude-opus-5-5")   # resolve, snapshot history
    run_exchange(turn, sink)                     # or: await run_exchange_async(turn, sink)
    turn.state.status, turn.committed            # one final state; history changed only on success

They differ only in the sink they draw on (cell, terminal, panel view, None for nothing) and in how they
drive it (the cell's thread, the panel's daemon thread, the event loop). This module draws nothing and
raises nothing for a failed turn: failures — including a client that cannot be built, such as a missing
API key — end as a TurnState with `error` set, which the surface reports its own way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from claude_magic.core.client import ClientSettings, get_async_client, get_client
from claude_magic.core.context import Attachment, user_content, without_images
from claude_magic.core.history import STORE, Conversation
from claude_magic.core.request import TurnOptions, build_request
from claude_magic.core.stream import SharedBackoff, Sink, TurnControl, run_turn, run_turn_async
from claude_magic.core.throttle import Throttle
from claude_magic.core.tokens import check_budget, check_budget_async, input_limit, remember_exchange
from claude_magic.core.tool_loop import ToolLoop, api_valid_prefix
from claude_magic.core.tools import make_toolset, resolve_names, tool_choice_param
from claude_magic.core.turn import ErrorInfo, TurnState
from claude_magic.settings import ClaudeMagic, check_max_tokens, check_temperature

ONE_OFF = None
"""`conversation=ONE_OFF`: a fresh one-turn exchange that is never added to any history (`map`)."""

_USE_SETTINGS = ""


@dataclass
class PreparedTurn:
    """Everything one exchange needs, fixed when it was asked (the panel asks on one thread, streams on another)."""

    prompt: str
    conversation: Conversation | None  # None: a one-off exchange, committed nowhere
    request: dict[str, Any]
    state: TurnState
    client_settings: ClientSettings
    throttle_interval: float
    max_retries: int
    committed: bool = False
    content: Any = None  # the user message's content when it is more than the prompt (attachments)
    input_limit: int | None = None  # refuse before sending above this many input tokens (None: no check)
    tool_loop: ToolLoop | None = None  # the turn offers tools: rounds run until Claude stops calling them


def prepare_turn(
    prompt: str,
    settings: ClaudeMagic,
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    system: str | None = None,
    temperature: float | None = None,
    conversation: str | None = _USE_SETTINGS,
    new: bool = False,
    error_raised: bool = False,
    attachments: Sequence[Attachment] = (),
    tools: Any = None,
    tool_choice: str | None = None,
    max_tool_rounds: int | None = None,
    namespace: Any = None,
) -> PreparedTurn:
    """Resolve the options (call arguments over settings) and snapshot the conversation for `prompt`.

    `conversation`: a name, "" for the settings' conversation, or ONE_OFF. `error_raised`: the surface
    will raise the error line itself, so the drawing leaves it out. Invalid options raise ValueError.
    `tools`: callables, beta_tool objects, tool dicts, or names looked up in `namespace` (default:
    `settings.tools`); an unknown name or an unusable signature raises ValueError (`ToolSetupError`).
    """
    options = TurnOptions(
        model=model or settings.model,
        max_tokens=check_max_tokens(settings.max_tokens if max_tokens is None else max_tokens),
        system=settings.system if system is None else system,
        temperature=check_temperature(settings.temperature if temperature is None else temperature),
        prompt_caching=settings.prompt_caching,
    )
    history = None if conversation is ONE_OFF else STORE.get(conversation or settings.conversation)
    if history is not None and new:
        history.reset()
    content = user_content(prompt, attachments)
    messages = history.request_messages(content) if history is not None else [{"role": "user", "content": content}]
    if not settings.history_images:  # earlier turns' images and PDFs stay in history, but are not re-sent
        messages = [*without_images(messages[:-1]), messages[-1]]
    state = TurnState(model=options.model, prompt=prompt, started_at=time.monotonic(), offline=settings.offline,
                      error_raised=error_raised)
    request = build_request(options, messages)
    tool_loop = _offer_tools(request, settings, history, tools, tool_choice, max_tool_rounds, namespace)
    return PreparedTurn(
        prompt=prompt,
        conversation=history,
        request=request,
        tool_loop=tool_loop,
        state=state,
        client_settings=ClientSettings(settings.offline, settings.connect_timeout, settings.read_timeout,
                                       settings.emulator_script),
        throttle_interval=settings.throttle_interval,
        max_retries=settings.max_retries,
        content=content if attachments else None,
        input_limit=input_limit(settings.max_input_tokens, options.model),
    )


def _offer_tools(request: dict[str, Any], settings: ClaudeMagic, history: Conversation | None, tools: Any,
                 tool_choice: str | None, max_tool_rounds: int | None, namespace: Any) -> ToolLoop | None:
    """Put `tools` / `tool_choice` into `request`; the ToolLoop that will run the calls, if any."""
    toolset = make_toolset(resolve_names(settings.tools if tools is None else tools, namespace or {}))
    kept = history.tool_definitions if history is not None else {}
    definitions = toolset.definitions() + [d for name, d in kept.items() if toolset.get(name) is None]
    if tool_choice and not toolset:
        raise ValueError(f"--tool-choice {tool_choice} needs tools: name them with --tools")
    choice = tool_choice_param(tool_choice, toolset)
    if not toolset and kept:
        # Earlier turns used tools: their definitions go along (the API rejects tool blocks in `messages`
        # otherwise), and tool_choice none keeps Claude from calling what this turn cannot run.
        choice = {"type": "none"}
    if definitions:
        request["tools"] = definitions
    if choice is not None:
        request["tool_choice"] = choice
    if not toolset:
        return None
    rounds = settings.max_tool_rounds if max_tool_rounds is None else max_tool_rounds
    if rounds < 1:
        raise ValueError(f"max_tool_rounds must be at least 1, got {rounds}")
    return ToolLoop(toolset, request, max_rounds=rounds, result_limit=settings.tool_result_limit,
                    debug=settings.debug)


def run_exchange(turn: PreparedTurn, sink: Sink | None, *, control: TurnControl | None = None) -> TurnState:
    """Stream `turn` on this thread, drawing on `sink`; commit it to its conversation if it completed."""
    try:
        client = get_client(turn.client_settings)
    except Exception as exc:  # noqa: BLE001 - e.g. no API key: the message says the fix
        return _setup_failed(turn, exc)
    refusal = check_budget(turn.request, turn.input_limit,
                           lambda params: client.messages.count_tokens(**params).input_tokens)
    if refusal is not None:
        return _setup_failed(turn, ValueError(refusal))  # nothing was sent
    loop = turn.tool_loop
    if loop is not None:
        # A surface that can Stop (the panel) runs sync tools in a worker thread, so Stop ends the turn at
        # once; the others run them on the calling thread (the kernel's main thread in a cell).
        loop.control, loop.in_worker = control, control is not None
    run_turn(client, turn.request, turn.state, sink, throttle=Throttle(turn.throttle_interval),
             max_retries=turn.max_retries, control=control,
             after_round=loop.after_round if loop is not None else None)
    return _commit(turn)


async def run_exchange_async(turn: PreparedTurn, sink: Sink | None, *,
                             backoff: SharedBackoff | None = None) -> TurnState:
    """`run_exchange` through `AsyncAnthropic` on the running event loop; cancelling it leaves history
    untouched and the partial answer marked (the CancelledError is raised again)."""
    try:
        client = get_async_client(turn.client_settings)
    except Exception as exc:  # noqa: BLE001
        return _setup_failed(turn, exc)

    async def count(params: dict[str, Any]) -> int:
        return (await client.messages.count_tokens(**params)).input_tokens

    refusal = await check_budget_async(turn.request, turn.input_limit, count)
    if refusal is not None:
        return _setup_failed(turn, ValueError(refusal))
    loop = turn.tool_loop
    await run_turn_async(client, turn.request, turn.state, sink, throttle=Throttle(turn.throttle_interval),
                         max_retries=turn.max_retries, backoff=backoff,
                         after_round=loop.after_round_async if loop is not None else None)
    return _commit(turn)


def _commit(turn: PreparedTurn) -> TurnState:
    # Only whole, completed exchanges enter history: a failed or stopped one would break alternation.
    _mark_cut_off_calls(turn.state)
    if turn.state.status == "complete" and turn.conversation is not None:
        turn.committed = _commit_valid(turn, turn.prompt if turn.content is None else turn.content)
        if turn.committed:  # the next turn's prefix: its tokens are what this one reported, in and out
            remember_exchange(turn.conversation.messages, turn.request, turn.state.usage)
    return turn.state


def _mark_cut_off_calls(state: TurnState) -> None:
    for block in state.blocks:  # a tool call whose input JSON max_tokens cut off is shown as such
        if block.kind == "tool_use" and block.to_param() is None:
            block.cut_off = True


def _commit_valid(turn: PreparedTurn, user: Any) -> bool:
    """Commit the exchange as far as the API accepts it back (every tool_use answered; see api_valid_prefix)."""
    assert turn.conversation is not None
    loop = turn.tool_loop
    if loop is not None:
        exchange = loop.committable(user)
        if exchange is None:
            return False
        used = {name: tool.definition for name in loop.used_tool_names()
                if (tool := loop.tools.get(name)) is not None}
        return turn.conversation.commit_exchange(exchange, used)
    # Without tools a tool_use could still arrive (a replayed transcript, a server): history keeps only
    # what the API accepts back.
    exchange = api_valid_prefix([{"role": "user", "content": user},
                                 {"role": "assistant", "content": turn.state.assistant_content()}])
    return exchange is not None and turn.conversation.commit(user, exchange[-1]["content"])


def _setup_failed(turn: PreparedTurn, exc: Exception) -> TurnState:
    state = turn.state
    state.status = "error"
    state.error = ErrorInfo("setup", str(exc) or repr(exc))
    state.finished_at = time.monotonic()
    return state


__all__ = ["ONE_OFF", "PreparedTurn", "prepare_turn", "run_exchange", "run_exchange_async"]
