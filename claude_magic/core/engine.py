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

from claude_magic._model_facts import contract, family_of
from claude_magic.core.client import ClientSettings, get_async_client, get_client
from claude_magic.core.context import Attachment, user_content, without_images
from claude_magic.core.history import STORE, Conversation, Placement, Turn
from claude_magic.core.persist import install as install_saver
from claude_magic.core.preserved import Carried, carry, describe, prefixes_of
from claude_magic.core.pricing import estimate_cost, parse_overrides
from claude_magic.core.request import (
    TurnOptions,
    build_request,
    check_max_output,
    check_prefill,
    check_sampling,
    check_thinking_effort,
    check_tool_choice,
    default_max_tokens,
    effort_param,
    thinking_param,
)
from claude_magic.core.server_tools import matching_citations, server_tool_definitions, with_citations
from claude_magic.core.stream import SharedBackoff, Sink, TurnControl, run_turn, run_turn_async
from claude_magic.core.structured import OutputSpec, output_spec, parse_into, with_format
from claude_magic.core.throttle import Throttle
from claude_magic.core.tokens import check_budget, check_budget_async, input_limit, remember_exchange
from claude_magic.core.tool_loop import ToolLoop, api_valid_prefix, as_prefill, begin_round
from claude_magic.core.tools import make_toolset, resolve_names, tool_choice_param
from claude_magic.core.transport import labelled
from claude_magic.core.turn import ErrorInfo, TurnState, Usage, block_from_param
from claude_magic.settings import ClaudeMagic, check_max_tokens, check_temperature

