"""core.preserved: which earlier thinking blocks a request may carry (the API's prefix rules), as pure functions.

Each turn records the prefix digest its assistant messages were produced under; `carry` keeps a block exactly
when what the request sends before it is what was sent when it was produced.
"""

from __future__ import annotations

from typing import Any

from claude_magic.core.history import Turn
from claude_magic.core.preserved import carry, describe, prefixes_of

SYSTEM = "Be brief."
TOOLS = [{"name": "lookup", "description": "Look up.", "input_schema": {"type": "object"}}]


def thinking(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": f"sig-{text}"}


def answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [thinking(f"about {text}"), {"type": "text", "text": text}]}


def converse(prompts: list[str], *, system: Any = SYSTEM, tools: Any = None, model: str = "m") -> list[Turn]:
    """Turns as an append-only conversation produces them: each recorded against what was sent before it."""
    turns: list[Turn] = []
    for prompt in prompts:
        sent = carry(turns, system=system, tools=tools, model=model).messages
        exchange = [{"role": "user", "content": prompt}, answer(prompt.upper())]
        request = {"system": system, "tools": tools, "messages": [*sent, exchange[0]]}
        turns.append(Turn(exchange, model=model, prefixes=prefixes_of(request, exchange)))
    return turns


def thinking_kept(messages: list[dict[str, Any]]) -> list[str]:
    return [block["thinking"] for message in messages if message["role"] == "assistant"
            for block in message["content"] if block["type"] == "thinking"]


def test_append_only_keeps_every_block() -> None:
    turns = converse(["a", "b", "c"])
    carried = carry(turns, system=SYSTEM, tools=None, model="m")
    assert thinking_kept(carried.messages) == ["about A", "about B", "about C"]
    assert carried.dropped == 0 and describe(carried, "m") is None


def test_an_edited_turn_invalidates_the_thinking_after_it_not_before() -> None:
    turns = converse(["a", "b", "c"])
    turns[1].messages[0]["content"] = "b, edited"  # the second prompt changed (a re-run cell asks anew)
    carried = carry(turns, system=SYSTEM, tools=None, model="m")
    # The block of the edited turn itself follows the edit; so does every later one. The first stays.
    assert thinking_kept(carried.messages) == ["about A"]
    assert (carried.dropped, carried.dropped_turns) == (2, 2)
    assert describe(carried, "m") == "earlier thinking of 2 turns left out (an edit changed what came before it)"
    # The answers' text stays: only thinking goes.
    assert [m["content"][-1]["text"] for m in carried.messages if m["role"] == "assistant"] == ["A", "B", "C"]


def test_a_replaced_turn_keeps_the_new_thinking_after_it() -> None:
    turns = converse(["a", "b"])
    # Turn 1 re-run: it is answered anew under the same (empty) prefix, so its new block is valid; turn 2's
    # block was produced after the old turn 1 and is invalid. A turn asked after all this is valid again.
    fresh = converse(["a2"])[0]
    turns[0] = fresh
    sent = carry(turns, system=SYSTEM, tools=None, model="m").messages
    assert thinking_kept(sent) == ["about A2"]
    exchange = [{"role": "user", "content": "c"}, answer("C")]
    turns.append(Turn(exchange, model="m", prefixes=prefixes_of(
        {"system": SYSTEM, "messages": [*sent, exchange[0]]}, exchange)))
    assert thinking_kept(carry(turns, system=SYSTEM, tools=None, model="m").messages) == ["about A2", "about C"]


def test_another_system_prompt_or_new_tools_invalidate_everything() -> None:
    turns = converse(["a", "b"])
    assert thinking_kept(carry(turns, system="Another system.", tools=None, model="m").messages) == []
    assert thinking_kept(carry(turns, system=SYSTEM, tools=TOOLS, model="m").messages) == []


def test_a_deleted_turn_invalidates_only_the_later_ones() -> None:
    turns = converse(["a", "b", "c"])
    del turns[1]
    assert thinking_kept(carry(turns, system=SYSTEM, tools=None, model="m").messages) == ["about A"]
    del turns[-1]  # deleting the last turn changes nothing before it
    assert thinking_kept(carry(converse(["a", "b", "c"])[:2], system=SYSTEM, tools=None, model="m").messages) == [
        "about A", "about B"]


def test_images_left_out_of_earlier_turns_change_their_prefix() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    turns: list[Turn] = []
    for prompt in ([image, {"type": "text", "text": "what is this"}], "and then"):
        sent = carry(turns, system=None, tools=None, model="m").messages
        exchange = [{"role": "user", "content": prompt}, answer("x")]
        turns.append(Turn(exchange, model="m", prefixes=prefixes_of({"messages": [*sent, exchange[0]]}, exchange)))

    def no_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**m, "content": [b for b in m["content"] if b.get("type") != "image"]}
                if isinstance(m["content"], list) else m for m in messages]

    carried = carry(turns, system=None, tools=None, model="m", prepare=no_images)
    # The first answer's block was produced after the image: it goes; so does the second.
    assert thinking_kept(carried.messages) == []
    assert thinking_kept(carry(turns, system=None, tools=None, model="m").messages) == ["about x", "about x"]


def test_a_turn_without_a_record_is_treated_as_changed() -> None:
    turns = converse(["a", "b"])
    turns[0].prefixes = []  # e.g. saved before prefixes were recorded
    assert thinking_kept(carry(turns, system=SYSTEM, tools=None, model="m").messages) == []


def test_a_model_that_does_not_check_prefixes_gets_everything() -> None:
    turns = converse(["a", "b"])
    carried = carry(turns, system="changed", tools=None, model="old", checks_prefix=False)
    assert thinking_kept(carried.messages) == ["about A", "about B"]


def test_blocks_of_a_model_the_current_one_cannot_read_are_left_in_and_counted() -> None:
    turns = converse(["a"], model="claude-fable-5-1") + converse(["b"], model="claude-opus-5-5")[:0]
    carried = carry(turns, system=SYSTEM, tools=None, model="claude-opus-5-5",
                    readable={"claude-opus-5-5"}.__contains__)
    assert thinking_kept(carried.messages) == ["about A"]  # the API drops it without an error
    assert describe(carried, "claude-opus-5-5") == "1 thinking block of claude-fable-5-1 not read by claude-opus-5-5"


def test_an_answer_that_was_only_thinking_keeps_a_placeholder() -> None:
    turns = converse(["a"])
    turns[0].messages[1]["content"] = [thinking("only")]
    carried = carry(turns, system="changed", tools=None, model="m")
    assert carried.messages[1]["content"] == [{"type": "text", "text": "(no answer)"}]


def test_tool_rounds_record_one_prefix_per_assistant_message() -> None:
    exchange = [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": [thinking("plan"), {"type": "tool_use", "id": "t1", "name": "lookup",
                                                             "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]},
        answer("It is 42"),
    ]
    request = {"system": SYSTEM, "tools": TOOLS, "messages": [exchange[0]]}
    turn = Turn(exchange, model="m", prefixes=prefixes_of(request, exchange))
    assert len(turn.prefixes) == 2 and turn.prefixes[0] != turn.prefixes[1]
    assert thinking_kept(carry([turn], system=SYSTEM, tools=TOOLS, model="m").messages) == ["plan", "about It is 42"]
    # A changed tool result invalidates the second message's block only.
    exchange[2]["content"][0]["content"] = "43"
    assert thinking_kept(carry([turn], system=SYSTEM, tools=TOOLS, model="m").messages) == ["plan"]
