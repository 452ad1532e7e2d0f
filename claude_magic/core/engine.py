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
from dataclasses import asdict, dataclass
from typing import Any

from claude_magic.core.client import ClientSettings, get_async_client, get_client
from claude_magic.core.context import Attachment, user_content, without_images
from claude_magic.core.history import STORE, Conversation, Placement, Turn
from claude_magic.core.persist import install as install_saver
from claude_magic.core.pricing import estimate_cost, parse_overrides
from claude_magic.core.request import TurnOptions, build_request, check_sampling, thinking_param
from claude_magic.core.stream import SharedBackoff, Sink, TurnControl, run_turn, run_turn_async
from claude_magic.core.structured import OutputSpec, output_spec, parse_into, with_format
from claude_magic.core.throttle import Throttle
from claude_magic.core.tokens import check_budget, check_budget_async, input_limit, remember_exchange
from claude_magic.core.tool_loop import ToolLoop, api_valid_prefix, as_prefill, begin_round
from claude_magic.core.tools import make_toolset, resolve_names, tool_choice_param
from claude_magic.core.turn import ErrorInfo, TurnState, Usage, block_from_param
from claude_magic.settings import ClaudeMagic, check_max_tokens, check_temperature

ONE_OFF = None
"""`conversation=ONE_OFF`: a fresh one-turn exchange that is never added to any history (`map`)."""
MAX_PAUSES = 3  # a paused turn (stop_reason pause_turn) is continued automatically this many times at most
CONTINUABLE = ("max_tokens", "pause_turn")

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
    source: str = "code"  # where the turn was asked: cell | panel | code
    owner: str | None = None  # the cell it belongs to: re-running that cell replaces its turn
    replaces: str | None = None  # the id of the turn this one replaces (the same cell's earlier turn)
    continues: Turn | None = None  # `%claude continue`: the cut-off turn this answer goes on from
    prices: Any = None  # price overrides (core.pricing) for the cost estimate
    pauses: int = 0  # pause_turn continuations so far
    output: OutputSpec | None = None  # a typed answer (`output=Model`): parsed into state.parsed at the end


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
    thinking: str | int | None = None,
    source: str = "code",
    owner: str | None = None,
    append: bool = False,
    output: Any = None,
) -> PreparedTurn:
    """Resolve the options (call arguments over settings) and snapshot the conversation for `prompt`.

    `conversation`: a name, "" for the settings' conversation, or ONE_OFF. `error_raised`: the surface
    will raise the error line itself, so the drawing leaves it out. Invalid options raise ValueError.
    `tools`: callables, beta_tool objects, tool dicts, or names looked up in `namespace` (default:
    `settings.tools`); an unknown name or an unusable signature raises ValueError (`ToolSetupError`).
    `owner`: the cell asking (its id): when that cell committed a turn before, this turn is asked with only
    the history before it and replaces it in place, unless `append`.
    `output`: a pydantic model, dataclass, TypedDict or JSON-schema dict (core.structured): the answer is
    that object as JSON (the API's structured output), validated into `state.parsed` when the turn ends.
    """
    spec = output_spec(output)
    options = _options(settings, model, max_tokens, system, temperature, thinking)
    install_saver(lambda: settings.history_dir)
    history = None if conversation is ONE_OFF else STORE.get(conversation or settings.conversation)
    if history is not None and new:
        history.reset()
    replaces = None
    if history is not None and owner is not None and not append:
        earlier = history.owned_by(owner)
        replaces = earlier.id if earlier is not None else None
    content = user_content(prompt, attachments)
    messages = (history.request_messages(content, before=replaces) if history is not None
                else [{"role": "user", "content": content}])
    if not settings.history_images:  # earlier turns' images and PDFs stay in history, but are not re-sent
        messages = [*without_images(messages[:-1]), messages[-1]]
    state = TurnState(model=options.model, prompt=prompt, started_at=time.monotonic(), offline=settings.offline,
                      error_raised=error_raised, typed=spec is not None)
    request = build_request(options, messages)
    if spec is not None:
        request["output_config"] = with_format(request.get("output_config"), spec)
    tool_loop = _offer_tools(request, settings, history, tools, tool_choice, max_tool_rounds, namespace)
    return PreparedTurn(
        prompt=prompt,
        conversation=history,
        request=request,
        tool_loop=tool_loop,
        state=state,
        client_settings=_client_settings(settings),
        throttle_interval=settings.throttle_interval,
        max_retries=settings.max_retries,
        content=content if attachments else None,
        input_limit=input_limit(settings.max_input_tokens, options.model),
        source=source,
        owner=owner,
        replaces=replaces,
        prices=parse_overrides(settings.prices),
        output=spec,
    )


