"""Reply texts the emulator makes up: the default reply and generated long Markdown answers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from ._tokens import count_tokens

QUOTE_CHARS = 80
PREVIOUS_QUOTE_CHARS = 60


def _quote(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, so a multi-line prompt cannot break the Markdown."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def default_reply(prompts: list[str], model: str) -> str:
    """The answer when no script turn matches.

    It says plainly that it is not Claude, quotes the prompt, and counts and quotes the earlier user
    messages so a follow-up question visibly shows that the history reached the server.
    """
    prompt = prompts[-1] if prompts else ""
    turn = len(prompts)
    if turn > 1:
        history = (
            f"This is turn {turn} of the conversation; your previous message was "
            f"“{_quote(prompts[-2], PREVIOUS_QUOTE_CHARS)}”."
        )
    else:
        history = "This is turn 1 of the conversation."
    return (
        "## Emulator reply\n\n"
        "This answer comes from the **offline claude_magic emulator, not Claude**. "
        f"You asked: “{_quote(prompt, QUOTE_CHARS)}”. {history} "
        "No model has read your question; this text only shows that the request arrived and that "
        "the answer streams back.\n\n"
        "- The text streams token by token, the way the real Messages API sends it.\n"
        "- Point a script at the emulator to choose replies, tool calls, thinking and faults.\n"
        f"- The requested model was `{model}`; usage numbers come from a simple local tokenizer.\n\n"
        "```python\n"
        "def emulator_turn() -> int:\n"
        f'    """Turn {turn}, answered offline."""\n'
        f"    return {turn}\n"
        "```"
    )


def default_thinking(prompts: list[str]) -> str:
    """The thinking a thinking request gets when the script has none: short, and honest about being made up."""
    prompt = prompts[-1] if prompts else ""
    return (
        f"The question is “{_quote(prompt, QUOTE_CHARS)}”. I am the offline emulator, not Claude, so there is "
        "nothing to reason about: this thinking block only shows how thinking streams before the answer, "
        "and that its signature has to come back unchanged in the next request."
    )


# ---------------------------------------------------------------------------------------------------
# Generated answers

# Words of at most 8 letters are one token each, which keeps the exact-length fill simple.
_WORDS = (
    "cache",
    "server",
    "client",
    "request",
    "response",
    "header",
    "token",
    "stream",
    "buffer",
    "render",
    "update",
    "value",
    "module",
    "function",
    "option",
    "default",
    "network",
    "latency",
    "memory",
    "thread",
    "signal",
    "format",
    "parser",
    "browser",
    "kernel",
    "display",
    "output",
    "widget",
    "message",
    "history",
    "context",
    "prompt",
    "answer",
    "model",
    "simple",
    "careful",
    "quick",
    "stable",
    "small",
    "large",
    "final",
    "first",
    "second",
    "other",
    "common",
    "useful",
    "returns",
    "keeps",
    "sends",
    "reads",
    "writes",
    "checks",
    "builds",
    "stores",
    "handles",
    "avoids",
    "starts",
    "stops",
    "because",
    "while",
    "when",
    "after",
    "before",
    "every",
    "each",
    "only",
    "also",
    "often",
    "rarely",
    "usually",
    "then",
)
_LANGS = ("python", "javascript", "bash")
_NAMES = ("fetch", "render", "parse", "update", "collect", "measure", "store", "retry")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
    if rng.random() < 0.25:
        i = rng.randrange(len(words))
        words[i] = f"`{words[i]}`"
    elif rng.random() < 0.2:
        i = rng.randrange(len(words))
        words[i] = f"**{words[i]}**"
    return " ".join(words).capitalize() + rng.choice((".", ".", ".", "!", "?"))


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


def _heading(rng: random.Random) -> str:
    return "#" * rng.choice((2, 2, 3)) + " " + " ".join(rng.choice(_WORDS) for _ in range(3)).title()


def _bullets(rng: random.Random) -> str:
    marker = rng.choice(("- ", "- ", "1. "))
    items = []
    for n in range(rng.randint(3, 6)):
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 10)))
        items.append(f"{n + 1}. {text}" if marker == "1. " else f"- {text}")
    return "\n".join(items)


def _code(rng: random.Random) -> str:
    lang = rng.choice(_LANGS)
    name = rng.choice(_NAMES)
    var = rng.choice(_WORDS)
    if lang == "python":
        body = [
            f"def {name}_{var}(items: list[str]) -> dict[str, int]:",
            "    counts: dict[str, int] = {}",
            "    for item in items:",
            "        counts[item] = counts.get(item, 0) + 1",
            "    return counts",
        ]
    elif lang == "javascript":
        body = [
            f"async function {name}(url) {{",
            "  const response = await fetch(url);",
            f"  const {var} = await response.json();",
            f"  return {var}.length;",
            "}",
        ]
    else:
        body = [f"for f in *.{var}; do", f'  echo "{name} $f"', "done"]
    return f"```{lang}\n" + "\n".join(body) + "\n```"


def _table(rng: random.Random) -> str:
    cols = [rng.choice(_WORDS).title() for _ in range(3)]
    rows = ["| " + " | ".join(cols) + " |", "|---|---|---|"]
    for _ in range(rng.randint(2, 4)):
        rows.append("| " + " | ".join(rng.choice(_WORDS) for _ in range(3)) + " |")
    return "\n".join(rows)


def _filler(rng: random.Random, tokens: int, first: bool) -> str:
    """A paragraph of exactly ``tokens`` tokens (each word is one token; the full stop is one more)."""
    if tokens == 1:
        return "." if first else "\n"
    words = [rng.choice(_WORDS) for _ in range(tokens - 1)]
    text = " ".join(words).capitalize() + "."
    return text if first else "\n\n" + text


def _blocks(rng: random.Random) -> Iterator[str]:
    """An endless answer: an intro, then sections of a heading, prose and the odd list, code or table."""
    yield _paragraph(rng)
    makers = (_paragraph, _bullets, _code, _table)
    while True:
        yield _heading(rng)
        yield _paragraph(rng)
        for _ in range(rng.randint(1, 3)):
            yield rng.choices(makers, weights=(5, 3, 2, 1))[0](rng)


def generate_markdown(tokens: int, seed: int = 0) -> str:
    """A realistic Markdown answer of exactly ``tokens`` tokens, the same for the same arguments."""
    rng = random.Random(seed)
    parts: list[str] = []
    used = 0
    for block in _blocks(rng):
        piece = block if not parts else "\n\n" + block
        cost = count_tokens(piece)
        if used + cost > tokens:
            break
        parts.append(piece)
        used += cost
    # Top up with a paragraph of exactly the missing length so the total is exact and no block is cut.
    if used < tokens:
        parts.append(_filler(rng, tokens - used, first=not parts))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------
# The default reply when the request offers tools: call one, then answer from its result

_EXAMPLE_STRINGS = {"city": "Paris", "location": "Paris", "country": "France", "query": "offline emulator",
                    "name": "example", "unit": "c", "language": "en", "url": "https://example.com"}


def example_value(name: str, schema: Any) -> Any:
    """A value valid for a JSON schema (the subset pydantic and the SDK's beta_tool produce)."""
    if not isinstance(schema, dict):
        return "example"
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key) or [] if isinstance(s, dict) and s.get("type") != "null"]
        if options:
            return example_value(name, options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "array":
        return [example_value(name, schema.get("items", {}))] if schema.get("minItems") else []
    if kind == "object":
        return example_input(schema)
    return _EXAMPLE_STRINGS.get(name.lower(), "example")


def example_input(schema: Any) -> dict[str, Any]:
    """Arguments for a tool: every required property, valid for its schema."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties") or {}
    return {key: example_value(key, properties.get(key, {})) for key in schema.get("required") or []}


def _tool_results(messages: list[Any]) -> list[dict[str, Any]]:
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def default_tool_blocks(body: dict[str, Any], tools: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The offline loop when tools are offered: first a call with valid arguments, then, once the result
    comes back, an answer that quotes it. None: answer with the plain default reply."""
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or choice.get("type") == "none":
        return None
    results = _tool_results(body.get("messages") or [])
    if results:
        from ._script import content_text

        quoted = "; ".join(_quote(content_text(r.get("content", "")) or "(empty)", QUOTE_CHARS) for r in results)
        failed = any(r.get("is_error") for r in results)
        verdict = "The tool reported an error, so I cannot answer that part." if failed else (
            "That is what the tool returned; a real model would now answer from it.")
        return [{"type": "text", "text": (
            f"*(Offline emulator, not Claude.)* The tool answered: “{quoted}”. {verdict}")}]
    tool = tools[0]
    if choice.get("type") == "tool":
        tool = next((t for t in tools if t.get("name") == choice.get("name")), tool)
    return [
        {"type": "text", "text": f"*(Offline emulator, not Claude.)* Let me call `{tool['name']}`."},
        {"type": "tool_use", "name": tool["name"], "input": example_input(tool.get("input_schema"))},
    ]
