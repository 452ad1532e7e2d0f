"""Typed answers: `output=Model` → the API's structured output (`output_config.format`) → `reply.parsed`.

    spec = output_spec(Review)                  # a pydantic model, dataclass, TypedDict or JSON-schema dict
    request["output_config"] = with_format(request.get("output_config"), spec)
    parse_into(state, spec)                     # once the stream ended: state.parsed, or state.error

The schema is the SDK's own: `anthropic.transform_schema` over pydantic's JSON schema of the type (what
`client.messages.parse(output_format=Model)` sends: every object closed with `additionalProperties: false`,
bounds the API does not take moved into descriptions). The request is streamed with `output_config`
rather than `messages.stream(output_format=...)`: the SDK's stream validates the object inside its event
loop, so an answer cut off by max_tokens would surface as a pydantic traceback mid-stream; here it is
validated once at the end, and any failure is one line on the turn.
Docs: https://platform.claude.com/docs/en/build-with-claude/structured-outputs
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from claude_magic.core.turn import ErrorInfo, TurnState


@dataclass(frozen=True)
class OutputSpec:
    """What `output=` asked for: the type to validate into (None for a schema dict) and the wire schema."""

    name: str
    schema: dict[str, Any]
    target: Any = None  # a type pydantic's TypeAdapter validates into; None: the parsed JSON dict is the result
    _adapter: Any = dataclasses.field(default=None, compare=False, repr=False)

    def format_param(self) -> dict[str, Any]:
        """The API's `output_config.format`."""
        return {"type": "json_schema", "schema": self.schema}

    def validate(self, text: str) -> Any:
        """The answer's JSON as the requested type; raises ValueError (one line) when it is not one."""
        if self._adapter is None:
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the answer is not JSON ({exc.msg} at character {exc.pos})") from None
        import pydantic

        try:
            return self._adapter.validate_json(text)
        except pydantic.ValidationError as exc:
            raise ValueError(_first_problem(exc, self.name)) from None


def output_spec(output: Any) -> OutputSpec | None:
    """`output=` as an OutputSpec (None passes through); ValueError, one line, for what cannot be a schema."""
    if output is None or isinstance(output, OutputSpec):
        return output
    from anthropic import transform_schema

    if isinstance(output, Mapping):
        if output.get("type") != "object" and "$ref" not in output and "anyOf" not in output:
            raise ValueError("output= as a JSON schema must describe an object (\"type\": \"object\"), "
                             f"got type {output.get('type')!r}")
        return OutputSpec(name=str(output.get("title") or "object"), schema=transform_schema(dict(output)))
    if not inspect.isclass(output):
        raise ValueError(f"output= takes a pydantic model, a dataclass, a TypedDict or a JSON-schema dict, "
                         f"got {type(output).__name__}")
    import pydantic

    try:
        adapter: Any = pydantic.TypeAdapter(output)
        schema = transform_schema(adapter.json_schema())
    except pydantic.PydanticUserError as exc:  # schema generation errors included; the first line is the fix
        reason = str(exc).strip().splitlines()[0]
        raise ValueError(f"output={output.__name__}: pydantic cannot build a JSON schema for it ({reason})") from None
    return OutputSpec(name=output.__name__, schema=schema, target=output, _adapter=adapter)


def with_format(output_config: Mapping[str, Any] | None, spec: OutputSpec) -> dict[str, Any]:
    """`output_config` with the structured-output format added; other keys (e.g. `effort`) are kept."""
    return {**(output_config or {}), "format": spec.format_param()}


def parse_into(state: TurnState, spec: OutputSpec) -> None:
    """After the stream: the validated object in `state.parsed`, or the reason in `state.error`.

    Only a completed turn is parsed (a failed or interrupted one already says why). A refusal and an answer
    cut off by max_tokens are not objects, and the API says so with the stop_reason: the docs' two cases
    where the output may not match the schema."""
    if state.status != "complete":
        return
    if state.stop_reason == "refusal":
        state.error = ErrorInfo("output", f"Claude declined to answer (stop_reason refusal): no {spec.name} "
                                "object; its text is in reply.text")
        return
    if state.stop_reason == "max_tokens":
        state.error = ErrorInfo("output", f"The {spec.name} object was cut off by max_tokens: raise max_tokens "
                                "and ask again; the partial JSON is in reply.text")
        return
    try:
        state.parsed = spec.validate(state.text)
    except ValueError as exc:
        state.error = ErrorInfo("output", f"The answer is not a valid {spec.name}: {exc}; its text is in "
                                "reply.text")


def _first_problem(exc: Any, name: str) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc).splitlines()[0]
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or name
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def as_record(parsed: Any) -> dict[str, Any] | None:
    """A parsed object as one flat-ish row: field name → value (None when it is not a mapping-like object)."""
    if parsed is None:
        return None
    if hasattr(parsed, "model_dump"):
        return dict(parsed.model_dump(mode="python"))
    if dataclasses.is_dataclass(parsed) and not isinstance(parsed, type):
        return dataclasses.asdict(parsed)
    if isinstance(parsed, Mapping):
        return dict(parsed)
    return None


__all__ = ["OutputSpec", "as_record", "output_spec", "parse_into", "with_format"]