def prepare_continuation(settings: ClaudeMagic, *, conversation: str = _USE_SETTINGS, max_tokens: int | None = None,
                         source: str = "code", error_raised: bool = False) -> PreparedTurn:
    """Go on with the conversation's last answer, which max_tokens cut off (`%claude continue`).

    The request ends with that answer as the assistant's message, so the API writes on from where it
    stopped; the new text streams into the same block, and the turn is then replaced by one answer made
    of both parts. ValueError (one line) when there is nothing to continue.
    """
    install_saver(lambda: settings.history_dir)
    history = STORE.get(conversation or settings.conversation)
    last = history.last_turn()
    if last is None:
        raise ValueError(f"Nothing to continue: conversation {history.name!r} is empty")
    if last.stop_reason not in CONTINUABLE:
        raise ValueError(f"Nothing to continue: the last answer ended with stop_reason {last.stop_reason or 'none'}, "
                         "not max_tokens")
    partial = last.messages[-1]["content"]
    prefill = [block for block in partial if block.get("type") not in ("thinking", "redacted_thinking")]
    if not prefill or prefill[-1].get("type") != "text" or not prefill[-1]["text"].strip():
        raise ValueError("Nothing to continue: the answer was cut off before any text (while thinking). "
                         "Re-run its cell with a higher --max-tokens")
    # The API rejects a final assistant message that ends in whitespace; the kept text is trimmed the same
    # way, so the two parts join exactly where the API goes on.
    prefill[-1] = {**prefill[-1], "text": prefill[-1]["text"].rstrip()}
    shown = [{**block, "text": block["text"].rstrip()} if block is partial[-1] and block.get("type") == "text"
             else block for block in partial]
    # Thinking stays off for the continuation: the API does not continue an answer with thinking on.
    options = _options(settings, last.model or None, max_tokens, None, None, "off")
    messages = [*history.messages_before(last.id), *last.messages[:-1], {"role": "assistant", "content": prefill}]
    request = build_request(options, messages)
    definitions = history.tool_definitions
    if definitions:  # tool blocks in the history need their definitions; none may be called now
        request["tools"] = list(definitions.values())
        request["tool_choice"] = {"type": "none"}
    state = TurnState(model=options.model, prompt=last.prompt_text, started_at=time.monotonic(),
                      offline=settings.offline, error_raised=error_raised)
    state.blocks = [block_from_param(block) for block in shown]
    state.kept_blocks = len(state.blocks)
    state.seam = state.blocks[-1].kind == "text"
    state.round_start = len(state.blocks) - 1 if state.seam else len(state.blocks)
    return PreparedTurn(
        prompt=last.prompt_text, conversation=history, request=request, state=state,
        client_settings=_client_settings(settings), throttle_interval=settings.throttle_interval,
        max_retries=settings.max_retries, input_limit=input_limit(settings.max_input_tokens, options.model),
        source=source, owner=last.owner, replaces=last.id, continues=last, prices=parse_overrides(settings.prices),
    )


def _options(settings: ClaudeMagic, model: str | None, max_tokens: int | None, system: str | None,
             temperature: float | None, thinking: str | int | None) -> TurnOptions:
    """Call arguments over settings, each checked (ValueError with the fix)."""
    tokens = check_max_tokens(settings.max_tokens if max_tokens is None else max_tokens)
    sampling = check_temperature(settings.temperature if temperature is None else temperature)
    model = model or settings.model
    check_sampling(model, sampling)
    return TurnOptions(
        model=model,
        max_tokens=tokens,
        system=settings.system if system is None else system,
        temperature=sampling,
        prompt_caching=settings.prompt_caching,
        thinking=thinking_param(settings.thinking if thinking is None else thinking, max_tokens=tokens,
                                temperature=sampling, model=model),
    )


def _client_settings(settings: ClaudeMagic) -> ClientSettings:
    return ClientSettings(settings.offline, settings.connect_timeout, settings.read_timeout, settings.emulator_script)


def _offer_tools(request: dict[str, Any], settings: ClaudeMagic, history: Conversation | None, tools: Any,
                 tool_choice: str | None, max_tool_rounds: int | None, namespace: Any) -> ToolLoop | None:
    """Put `tools` / `tool_choice` into `request`; the ToolLoop that will run the calls, if any."""
    toolset = make_toolset(resolve_names(settings.tools if tools is None else tools, namespace or {}))
    kept = history.tool_definitions if history is not None else {}
    definitions = toolset.definitions() + [d for name, d in kept.items() if toolset.get(name) is None]
    if tool_choice and not toolset:
        raise ValueError(f"--tool-choice {tool_choice} needs tools: name them with --tools")
    choice = tool_choice_param(tool_choice, toolset)
    if choice is not None and choice["type"] in ("any", "tool") and "thinking" in request:
        raise ValueError(f"--tool-choice {tool_choice} forces a tool call, which the API does not allow with "
                         "thinking: use auto, or turn thinking off")
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

    def after_round(state: TurnState, frames: Any) -> dict[str, Any] | None:
        next_request = loop.after_round(state, frames) if loop is not None else None
        return next_request or _resume_paused(turn, state, frames)

    run_turn(client, turn.request, turn.state, sink, throttle=Throttle(turn.throttle_interval),
             max_retries=turn.max_retries, control=control, after_round=after_round,
             settle=lambda _state: _commit(turn))
    return turn.state


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

    async def after_round(state: TurnState, frames: Any) -> dict[str, Any] | None:
        next_request = await loop.after_round_async(state, frames) if loop is not None else None
        return next_request or _resume_paused(turn, state, frames)

    await run_turn_async(client, turn.request, turn.state, sink, throttle=Throttle(turn.throttle_interval),
                         max_retries=turn.max_retries, backoff=backoff, after_round=after_round,
                         settle=lambda _state: _commit(turn))
    return turn.state


