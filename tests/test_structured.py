"""Typed answers (`output=`): what goes on the wire, what `reply.parsed` holds, how failures read, how the cell
shows the object, and the emulator's structured-output rules, all through the real SDK and the emulator."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

import anthropic
import pydantic
import pytest
from support import run_coroutine
from typing_extensions import TypedDict

import claude_magic
from claude_magic.core import engine as _engine
from claude_magic.core.history import STORE
from claude_magic.emulator import Emulator
from claude_magic.render.view import answer_bundle
from claude_magic.settings import ClaudeMagic
from claude_magic.surfaces.sinks import FinalCellSink


class Review(pydantic.BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    stars: int = pydantic.Field(ge=1, le=5)
    summary: str = pydantic.Field(max_length=40)


@dataclasses.dataclass
class Point:
    x: int
    labels: list[str]


class Movie(TypedDict):
    title: str
    year: int


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "count": {"type": "integer", "minimum": 2}},
          "required": ["city", "count"]}
SCRIPT = {"turns": [
    {"match": "refuse me", "content": "I can't help with that.", "stop_reason": "refusal"},
    {"match": "wrong shape", "content": '{"sentiment": "ecstatic", "stars": 9, "summary": "x"}'},
]}


@pytest.fixture
def emu(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    return emulator


@pytest.fixture(autouse=True)
def fresh_history() -> Any:
    yield
    for name in STORE.names():
        STORE.get(name).reset()


def _sent_format(emu: Emulator) -> dict[str, Any]:
    return emu.requests[-1].body["output_config"]["format"]


def test_a_pydantic_model_goes_out_as_the_sdk_builds_it_and_comes_back_validated(emu: Emulator) -> None:
    reply = claude_magic.ask("The soup was cold and the waiter rude: negative", output=Review, display="none",
                             conversation="typed")
    assert reply.error is None
    assert isinstance(reply.parsed, Review)
    assert reply.parsed.sentiment == "negative"  # the emulator answers the enum value the prompt names
    assert 1 <= reply.parsed.stars <= 5 and len(reply.parsed.summary) <= 40
    expected = anthropic.transform_schema(pydantic.TypeAdapter(Review).json_schema())
    assert _sent_format(emu) == {"type": "json_schema", "schema": expected}
    assert expected["additionalProperties"] is False and "minimum" not in expected["properties"]["stars"]
    assert json.loads(reply.text) == reply.parsed.model_dump()  # the JSON is the answer's text


@pytest.mark.parametrize(("output", "check"), [
    (Point, lambda parsed: isinstance(parsed, Point) and isinstance(parsed.labels, list)),
    (Movie, lambda parsed: isinstance(parsed, dict) and set(parsed) == {"title", "year"}),
    (SCHEMA, lambda parsed: isinstance(parsed, dict) and parsed["count"] >= 2),
])
def test_dataclasses_typeddicts_and_schema_dicts(emu: Emulator, output: Any, check: Any) -> None:
    reply = claude_magic.ask("Describe one", output=output, display="none", conversation="typed")
    assert reply.error is None and check(reply.parsed)
    schema = _sent_format(emu)["schema"]
    assert schema["additionalProperties"] is False  # closed by the SDK's transform_schema, also for a dict


def test_output_config_keeps_other_keys() -> None:
    from claude_magic.core.structured import output_spec, with_format

    merged = with_format({"effort": "low"}, output_spec(Review))
    assert merged["effort"] == "low" and merged["format"]["type"] == "json_schema"


@pytest.mark.parametrize(("prompt", "kwargs", "reason"), [
    ("please refuse me", {}, "declined to answer (stop_reason refusal)"),
    ("Rate this", {"max_tokens": 6}, "cut off by max_tokens"),
    ("the wrong shape", {}, "not a valid Review: sentiment: Input should be"),
])
def test_refusal_cutoff_and_invalid_object_are_one_line_with_parsed_none(emu: Emulator, prompt: str,
                                                                        kwargs: dict[str, Any], reason: str) -> None:
    reply = claude_magic.ask(prompt, output=Review, display="none", raise_on_error=False, conversation="typed",
                             **kwargs)
    assert reply.parsed is None
    assert reason in reply.error and "\n" not in reply.error and "Traceback" not in reply.error
    with pytest.raises(claude_magic.ClaudeError) as raised:
        claude_magic.ask(prompt, output=Review, display="none", new=True, conversation="typed2", **kwargs)
    assert reason in str(raised.value)


def test_an_unusable_type_is_one_line_and_nothing_is_sent(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="output= takes a pydantic model"):
        claude_magic.ask("x", output=42, display="none")
    with pytest.raises(ValueError, match="must describe an object"):
        claude_magic.ask("x", output={"type": "string"}, display="none")
    assert emu.requests == []


class RecordingPublisher:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None:
        self.calls.append(bundle)

    def update(self, bundle: dict[str, str], display_id: str) -> None:
        self.calls.append(bundle)

    def clear(self) -> None:
        pass

    def flush(self) -> None:
        pass


def test_the_cell_shows_a_table_not_raw_json_and_escapes_values(emu: Emulator) -> None:
    emu.set_script({"turns": [{"match": "xss", "content": json.dumps(
        {"sentiment": "positive", "stars": 4, "summary": "<img src=x onerror=alert(1)>"})}]})
    publisher = RecordingPublisher()
    turn = _engine.prepare_turn("xss review", ClaudeMagic(), output=Review, conversation="typed")
    state = _engine.run_exchange(turn, FinalCellSink(publisher))
    final = publisher.calls[-1]
    assert "<table" in final["text/html"] and "<th" in final["text/html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in final["text/html"] and "<img" not in final["text/html"]
    assert '{"sentiment"' not in final["text/html"]
    assert "stars" in final["text/plain"] and "4" in final["text/plain"]
    assert answer_bundle(state) == final


def test_magic_output_flag_and_out_keep_the_typed_reply(shell: Any, emu: Emulator) -> None:
    shell.user_ns["Review"] = Review
    result = shell.run_cell("%%claude --output Review --out r\nTerrible service, negative")
    assert result.error_in_exec is None
    reply = shell.user_ns["r"]
    assert isinstance(reply.parsed, Review) and reply.parsed.sentiment == "negative"
    assert _sent_format(emu)["type"] == "json_schema"
    result = shell.run_cell("%%claude --output Nope\nx")
    assert "no such name in the notebook" in str(result.error_in_exec)


# -- the emulator's schema rules (the structured-outputs page), through the SDK ------------------------------


def _create(emu: Emulator, schema: dict[str, Any]) -> str:
    client = anthropic.Anthropic(base_url=emu.base_url, api_key="test", max_retries=0)
    try:
        client.messages.create(model="claude-sonnet-5-5", max_tokens=200, messages=[{"role": "user", "content": "x"}],
                               output_config={"format": {"type": "json_schema", "schema": schema}})
    except anthropic.BadRequestError as exc:
        return str(exc.body["error"]["message"])  # type: ignore[index]
    return "accepted"


def _closed(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "object", "properties": {"a": {"type": "string"}}},
     "output_config.format.schema: For 'object' type, 'additionalProperties' must be explicitly set to false"),
    (_closed(n={"type": "integer", "minimum": 0}), "For 'integer' type, property 'minimum' is not supported"),
    (_closed(s={"type": "string", "maxLength": 3}), "For 'string' type, property 'maxLength' is not supported"),
    (_closed(a={"type": "array", "items": {"type": "string"}, "maxItems": 2}),
     "For 'array' type, property 'maxItems' is not supported"),
    (_closed(u={"oneOf": [{"type": "string"}, {"type": "integer"}]}), "Schema type 'oneOf' is not supported"),
    (_closed(any={}), "Empty schema ({}) that accepts any JSON value is not supported."),
    (_closed(o=_closed(inner={"type": "object", "properties": {}})),
     "'additionalProperties' must be explicitly set to false"),
])
def test_the_emulator_refuses_what_the_api_refuses(emu: Emulator, schema: dict[str, Any], message: str) -> None:
    assert message in _create(emu, schema)


def test_the_emulator_answers_json_that_satisfies_the_schema(emu: Emulator) -> None:
    schema = _closed(name={"type": "string"}, tags={"type": "array", "items": {"type": "string"}},
                     nested=_closed(flag={"type": "boolean"}), kind={"enum": ["a", "b"]},
                     maybe={"anyOf": [{"type": "integer"}, {"type": "null"}]})
    assert _create(emu, schema) == "accepted"
    client = anthropic.Anthropic(base_url=emu.base_url, api_key="test")
    message = client.messages.create(model="claude-sonnet-5-5", max_tokens=500,
                                     messages=[{"role": "user", "content": "x"}],
                                     output_config={"format": {"type": "json_schema", "schema": schema}})
    value = json.loads("".join(block.text for block in message.content if block.type == "text"))
    assert set(value) == {"name", "tags", "nested", "kind", "maybe"}
    assert isinstance(value["tags"], list) and isinstance(value["nested"]["flag"], bool)
    assert value["kind"] in ("a", "b") and isinstance(value["maybe"], int)


def test_the_json_streams_live_then_the_table_replaces_it(emu: Emulator) -> None:
    from claude_magic.surfaces.sinks import LiveCellSink

    emu.set_pace(tokens_per_second=200)
    publisher = RecordingPublisher()
    turn = _engine.prepare_turn("Great place: positive", ClaudeMagic(), output=Review, conversation="typed",
                                max_tokens=400)
    _engine.run_exchange(turn, LiveCellSink(publisher, "typed"))
    html_frames = [bundle.get("text/html", "") for bundle in publisher.calls]
    assert any("sentiment" in frame and "<table" not in frame for frame in html_frames[:-1])  # JSON as it arrives
    assert "<table" in html_frames[-1]


def test_ask_async_takes_output_too(emu: Emulator) -> None:

    reply = run_coroutine(claude_magic.ask_async("Fine: positive", output=Review, display="none",
                                               conversation="typed"))
    assert isinstance(reply.parsed, Review)