ONE_OFF = None
"""`conversation=ONE_OFF`: a fresh one-turn exchange that is never added to any history (`map`)."""
MAX_PAUSES = 3  # a paused turn (stop_reason pause_turn) is continued automatically this many times at most
CONTINUABLE = ("max_tokens", "pause_turn")
# Where a model rejects an assistant prefill (Claude 4.6 and later), `%claude continue` asks in a user message,
# as the migration guides advise: "The conversation must end with a user message".
CONTINUE_PROMPT = ("Your previous answer was cut off. Continue it exactly where it stopped, without repeating "
                   "anything or adding a preface.")

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
    # The history this request sends before the turn's own messages (thinking an edit invalidated left out):
    # what the turn's thinking blocks are bound to (core.preserved).
    sent_before: list[dict[str, Any]] | None = None
    prefill: bool = False  # a continuation that ends the request with the cut-off answer (older models)
    committed_id: str | None = None  # the id of the turn it committed (a replaced turn keeps its id)
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
    thinking_display: str | None = None,
    effort: str | None = None,
    output: Any = None,
    mcp: str | Sequence[str] | None = None,
    web_search: Any = None,
    web_fetch: Any = None,
    code_execution: Any = None,
    cite: bool | None = None,
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
    `mcp`: names of MCP servers (`settings.mcp_servers`) whose tools this turn offers, besides `tools`
    (default: `settings.mcp`); each is started if it is not running (core.mcp). A server that cannot be used
    raises `McpUnavailable` (a ClaudeError, one line): nothing is sent.
    `web_search`, `web_fetch`, `code_execution`: Claude's server tools for this turn (True, a dict of options or
    the flag's text, core.server_tools.parse_spec; None: the setting). `cite`: document citations on for the
    attached PDFs and text files (and fetched pages); None: the setting.
    """
    spec = output_spec(output)
    options = _options(settings, model, max_tokens, system, temperature, thinking, thinking_display, effort)
    install_saver(lambda: settings.history_dir)
    history = None if conversation is ONE_OFF else STORE.get(conversation or settings.conversation)
    if history is not None and new:
        history.reset()
    replaces = None
    if history is not None and owner is not None and not append:
        earlier = history.owned_by(owner)
        replaces = earlier.id if earlier is not None else None
    content = user_content(prompt, attachments)
    server, content = _server_tools(settings, content, web_search, web_fetch, code_execution, cite)
    state = TurnState(model=options.model, prompt=prompt, started_at=time.monotonic(), offline=settings.offline,
                      error_raised=error_raised, narrates_in_thinking=_narrates_in_thinking(options.model),
                      typed=spec is not None)
    request = build_request(options, [])
    if spec is not None:
        request["output_config"] = with_format(request.get("output_config"), spec)
    mcp_tools = _mcp_tools(settings, mcp)
    if mcp_tools:  # starting a server is not the API's time: the footer's first-token time starts after it
        state.started_at = time.monotonic()
    tool_loop = _offer_tools(request, settings, history, tools, tool_choice, max_tool_rounds, namespace, mcp_tools,
                             server)
    # The history goes after `tools` is settled: the thinking it may carry depends on it (core.preserved).
    carried = _carried(request, settings, history.turns_before(replaces) if history is not None else [])
    content = matching_citations(carried.messages, content)
    request["messages"].extend([*carried.messages, {"role": "user", "content": content}])
    state.thinking_note = describe(carried, options.model)
    return PreparedTurn(
        prompt=prompt,
        conversation=history,
        request=request,
        tool_loop=tool_loop,
        state=state,
        client_settings=client_settings(settings),
        throttle_interval=settings.throttle_interval,
        max_retries=settings.max_retries,
        content=content if attachments else None,
        input_limit=input_limit(settings.max_input_tokens, options.model),
        source=source,
        owner=owner,
        replaces=replaces,
        prices=parse_overrides(settings.prices),
        sent_before=carried.messages,
        output=spec,
    )


def _narrates_in_thinking(model: str) -> bool:
    facts = contract(model)
    return facts is not None and facts.between_tools_text_as_thinking


def _carried(request: dict[str, Any], settings: ClaudeMagic, turns: list[Turn]) -> Carried:
    """`turns` as this request sends them: thinking an edit invalidated left out, images of earlier turns
    left out when `history_images` is off (their turns' thinking then goes too: its prefix changed)."""
    model = request["model"]
    facts = contract(model)
    checks = facts is None or facts.preserved_thinking  # an unknown model: be safe, drop what changed
    readers = facts.reads_thinking_from if facts is not None and facts.preserved_thinking else None
    return carry(turns, system=request.get("system"), tools=request.get("tools"), model=model, checks_prefix=checks,
                 readable=None if readers is None else (lambda producer: family_of(producer) in readers),
                 prepare=None if settings.history_images else without_images)


def prepare_continuation(settings: ClaudeMagic, *, conversation: str = _USE_SETTINGS, max_tokens: int | None = None,
                         source: str = "code", error_raised: bool = False, redraw: bool = True) -> PreparedTurn:
    """Go on with the conversation's last answer, which max_tokens cut off (`%claude continue`).

    A model that takes an assistant prefill (Claude 4.5 and earlier) gets the answer as the request's final
    assistant message and writes on from where it stopped; the turn is then replaced by one answer made of
    both parts. The later models reject a prefill, so the request ends with a user message asking Claude
    to go on, and the turn is replaced by the whole exchange (prompt, cut-off answer, that request, the rest):
    one turn the API accepts back, every thinking block bound to what came before it.
    The new state starts with the cut-off answer (the reply's text is the whole answer). `redraw`: a view that
    replaces the old one (the panel) draws it all, growing; without it (a new cell below the cut-off one)
    only what follows is drawn (`TurnState.drawn_from`).
    ValueError (one line) when there is nothing to continue.
    """
    install_saver(lambda: settings.history_dir)
    history = STORE.get(conversation or settings.conversation)
    last = history.last_turn()
    if last is None:
        raise ValueError(f"Nothing to continue: conversation {history.name!r} is empty")
    if last.stop_reason not in CONTINUABLE:
        raise ValueError(f"Nothing to continue: the last answer ended with stop_reason {last.stop_reason or 'none'}, "
                         "not max_tokens")
    model = last.model or settings.model
    partial = last.messages[-1]["content"]
    prefill = check_prefill(model)
    if prefill:
        answer = [block for block in partial if block.get("type") not in ("thinking", "redacted_thinking")]
        if not answer or answer[-1].get("type") != "text" or not answer[-1]["text"].strip():
            raise ValueError("Nothing to continue: the answer was cut off before any text (while thinking). "
                             "Re-run its cell with a higher --max-tokens")
        # Thinking stays off for a prefill: the API does not continue an answer with thinking on.
        options = _options(settings, model, max_tokens, None, None, "off", None, None)
    else:
        options = _options(settings, model, max_tokens, None, None, None, None, None)
    request = build_request(options, [])
    definitions = history.tool_definitions
    if definitions:  # tool blocks in the history need their definitions; none may be called now
        request["tools"] = list(definitions.values())
        request["tool_choice"] = {"type": "none"}
    carried = _carried(request, settings, [*history.turns_before(last.id), last])
    before = carried.messages[: len(carried.messages) - len(last.messages)]
    sent_turn = carried.messages[len(before):]
    if prefill:
        # The API rejects a final assistant message that ends in whitespace; the kept text is trimmed the
        # same way, so the two parts join exactly where the API goes on.
        answer[-1] = {**answer[-1], "text": answer[-1]["text"].rstrip()}
        request["messages"].extend([*sent_turn[:-1], {"role": "assistant", "content": answer}])
        shown = [{**block, "text": block["text"].rstrip()} if block is partial[-1] and block.get("type") == "text"
                 else block for block in partial]
    else:
        request["messages"].extend([*sent_turn, {"role": "user", "content": CONTINUE_PROMPT}])
        shown = list(partial)
    state = TurnState(model=options.model, prompt=last.prompt_text, started_at=time.monotonic(),
                      offline=settings.offline, error_raised=error_raised,
                      narrates_in_thinking=_narrates_in_thinking(options.model))
    state.thinking_note = describe(carried, options.model)
    state.blocks = [block_from_param(block) for block in shown]
    state.kept_blocks = len(state.blocks)
    state.seam = prefill and bool(state.blocks) and state.blocks[-1].kind == "text"
    state.round_start = len(state.blocks) - 1 if state.seam else len(state.blocks)
    if not redraw:  # the text goes on inside the last block: drawn from its next part
        state.drawn_from = (state.round_start, 1) if state.seam else (state.round_start, 0)
    last.messages = sent_turn
    return PreparedTurn(
        prompt=last.prompt_text, conversation=history, request=request, state=state,
        client_settings=client_settings(settings), throttle_interval=settings.throttle_interval,
        max_retries=settings.max_retries, input_limit=input_limit(settings.max_input_tokens, options.model),
        source=source, owner=last.owner, replaces=last.id, continues=last, prices=parse_overrides(settings.prices),
        sent_before=before, prefill=prefill,
    )


def _options(settings: ClaudeMagic, model: str | None, max_tokens: int | None, system: str | None,
             temperature: float | None, thinking: str | int | None, display: str | None,
             effort: str | None) -> TurnOptions:
    """Call arguments over settings, each checked against the model's contract (ValueError with the fix)."""
    model = model or settings.model
    chosen = settings.max_tokens if max_tokens is None else max_tokens
    tokens = default_max_tokens(model) if chosen is None else check_max_tokens(chosen)
    check_max_output(model, tokens)
    sampling = check_temperature(settings.temperature if temperature is None else temperature)
    check_sampling(model, sampling)
    thinking_options = thinking_param(settings.thinking if thinking is None else thinking, max_tokens=tokens,
                                      temperature=sampling, model=model,
                                      display=(display or settings.thinking_display or None))
    chosen_effort = effort_param(settings.effort if effort is None else effort, model)
    check_thinking_effort(thinking_options, chosen_effort, model)
    return TurnOptions(
        model=model,
        max_tokens=tokens,
        system=settings.system if system is None else system,
        temperature=sampling,
        prompt_caching=settings.prompt_caching,
        thinking=thinking_options,
        effort=chosen_effort,
    )


def client_settings(settings: ClaudeMagic) -> ClientSettings:
    """The part of the settings that makes the client (every surface builds its client from these)."""
    return ClientSettings(settings.offline, settings.connect_timeout, settings.read_timeout, settings.emulator_script,
                          settings.cassette, settings.cassette_mode, settings.cassette_speed)


def _mcp_tools(settings: ClaudeMagic, names: str | Sequence[str] | None) -> list[Any]:
    """The tools of the MCP servers a turn names (`mcp=`, else `settings.mcp`), their servers running."""
    chosen = settings.mcp if names is None else names
    if not chosen:
        return []
    from claude_magic.core.mcp import offered_tools

    return offered_tools(settings.mcp_servers, chosen, timeout=settings.mcp_timeout)


def _server_tools(settings: ClaudeMagic, content: Any, web_search: Any, web_fetch: Any, code_execution: Any,
                  cite: bool | None) -> tuple[list[dict[str, Any]], Any]:
    """The server tools' definitions this turn offers, and the user content with citations on (`cite`)."""
    server = server_tool_definitions(
        web_search=settings.web_search if web_search is None else web_search,
        web_fetch=settings.web_fetch if web_fetch is None else web_fetch,
        code_execution=settings.code_execution if code_execution is None else code_execution)
    if not (settings.cite if cite is None else cite):
        return server, content
    content, documents = with_citations(content)
    fetch = [tool for tool in server if tool["name"] == "web_fetch"]
    for tool in fetch:
        tool.setdefault("citations", {"enabled": True})
    if not documents and not fetch:
        raise ValueError("--cite needs something to cite: attach a PDF or text file with -a (or add --web-fetch)")
    return server, content


def _offer_tools(request: dict[str, Any], settings: ClaudeMagic, history: Conversation | None, tools: Any,
                 tool_choice: str | None, max_tool_rounds: int | None, namespace: Any,
                 mcp_tools: Sequence[Any] = (), server: Sequence[dict[str, Any]] = ()) -> ToolLoop | None:
    """Put `tools` / `tool_choice` into `request`; the ToolLoop that will run the calls, if any. `server`: the
    server tools' definitions (they run on the API's side: no loop here)."""
    toolset = make_toolset([*resolve_names(settings.tools if tools is None else tools, namespace or {}), *mcp_tools])
    kept = history.tool_definitions if history is not None else {}
    # The conversation's tools first, in the order they were first offered, new ones after them: a turn that
    # offers the same tools again (or none) sends `tools` unchanged, which keeps earlier thinking valid.
    offered = {definition["name"]: definition for definition in toolset.definitions()}
    for definition in server:
        if definition["name"] in offered:
            raise ValueError(f"A notebook tool is named {definition['name']}, like Claude's server tool: rename "
                             "the function")
        offered[definition["name"]] = definition
    definitions = [offered.get(name, definition) for name, definition in kept.items()]
    definitions += [definition for name, definition in offered.items() if name not in kept]
    if tool_choice and not toolset:
        raise ValueError(f"--tool-choice {tool_choice} needs tools: name them with --tools (or --mcp)")
    choice = tool_choice_param(tool_choice, toolset)
    check_tool_choice(request, choice, tool_choice or "")
    if not toolset and kept and not server:
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

    with labelled(_request_label(turn), in_cell=turn.source != "panel"):  # a cassette miss names what asked
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

    with labelled(_request_label(turn), in_cell=turn.source != "panel"):
        await run_turn_async(client, turn.request, turn.state, sink, throttle=Throttle(turn.throttle_interval),
                             max_retries=turn.max_retries, backoff=backoff, after_round=after_round,
                             settle=lambda _state: _commit(turn))
    return turn.state


_ASKED_FROM = {"cell": "%claude", "terminal": "%claude", "panel": "the chat panel", "code": "ask"}
LABEL_CHARS = 30


def _request_label(turn: PreparedTurn) -> str:
    """`%claude 'Say hello'`: what a cassette miss says asked (the transport adds the cell's number)."""
    prompt = " ".join(turn.prompt.split())
    shown = prompt if len(prompt) <= LABEL_CHARS else f"{prompt[:LABEL_CHARS]}…"
    return f"{_ASKED_FROM.get(turn.source, turn.source)} {shown!r}"


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
        added = [block.to_param() for block in state.blocks[state.kept_blocks:]]
        rest = [param for param in added if param is not None]
        exchange: list[dict[str, Any]] | None
        if turn.prefill:
            exchange = [*earlier.messages[:-1], {"role": "assistant", "content": state.assistant_content()}]
        else:
            exchange = [*earlier.messages, {"role": "user", "content": CONTINUE_PROMPT},
                        {"role": "assistant", "content": rest}] if rest else None
        tools = earlier.tools
        usage = _add_usage(earlier.usage, state.total_usage)
        cost = None if earlier.cost is None or state.cost is None else earlier.cost + state.cost
    else:
        if loop is not None:
            exchange = loop.committable(user)
        else:
            # Without tools a tool_use could still arrive (a replayed transcript, a server): history keeps
            # only what the API accepts back.
            exchange = api_valid_prefix([{"role": "user", "content": user},
                                         {"role": "assistant", "content": state.assistant_content()}])
        usage = _add_usage({}, state.total_usage)
        cost = state.cost
    if exchange is not None and state.stop_reason == "max_tokens":
        exchange = _without_cut_thinking(exchange)
    if exchange is None:
        return None
    system_tools = {"system": turn.request.get("system"), "tools": turn.request.get("tools"), "messages": [{}]}
    prefixes = prefixes_of(system_tools, exchange) if turn.sent_before is None else \
        prefixes_of({**system_tools, "messages": [*turn.sent_before, {}]}, exchange)
    if turn.continues is None:
        # Every tool the request sent stays with the conversation, in the order sent, so later turns send the
        # same `tools` (a changed `tools` invalidates all earlier thinking, core.preserved).
        tools = {definition["name"]: definition for definition in turn.request.get("tools", [])}
    committed = Turn(exchange, source=turn.source, owner=turn.owner, model=state.model, usage=usage,
                     stop_reason=state.stop_reason, cost=cost, tools=tools, prefixes=prefixes,
                     offline=state.offline)
    placement = turn.conversation.commit_turn(committed, replace=turn.replaces)
    if placement is not None:
        turn.committed_id = turn.replaces if placement.replaced else committed.id
    return placement


def _without_cut_thinking(exchange: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """An answer max_tokens cut off while thinking ends in a thinking block that never finished: its
    signature cannot vouch for the text it got, so it is not kept (None when nothing else was answered)."""
    last = exchange[-1]
    content = list(last["content"])
    while content and content[-1].get("type") in ("thinking", "redacted_thinking"):
        content.pop()
    if content == last["content"]:
        return exchange
    return [*exchange[:-1], {**last, "content": content}] if content else None


def _add_usage(usage: dict[str, int], more: Usage) -> dict[str, int]:
    return {name: usage.get(name, 0) + value for name, value in asdict(more).items()}


def _setup_failed(turn: PreparedTurn, exc: Exception) -> TurnState:
    state = turn.state
    state.status = "error"
    state.error = ErrorInfo("setup", str(exc) or repr(exc))
    state.finished_at = time.monotonic()
    return state


__all__ = ["ONE_OFF", "PreparedTurn", "prepare_continuation", "prepare_turn", "run_exchange", "run_exchange_async"]