def _resume_paused(turn: PreparedTurn, state: TurnState, frames: Any) -> dict[str, Any] | None:
    """stop_reason pause_turn (a long server-side step paused): send the answer so far back as the
    assistant's message, and the API goes on with it; at most MAX_PAUSES times a turn. In a turn with
    tools the tool loop, which keeps the turn's messages so far, builds that request."""
    if state.status != "complete" or state.stop_reason != "pause_turn" or turn.pauses >= MAX_PAUSES:
        return None
    turn.pauses += 1
    if turn.tool_loop is not None:
        return turn.tool_loop.resume_paused(state, frames)
    with frames.lock:
        content = as_prefill(state.assistant_content())
        begin_round(state, tool_round=False)
    if not content:
        return None
    messages = list(turn.request["messages"])
    if messages[-1]["role"] == "assistant":  # a continuation's own prefill is replaced by the longer answer
        messages.pop()
    return {**turn.request, "messages": [*messages, {"role": "assistant", "content": content}]}


def _commit(turn: PreparedTurn) -> None:
    """Runs when the stream has ended, before the final draw, so the footer can say where the turn went.
    Only whole, completed exchanges enter history: a failed or stopped one would break alternation."""
    state = turn.state
    _settle_tool_calls(state)
    if turn.output is not None:
        parse_into(state, turn.output)
    total = state.total_usage
    if (total.input_tokens or total.output_tokens) and not state.offline:  # an emulated answer costs nothing
        state.cost = estimate_cost(state.model, total, turn.prices)
    if state.status != "complete" or turn.conversation is None:
        return
    if state.stop_reason == "refusal":
        state.history_note = "not added to history"
        return
    placement = _commit_valid(turn, turn.prompt if turn.content is None else turn.content)
    turn.committed = placement is not None
    if placement is None:
        return
    if placement.replaced and turn.continues is None:
        state.history_note = placement.describe()
    if placement.position == placement.total:  # the next turn's prefix: what this one reported, in and out
        remember_exchange(turn.conversation.messages, turn.request, state.usage)


def _settle_tool_calls(state: TurnState) -> None:
    """A tool call whose input JSON max_tokens cut off is shown as such; one still shown running when the
    turn ended (an Interrupt can land between drawing a call and starting it) ended the way the turn did."""
    for block in state.blocks:
        if block.kind == "tool_use" and block.to_param() is None:
            block.cut_off = True
        elif block.kind == "tool_result" and block.call is not None and block.call.status == "running":
            block.call.status = "interrupted" if state.status == "interrupted" else "stopped"
            block.call.elapsed = (state.finished_at or time.monotonic()) - block.call.started_at


def _commit_valid(turn: PreparedTurn, user: Any) -> Placement | None:
    """Commit the exchange as far as the API accepts it back (every tool_use answered; see api_valid_prefix)."""
    assert turn.conversation is not None
    state = turn.state
    loop = turn.tool_loop
    tools: dict[str, dict[str, Any]] = {}
    if turn.continues is not None:
        earlier = turn.continues
        exchange: list[dict[str, Any]] | None = [*earlier.messages[:-1],
                                                 {"role": "assistant", "content": state.assistant_content()}]
        tools = earlier.tools
        usage = _add_usage(earlier.usage, state.total_usage)
        cost = None if earlier.cost is None or state.cost is None else earlier.cost + state.cost
    else:
        if loop is not None:
            exchange = loop.committable(user)
            tools = {name: tool.definition for name in loop.used_tool_names()
                     if (tool := loop.tools.get(name)) is not None}
        else:
            # Without tools a tool_use could still arrive (a replayed transcript, a server): history keeps
            # only what the API accepts back.
            exchange = api_valid_prefix([{"role": "user", "content": user},
                                         {"role": "assistant", "content": state.assistant_content()}])
        usage = _add_usage({}, state.total_usage)
        cost = state.cost
    if exchange is None:
        return None
    committed = Turn(exchange, source=turn.source, owner=turn.owner, model=state.model, usage=usage,
                     stop_reason=state.stop_reason, cost=cost, tools=tools)
    return turn.conversation.commit_turn(committed, replace=turn.replaces)


def _add_usage(usage: dict[str, int], more: Usage) -> dict[str, int]:
    return {name: usage.get(name, 0) + value for name, value in asdict(more).items()}


def _setup_failed(turn: PreparedTurn, exc: Exception) -> TurnState:
    state = turn.state
    state.status = "error"
    state.error = ErrorInfo("setup", str(exc) or repr(exc))
    state.finished_at = time.monotonic()
    return state


__all__ = ["ONE_OFF", "PreparedTurn", "prepare_continuation", "prepare_turn", "run_exchange", "run_exchange_async"]
