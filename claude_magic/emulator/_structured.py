"""Structured outputs (`output_config.format`): the API's schema rules, and answers that satisfy the schema.

Docs: https://platform.claude.com/docs/en/build-with-claude/structured-outputs ("JSON Schema limitations":
every object must set `additionalProperties: false`; numeric bounds, string lengths, array bounds beyond
`minItems` 0/1, `oneOf`, `not`, conditional and recursive schemas are not supported). The messages are the
API's own, each prefixed with the field path as the API does (`output_config.format.schema: ...`).

The emulator's answer is JSON that satisfies the schema, made up deterministically from the prompt: an enum
takes the value the prompt names (so "the service was terrible — negative?" answers "negative"), or one
picked by the prompt's hash; bounds the SDK moved into a description (`{minimum: 1, maximum: 5}`) are kept,
so the client-side validation of the original type passes.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ._errors import ApiError

SCHEMA_PATH = "output_config.format.schema"
MAX_DEPTH = 32  # deeper nesting than this is treated as the recursion the API refuses

_UNSUPPORTED = {
    # https://platform.claude.com/docs/en/build-with-claude/structured-outputs (JSON Schema limitations)
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "string": ("minLength", "maxLength"),
    "array": ("maxItems", "uniqueItems", "prefixItems", "contains", "minContains", "maxContains"),
    "object": ("minProperties", "maxProperties", "patternProperties", "propertyNames", "if", "then", "else",
               "dependentRequired", "dependentSchemas", "unevaluatedProperties"),
}
_ANNOTATIONS = {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
_BOUND = re.compile(r"\b(minimum|maximum|exclusiveMinimum|exclusiveMaximum|minLength|maxLength|minItems|maxItems)"
                    r":\s*(-?\d+(?:\.\d+)?)")


def _bad(message: str) -> ApiError:
    return ApiError(400, f"{SCHEMA_PATH}: {message}")


def check_output_config(body: dict[str, Any]) -> None:
    """400 for an `output_config.format` the API would refuse (the effort key is someone else's to check)."""
    config = body.get("output_config")
    if config is None:
        return
    if not isinstance(config, dict):
        raise ApiError(400, "output_config: Input should be a valid dictionary")
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise ApiError(400, "output_config.format: Input should be a valid dictionary")
    if fmt.get("type") != "json_schema":
        raise ApiError(400, "output_config.format.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise ApiError(400, "output_config.format.schema: Field required")
    defs = schema.get("$defs") or schema.get("definitions") or {}
    _check_node(schema, defs, (), 0)


def _check_node(node: Any, defs: dict[str, Any], refs: tuple[str, ...], depth: int) -> None:
    if not isinstance(node, dict):
        raise _bad("Input should be a valid schema object")
    if depth > MAX_DEPTH:
        raise _bad("Schema is too deeply nested")
    if "oneOf" in node:
        raise _bad("Schema type 'oneOf' is not supported")
    if "not" in node:
        raise _bad("Schema keyword 'not' is not supported")
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/"):
            raise _bad(f"External reference '{ref}' is not supported")
        if name in refs:
            raise _bad(f"Circular reference detected in schema definitions: {' -> '.join([*refs, name])}")
        if name not in defs:
            raise _bad(f"Reference '{ref}' could not be resolved")
        _check_node(defs[name], defs, (*refs, name), depth + 1)
        return
    if "anyOf" in node:
        for extra in ("type", "additionalProperties"):
            if extra in node:
                raise _bad(f"For 'anyOf', '{extra}' is not supported")
        for variant in node["anyOf"]:
            _check_node(variant, defs, refs, depth + 1)
        return
    for variant in node.get("allOf") or ():
        _check_node(variant, defs, refs, depth + 1)
    if "enum" in node or "const" in node or "allOf" in node:
        return
    kind = node.get("type")
    if kind is None and not (set(node) - _ANNOTATIONS - {"$defs", "definitions"}):
        raise _bad("Empty schema ({}) that accepts any JSON value is not supported.")
    kinds = kind if isinstance(kind, list) else [kind]
    for one in kinds:
        for keyword in _UNSUPPORTED.get(one, ()):
            if keyword in node:
                raise _bad(f"For '{one}' type, property '{keyword}' is not supported")
    if "array" in kinds:
        minimum = node.get("minItems", 0)
        if minimum not in (0, 1):
            raise _bad(f"For 'array' type, 'minItems' values other than 0 or 1 are not supported (got {minimum})")
        items = node.get("items")
        if isinstance(items, list):
            raise _bad("Array types must be specified with a single object schema for 'items'.")
        if items is not None:
            _check_node(items, defs, refs, depth + 1)
    if "object" in kinds:
        if node.get("additionalProperties") is not False:
            raise _bad("For 'object' type, 'additionalProperties' must be explicitly set to false")
        for child in (node.get("properties") or {}).values():
            _check_node(child, defs, refs, depth + 1)


# -- answers -----------------------------------------------------------------------------------------------


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    return fmt.get("schema") if isinstance(fmt, dict) else None


def json_answer(schema: dict[str, Any], prompt: str) -> str:
    """An answer that satisfies `schema` (already checked), made up from `prompt`, as the API's compact JSON."""
    defs = schema.get("$defs") or schema.get("definitions") or {}
    value = _value(schema, defs, prompt, _Seed(prompt))
    return json.dumps(value, ensure_ascii=False)


class _Seed:
    """Deterministic choices from the prompt: the same prompt always gets the same object."""

    def __init__(self, prompt: str) -> None:
        self._digest = hashlib.sha256(prompt.encode()).digest()
        self._at = 0

    def next(self, modulo: int) -> int:
        byte = self._digest[self._at % len(self._digest)]
        self._at += 1
        return byte % max(modulo, 1)


def _bounds(node: dict[str, Any]) -> dict[str, float]:
    found = {name: float(value) for name, value in _BOUND.findall(str(node.get("description") or ""))}
    return {**found, **{k: float(v) for k, v in node.items() if k in _UNSUPPORTED["integer"] + ("minItems",)
                        and isinstance(v, (int, float)) and not isinstance(v, bool)}}


def _value(node: dict[str, Any], defs: dict[str, Any], prompt: str, seed: _Seed) -> Any:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _value(defs[ref.rsplit("/", 1)[-1]], defs, prompt, seed)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return _choose(node["enum"], prompt, seed)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"] or node["anyOf"]
        return _value(variants[0], defs, prompt, seed)
    if "allOf" in node:
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            merged.update(part)
        return _value(merged, defs, prompt, seed)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    bounds = _bounds(node)
    if kind == "object":
        return {name: _value(child, defs, prompt, seed) for name, child in (node.get("properties") or {}).items()}
    if kind == "array":
        items = node.get("items") or {"type": "string"}
        count = max(int(bounds.get("minItems", 1)), 1 + seed.next(2))
        if "maxItems" in bounds:
            count = min(count, int(bounds["maxItems"]))
        return [_value(items, defs, prompt, seed) for _ in range(count)]
    if kind in ("integer", "number"):
        low = bounds.get("minimum", bounds.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in bounds else 0)
        high = bounds.get("maximum", bounds.get("exclusiveMaximum", 0) - 1 if "exclusiveMaximum" in bounds
                          else low + 9)
        number = int(low) + seed.next(int(high - low) + 1)
        return number if kind == "integer" else float(number)
    if kind == "boolean":
        return bool(seed.next(2))
    if kind == "null":
        return None
    return _string(node, prompt, bounds)


def _choose(options: list[Any], prompt: str, seed: _Seed) -> Any:
    lowered = prompt.lower()
    named = [o for o in options if isinstance(o, str) and re.search(rf"\b{re.escape(o.lower())}\b", lowered)]
    return named[-1] if named else options[seed.next(len(options))]


_FORMATS = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00", "email": "a@example.com",
            "uri": "https://example.com/", "uuid": "00000000-0000-4000-8000-000000000000", "ipv4": "192.0.2.1",
            "ipv6": "2001:db8::1", "hostname": "example.com", "duration": "P1D"}


def _string(node: dict[str, Any], prompt: str, bounds: dict[str, float]) -> str:
    if node.get("format") in _FORMATS:
        return _FORMATS[node["format"]]
    words = " ".join(prompt.split()[:12]) or "empty prompt"
    text = f"Emulated (not Claude): {words}"
    if "maxLength" in bounds:
        text = text[: int(bounds["maxLength"])]
    if "minLength" in bounds and len(text) < bounds["minLength"]:
        text = text.ljust(int(bounds["minLength"]), ".")
    return text


__all__ = ["check_output_config", "json_answer", "output_schema"]
