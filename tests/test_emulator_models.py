"""The emulator serves each model as the API does, through the real SDK over HTTP: thinking first on the 5.x
models (signature only under display "omitted"), thinking blocks bound to their model and prefix on the
models with preserved thinking (the API's 400, drop_block with input_transformations, other models' blocks
dropped quietly), and each model's rules for thinking types, effort, prefill, forced tools, sampling and
max_tokens, with the API's messages. The expectations come from the contract table, so a model's row and
the emulator cannot drift apart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from claude_magic._model_facts import BINDING_BETA, contract
from claude_magic.core.models import DEFAULT_MODEL
from claude_magic.emulator import Emulator

KEY = "sk-test"
OLD = "claude-haiku-4-5"  # a 4.5 model: no thinking unless asked, budgets, prefill, no preserved thinking
SONNET, OPUS, HAIKU, FABLE_1, FABLE_2 = (
    "claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-fable-5-1", "claude-fable-5-2")
WEATHER = {"name": "get_weather", "description": "Weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
BOUND = "The block is bound to a different conversation."


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emu.base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def ask(client: anthropic.Anthropic, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.messages.create(model=model, max_tokens=kwargs.pop("max_tokens", 2000), messages=messages,
                                  **kwargs)


def rejected(client: anthropic.Anthropic, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    """The message of the 400 the request gets."""
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(client, model, messages, **kwargs)
    body = info.value.body
    assert isinstance(body, dict)
    return str(body["error"]["message"])


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def as_param(message: Any) -> dict[str, Any]:
    """An answer as the next request sends it back: every block exactly as received."""
    return {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]}


def conversation(client: anthropic.Anthropic, model: str, turns: int = 2, **kwargs: Any) -> list[dict[str, Any]]:
    """An append-only conversation of `turns` answered turns (each answer as received)."""
    messages: list[dict[str, Any]] = []
    for n in range(turns):
        messages.append(user(f"question {n + 1}"))
        messages.append(as_param(ask(client, model, messages, **kwargs)))
    return messages


# -- what an answer looks like ----------------------------------------------------------------------

@pytest.mark.parametrize("model", [DEFAULT_MODEL, OPUS, HAIKU, FABLE_1, FABLE_2, "claude-sonnet-5", "claude-opus-4-8"])
def test_answers_start_with_thinking_where_the_model_thinks_by_default(client: anthropic.Anthropic, model: str) -> None:
    row = contract(model)
    assert row is not None
    answer = ask(client, model, [user("What is 2+2?")])
    kinds = [block.type for block in answer.content]
    if row.thinking_when_omitted == "adaptive":
        assert kinds == ["thinking", "text"]
        thinking = answer.content[0]
        # display "omitted" is the default from Claude 4.7 on: the block carries only its signature
        assert thinking.thinking == "" and thinking.signature
        assert answer.usage.output_tokens > len(answer.content[1].text.split())  # the thinking is billed
    else:
        assert kinds == ["text"]


def test_the_default_model_streams_a_signature_only_thinking_block_then_the_text(
        client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=DEFAULT_MODEL, max_tokens=2000, messages=[user("hi")]) as stream:
        events = [event for event in stream if event.type in ("content_block_start", "content_block_delta")]
        final = stream.get_final_message()
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    deltas = [e.delta.type for e in events if e.type == "content_block_delta" and e.index == 0]
    assert starts == ["thinking", "text"]
    assert deltas == ["signature_delta"]  # no thinking text under "omitted"
    assert final.content[0].signature and final.content[0].thinking == ""


def test_summarized_display_streams_the_thinking_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=DEFAULT_MODEL, max_tokens=2000, messages=[user("hi")],
                                thinking={"type": "adaptive", "display": "summarized"}) as stream:
        thinking = "".join(event.thinking for event in stream if event.type == "thinking")
        final = stream.get_final_message()
    assert thinking and final.content[0].thinking == thinking


def test_a_4_5_model_thinks_only_when_asked_and_shows_its_thinking(client: anthropic.Anthropic) -> None:
    assert [b.type for b in ask(client, OLD, [user("hi")]).content] == ["text"]
    answer = ask(client, OLD, [user("hi")], thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[0].thinking  # earlier models default to display "summarized"


@pytest.mark.parametrize("model", [SONNET, OPUS])
def test_text_between_tool_calls_arrives_as_thinking_on_the_5_5_models(emu: Emulator, client: anthropic.Anthropic,
                                                                       model: str) -> None:
    emu.set_script({"turns": [{"content": [{"type": "text", "text": "Checking the weather."},
                                           {"type": "tool_use", "name": "get_weather", "input": {"city": "Oslo"}}]}]})
    omitted = ask(client, model, [user("weather?")], tools=[WEATHER])
    assert [b.type for b in omitted.content] == ["thinking", "thinking", "tool_use"]
    assert omitted.content[1].thinking == ""  # empty under the default display
    shown = ask(client, model, [user("weather?")], tools=[WEATHER],
                thinking={"type": "adaptive", "display": "summarized"})
    assert shown.content[1].thinking == "Checking the weather."


def test_between_tools_has_no_up_front_thinking_and_keeps_the_progress_text(emu: Emulator,
                                                                            client: anthropic.Anthropic) -> None:
    plain = ask(client, SONNET, [user("hi")], thinking={"type": "between_tools"})
    assert [b.type for b in plain.content] == ["text"]  # no tools: only text, as with disabled on Sonnet 5
    emu.set_script({"turns": [{"content": [{"type": "text", "text": "Checking the weather."},
                                           {"type": "tool_use", "name": "get_weather", "input": {"city": "Oslo"}}]}]})
    tools = ask(client, SONNET, [user("weather?")], tools=[WEATHER], thinking={"type": "between_tools"})
    assert [b.type for b in tools.content] == ["thinking", "tool_use"]
    assert tools.content[0].thinking == "Checking the weather."


def test_other_models_keep_text_before_a_tool_call_as_text(emu: Emulator, client: anthropic.Anthropic) -> None:
    emu.set_script({"turns": [{"content": [{"type": "text", "text": "Checking the weather."},
                                           {"type": "tool_use", "name": "get_weather", "input": {"city": "Oslo"}}]}]})
    assert [b.type for b in ask(client, HAIKU, [user("w")], tools=[WEATHER], thinking={"type": "disabled"},
                                output_config={"effort": "high"}).content] == ["text", "tool_use"]
    assert [b.type for b in ask(client, OLD, [user("w")], tools=[WEATHER]).content] == ["text", "tool_use"]


# -- preserved thinking ------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [SONNET, OPUS, HAIKU, FABLE_1, FABLE_2])
def test_an_append_only_conversation_is_accepted(client: anthropic.Anthropic, model: str) -> None:
    messages = conversation(client, model, turns=3)
    assert [m["content"][0]["type"] for m in messages[1::2]] == ["thinking"] * 3
    assert ask(client, model, [*messages, user("and now?")]).content


def test_a_tool_loop_sent_back_as_received_is_accepted(emu: Emulator, client: anthropic.Anthropic) -> None:
    messages = [user("weather in Oslo?")]
    first = ask(client, DEFAULT_MODEL, messages, tools=[WEATHER])
    assert [b.type for b in first.content][-1] == "tool_use"
    call = first.content[-1]
    messages += [as_param(first), {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 °C"}]}]
    second = ask(client, DEFAULT_MODEL, messages, tools=[WEATHER])
    assert second.content[-1].type == "text"
    messages += [as_param(second), user("thanks")]
    assert ask(client, DEFAULT_MODEL, messages, tools=[WEATHER]).content


def edits(messages: list[dict[str, Any]]) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any], str]]:
    """Edits of a two-turn conversation, each with the request fields it changes and the first block it
    invalidates (the first thinking block after the change)."""
    edited_question = [dict(messages[0], content="a different first question"), *messages[1:]]
    without_first_thinking = [messages[0], dict(messages[1], content=messages[1]["content"][1:]), *messages[2:]]
    rerun = [*messages[:2], user("question 2, edited"), messages[3]]
    return {
        "earlier message edited": (edited_question, {}, "messages.1.content.0"),
        "system prompt changed": (messages, {"system": "Be terse."}, "messages.1.content.0"),
        "tools added": (messages, {"tools": [WEATHER]}, "messages.1.content.0"),
        "earlier thinking block left out": (without_first_thinking, {}, "messages.3.content.0"),
        "later turn replaced, its old answer kept": (rerun, {}, "messages.3.content.0"),
    }


@pytest.mark.parametrize("edit", ["earlier message edited", "system prompt changed", "tools added",
                                  "earlier thinking block left out", "later turn replaced, its old answer kept"])
def test_a_changed_prefix_is_the_apis_400(client: anthropic.Anthropic, edit: str) -> None:
    messages = conversation(client, DEFAULT_MODEL)
    changed, extra, where = edits(messages)[edit]
    message = rejected(client, DEFAULT_MODEL, [*changed, user("next")], **extra)
    assert message == (f"{where}: Invalid `signature` in `thinking` block. {BOUND} Remove the block, or set "
                       '`thinking.block_binding.prefix_mismatch_behavior` to "drop_block". That setting requires '
                       f"the `{BINDING_BETA}` value in the `anthropic-beta` header.")


def test_blocks_before_a_change_and_blocks_written_after_it_stay_valid(client: anthropic.Anthropic) -> None:
    messages = conversation(client, DEFAULT_MODEL)
    # Replace the second turn's question and drop its answer: the first answer's block is still valid.
    history = [*messages[:2], user("question 2, asked again")]
    again = ask(client, DEFAULT_MODEL, history)
    # ...and the block written for the new question is bound to the new conversation.
    assert ask(client, DEFAULT_MODEL, [*history, as_param(again), user("next")]).content


def test_a_non_preserving_model_checks_the_signature_over_the_text_only(client: anthropic.Anthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    messages = conversation(client, OLD, thinking=thinking)
    edited = [dict(messages[0], content="a different first question"), *messages[1:], user("next")]
    assert ask(client, OLD, edited, thinking=thinking, system="changed").content  # no prefix check
    tampered = json.loads(json.dumps(messages))
    tampered[1]["content"][0]["thinking"] += " (edited)"
    assert rejected(client, OLD, [*tampered, user("next")], thinking=thinking) == (
        "messages.1.content.0: Invalid `signature` in `thinking` block")


def test_drop_block_drops_the_invalid_blocks_and_reports_them(client: anthropic.Anthropic) -> None:
    messages = conversation(client, DEFAULT_MODEL)
    changed = [dict(messages[0], content="a different first question"), *messages[1:], user("next")]
    thinking = {"type": "adaptive", "block_binding": {"prefix_mismatch_behavior": "drop_block"}}
    answer = client.beta.messages.create(model=DEFAULT_MODEL, max_tokens=2000, messages=changed,
                                         thinking=thinking, betas=[BINDING_BETA])
    assert [(t.type, t.path, t.reason) for t in answer.input_transformations] == [
        ("thinking_dropped", "messages.1.content.0", "prefix_binding_mismatch"),
        ("thinking_dropped", "messages.3.content.0", "prefix_binding_mismatch")]
    # dropped blocks count nothing: the same request without them costs the same
    kept = [changed[0], dict(changed[1], content=changed[1]["content"][1:]), changed[2],
            dict(changed[3], content=changed[3]["content"][1:]), changed[4]]
    assert answer.usage.input_tokens == client.messages.count_tokens(model=OLD, messages=kept).input_tokens
    # streamed: the list is final in message_start
    with client.beta.messages.stream(model=DEFAULT_MODEL, max_tokens=2000, messages=changed, thinking=thinking,
                                     betas=[BINDING_BETA]) as stream:
        start = next(event for event in stream if event.type == "message_start")
        assert [t.path for t in start.message.input_transformations] == ["messages.1.content.0",
                                                                         "messages.3.content.0"]
        stream.until_done()
    # with the beta header and nothing to report, the list is there and empty
    fine = client.beta.messages.create(model=DEFAULT_MODEL, max_tokens=2000, messages=[*messages, user("next")],
                                       betas=[BINDING_BETA])
    assert fine.input_transformations == []


def test_drop_block_needs_the_beta_header(emu: Emulator) -> None:
    body = {"model": DEFAULT_MODEL, "max_tokens": 100, "messages": [user("hi")],
            "thinking": {"type": "adaptive", "block_binding": {"prefix_mismatch_behavior": "drop_block"}}}
    response = httpx2.post(f"{emu.base_url}/v1/messages", json=body, headers={"x-api-key": KEY})
    assert response.status_code == 400 and BINDING_BETA in response.json()["error"]["message"]


def test_with_the_beta_header_the_400_does_not_ask_for_it(client: anthropic.Anthropic) -> None:
    messages = conversation(client, DEFAULT_MODEL)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.beta.messages.create(model=DEFAULT_MODEL, max_tokens=2000, betas=[BINDING_BETA],
                                    messages=[*messages, user("next")], system="changed")
    message = info.value.body["error"]["message"]  # type: ignore[index]
    assert BOUND in message and "anthropic-beta" not in message


def test_the_token_count_runs_the_same_prefix_check(client: anthropic.Anthropic) -> None:
    messages = conversation(client, DEFAULT_MODEL)
    with pytest.raises(anthropic.BadRequestError, match="bound to a different conversation"):
        client.messages.count_tokens(model=DEFAULT_MODEL, messages=[*messages, user("n")], system="changed")
    assert client.messages.count_tokens(model=DEFAULT_MODEL, messages=[*messages, user("n")]).input_tokens > 0


def test_blocks_the_model_cannot_read_are_dropped_without_an_error(client: anthropic.Anthropic) -> None:
    sonnet_history = conversation(client, SONNET)
    # Opus 5.5 reads only its own blocks: the Sonnet blocks go, quietly, and reported with the beta header
    assert ask(client, OPUS, [*sonnet_history, user("next")]).content
    answer = client.beta.messages.create(model=OPUS, max_tokens=2000, messages=[*sonnet_history, user("next")],
                                         betas=[BINDING_BETA])
    assert {(t.path, t.reason) for t in answer.input_transformations} == {
        ("messages.1.content.0", "model_binding_mismatch"), ("messages.3.content.0", "model_binding_mismatch")}
    # Fable 5.1 reads Opus 5.5's blocks; nothing is dropped
    opus_history = conversation(client, OPUS)
    read = client.beta.messages.create(model=FABLE_1, max_tokens=2000, messages=[*opus_history, user("next")],
                                       betas=[BINDING_BETA])
    assert read.input_transformations == []
    # a switched conversation goes on: the new model's block is bound to the history as sent
    mixed = [*sonnet_history, user("next"), as_param(answer), user("and then?")]
    assert ask(client, OPUS, mixed).content


def test_older_models_do_not_read_preserved_thinking(client: anthropic.Anthropic) -> None:
    history = conversation(client, SONNET)
    answer = client.beta.messages.create(model="claude-opus-4-6", max_tokens=2000, betas=[BINDING_BETA],
                                         messages=[*history, user("next")])
    assert [t.reason for t in answer.input_transformations] == ["model_binding_mismatch"] * 2


# -- what each model accepts ------------------------------------------------------------------------

def test_thinking_cannot_be_disabled_on_sonnet_5_5_and_the_message_points_to_between_tools(
        client: anthropic.Anthropic) -> None:
    message = rejected(client, DEFAULT_MODEL, [user("hi")], thinking={"type": "disabled"})
    assert message.startswith('"thinking.type.disabled" is not supported for this model.')
    assert "between_tools" in message


@pytest.mark.parametrize("model", [OPUS, FABLE_1, FABLE_2, "claude-fable-5"])
def test_models_that_always_think_reject_disabled_and_budgets(client: anthropic.Anthropic, model: str) -> None:
    for kind, extra in (("disabled", {}), ("enabled", {"budget_tokens": 1024})):
        assert rejected(client, model, [user("hi")], thinking={"type": kind, **extra}) == (
            f'"thinking.type.{kind}" is not supported for this model. Use "thinking.type.adaptive" and '
            '"output_config.effort" to control thinking behavior.')


@pytest.mark.parametrize(("model", "kind"), [(SONNET, "between_tools"), (HAIKU, "disabled"),
                                             ("claude-opus-5", "disabled")])
def test_thinking_off_works_at_effort_high_or_below_only(client: anthropic.Anthropic, model: str, kind: str) -> None:
    for effort in ("low", "medium", "high"):
        assert ask(client, model, [user("hi")], thinking={"type": kind}, output_config={"effort": effort}).content
    for effort in ("xhigh", "max"):
        assert f'"thinking.type.{kind}"' in rejected(client, model, [user("hi")], thinking={"type": kind},
                                                     output_config={"effort": effort})


def test_between_tools_is_sonnet_5_5_only(client: anthropic.Anthropic) -> None:
    for model in (OPUS, HAIKU, OLD):
        assert '"thinking.type.between_tools" is not supported' in rejected(
            client, model, [user("hi")], thinking={"type": "between_tools"})


def test_budgets_by_generation(client: anthropic.Anthropic) -> None:
    budget = {"type": "enabled", "budget_tokens": 1024}
    for model in (OLD, "claude-opus-4-6"):
        assert ask(client, model, [user("hi")], thinking=budget).content
    for model in ("claude-opus-4-7", DEFAULT_MODEL):
        assert "not supported for this model" in rejected(client, model, [user("hi")], thinking=budget)
    assert rejected(client, OLD, [user("hi")], thinking={"type": "adaptive"}) == (
        "adaptive thinking is not supported on this model")


def test_prefill_is_rejected_from_4_6_on(client: anthropic.Anthropic) -> None:
    prefilled = [user("Name a colour."), {"role": "assistant", "content": "The colour is"}]
    assert ask(client, OLD, prefilled).content
    for model in ("claude-opus-4-6", DEFAULT_MODEL, OPUS):
        assert rejected(client, model, prefilled) == (
            "This model does not support assistant message prefill. The conversation must end with a user message.")


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_forced_tool_choice(client: anthropic.Anthropic, choice: dict[str, Any]) -> None:
    for model in (SONNET, OPUS, FABLE_1, FABLE_2):
        assert "forced tool use is not available" in rejected(client, model, [user("w")], tools=[WEATHER],
                                                              tool_choice=choice)
    assert ask(client, OLD, [user("w")], tools=[WEATHER], tool_choice=choice).content[-1].type == "tool_use"
    thinking_on = "Thinking may not be enabled when tool_choice forces tool use."
    assert rejected(client, OLD, [user("w")], tools=[WEATHER], tool_choice=choice,
                    thinking={"type": "enabled", "budget_tokens": 1024}) == thinking_on
    # Haiku 5.5 thinks by default: forcing a tool is refused until thinking is turned off
    assert rejected(client, HAIKU, [user("w")], tools=[WEATHER], tool_choice=choice) == thinking_on
    assert ask(client, HAIKU, [user("w")], tools=[WEATHER], tool_choice=choice, thinking={"type": "disabled"},
               output_config={"effort": "high"}).content[-1].type == "tool_use"


def test_effort_per_model(client: anthropic.Anthropic) -> None:
    for effort in ("low", "medium", "high", "xhigh", "max"):
        assert ask(client, DEFAULT_MODEL, [user("hi")], output_config={"effort": effort}).content
    assert rejected(client, OLD, [user("hi")], output_config={"effort": "high"}) == (
        "This model does not support the effort parameter.")
    assert "'xhigh' is not supported for this model" in rejected(
        client, "claude-opus-4-6", [user("hi")], output_config={"effort": "xhigh"})


@pytest.mark.parametrize("model", [DEFAULT_MODEL, OLD])
def test_max_tokens_up_to_the_models_max_output(client: anthropic.Anthropic, model: str) -> None:
    row = contract(model)
    assert row is not None
    # (the SDK streams requests this large: a plain create() of 128K tokens could outlast its timeout)
    with client.messages.stream(model=model, max_tokens=row.max_output, messages=[user("hi")]) as stream:
        assert stream.get_final_message().content
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.stream(model=model, max_tokens=row.max_output + 1, messages=[user("hi")]).__enter__()
    assert info.value.body["error"]["message"] == (  # type: ignore[index]
        f"max_tokens: {row.max_output + 1} > {row.max_output}, which is the maximum allowed number of output "
        f"tokens for {model}")


def test_sampling_is_rejected_from_4_7_on(client: anthropic.Anthropic) -> None:
    assert ask(client, OLD, [user("hi")], extra_body={"temperature": 0.5}).content
    assert rejected(client, DEFAULT_MODEL, [user("hi")], extra_body={"temperature": 0.5}) == (
        "`temperature` is deprecated for this model.")


def test_display_values(client: anthropic.Anthropic) -> None:
    assert "display" in rejected(client, DEFAULT_MODEL, [user("hi")],
                                 thinking={"type": "adaptive", "display": "verbose"})
