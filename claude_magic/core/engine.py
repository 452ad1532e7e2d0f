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
from dataclasses import dataclass
from typing import Any

from claude_magic.core.client import ClientSettings, get_async_client, get_client
from claude_magic.core.history import STORE, Conversation
from claude_magic.core.request import TurnOptions, build_request
from claude_magic.core.stream import SharedBackoff, Sink, TurnControl, run_turn, run_turn_async
from claude_magic.core.throttle import Throttle
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
) -> PreparedTurn:
    """Resolve the options (call arguments over settings) and snapshot the conversation for `prompt`.

    `conversation`: a name, "" for the settings' conversation, or ONE_OFF. `error_raised`: the surface
    will raise the error line itself, so the drawing leaves it out. Invalid options raise ValueError.
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
    messages = history.request_messages(prompt) if history is not None else [{"role": "user", "content": prompt}]
    state = TurnState(model=options.model, prompt=prompt, started_at=time.monotonic(), offline=settings.offline,
                      error_raised=error_raised)
    return PreparedTurn(
        prompt=prompt,
        conversation=history,
        request=build_request(options, messages),
        state=state,
        client_settings=ClientSettings(settings.offline, settings.connect_timeout, settings.read_timeout,
                                       settings.emulator_script),
        throttle_interval=settings.throttle_interval,
        max_retries=settings.max_retries,
    )


def run_exchange(turn: PreparedTurn, sink: Sink | None, *, control: TurnControl | None = None) -> TurnState:
    """Stream `turn` on this thread, drawing on `sink`; commit it to its conversation if it completed."""
    try:
        client = get_client(turn.client_settings)
    except Exception as exc:  # noqa: BLE001 - e.g. no API key: the message says the fix
        return _setup_failed(turn, exc)
    run_turn(client, turn.request, turn.state, sink, throttle=Throttle(turn.throttle_interval),
             max_retries=turn.max_retries, control=control)
    return _commit(turn)


async def run_exchange_async(turn: PreparedTurn, sink: Sink | None, *,
                             backoff: SharedBackoff | None = None) -> TurnState:
    """`run_exchange` through `AsyncAnthropic` on the running event loop; cancelling it leaves history
    untouched and the partial answer marked (the CancelledError is raised again)."""
    try:
        client = get_async_client(turn.client_settings)
    except Exception as exc:  # noqa: BLE001
        return _setup_failed(turn, exc)
    await run_turn_async(client, turn.request, turn.state, sink, throttle=Throttle(turn.throttle_interval),
                         max_retries=turn.max_retries, backoff=backoff)
    return _commit(turn)


def _commit(turn: PreparedTurn) -> TurnState:
    # Only whole, completed exchanges enter history: a failed or stopped one would break alternation.
    if turn.state.status == "complete" and turn.conversation is not None:
        turn.committed = turn.conversation.commit(turn.prompt, turn.state.assistant_content())
    return turn.state


def _setup_failed(turn: PreparedTurn, exc: Exception) -> TurnState:
    state = turn.state
    state.status = "error"
    state.error = ErrorInfo("setup", str(exc) or repr(exc))
    state.finished_at = time.monotonic()
    return state


__all__ = ["ONE_OFF", "PreparedTurn", "prepare_turn", "run_exchange", "run_exchange_async"]
