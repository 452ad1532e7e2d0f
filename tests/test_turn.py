"""The event reducer, replaying a recorded stream transcript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from claude_magic.core.turn import StreamOrderError, TurnState, reduce_event

_EVENTS = TypeAdapter(RawMessageStreamEvent)
FIXTURES = Path(__file__).parent / "fixtures"


def load_events(name: str) -> list[Any]:
    raw = json.loads((FIXTURES / name).read_text())
    return [_EVENTS.validate_python(item) for item in raw if item["type"] != "ping"]


def replay(events: list[Any]) -> TurnState:
    state = TurnState(model="requested-model", prompt="weather?", started_at=100.0)
    for tick, event in enumerate(events):
        reduce_event(state, event, now=100.0 + tick)
    return state


def test_replay_builds_blocks_usage_and_timing() -> None:
    events = load_events("thinking_tool_text.json")
    state = replay(events)
    assert state.status == "complete"
    assert state.model == "claude-sonnet-4-5"  # the model the API reports wins over the requested one
    assert state.message_id == "msg_1"
    assert [block.kind for block in state.blocks] == ["thinking", "text", "tool_use"]
    assert state.text == "Let me check **Paris**."
    assert state.stop_reason == "tool_use"
    assert (state.usage.input_tokens, state.usage.output_tokens, state.usage.cache_read_input_tokens) == (21, 42, 7)
    assert state.first_token_at == 102.0  # first delta is the 3rd non-ping event (tick 2)
    assert state.finished_at == 100.0 + len(events) - 1


def test_assistant_content_round_trips_every_block_kind() -> None:
    state = replay(load_events("thinking_tool_text.json"))
    assert state.assistant_content() == [
        {"type": "thinking", "thinking": "The user wants the weather.", "signature": "sig-abc"},
        {"type": "text", "text": "Let me check **Paris**."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]


def test_revision_moves_only_on_visible_changes() -> None:
    events = load_events("thinking_tool_text.json")
    state = TurnState(model="m", prompt="p", started_at=0.0)
    revisions = []
    for event in events:
        reduce_event(state, event, now=1.0)
        revisions.append(state.revision)
    visible = [event for event in events if event.type == "content_block_delta"
               and (getattr(event.delta, "text", "") or getattr(event.delta, "thinking", "")
                    or getattr(event.delta, "partial_json", ""))]
    assert revisions[-1] == len(visible) == 6  # not the signature, not the empty first JSON fragment
    assert revisions[0] == 0  # message_start shows nothing new


def test_delta_before_block_start_is_an_order_error() -> None:
    events = load_events("thinking_tool_text.json")
    state = TurnState(model="m", prompt="p", started_at=0.0)
    reduce_event(state, events[0], now=0.0)
    with pytest.raises(StreamOrderError):
        reduce_event(state, events[2], now=0.0)  # thinking_delta for block 0, never started


def test_delta_after_block_stop_is_an_order_error() -> None:
    events = load_events("thinking_tool_text.json")
    state = replay(events[:6])  # through content_block_stop of block 0
    with pytest.raises(StreamOrderError):
        reduce_event(state, events[2], now=0.0)


def test_usage_fields_missing_from_message_delta_keep_earlier_values() -> None:
    state = replay(load_events("thinking_tool_text.json"))
    assert state.usage.input_tokens == 21  # message_delta said nothing about input tokens
