"""An offline emulator of the Anthropic Messages API, for tests, demos and notebooks.

The unmodified ``anthropic`` SDK talks to it as if it were the API: streaming (SSE) and plain
``messages.create``, ``count_tokens``, API-shaped errors, and scripted replies with thinking, tool calls
and deliberate faults (HTTP errors, mid-stream error events, disconnects, stalls, malformed events).
Stdlib HTTP server plus PyYAML; no network access needed.

Usage::

    import anthropic
    from claude_magic.emulator import Emulator, known_models

    script = {"turns": [{"match": "caching", "content": "Use `Cache-Control`."}]}
    with Emulator(script=script, tokens_per_second=50) as emu:
        client = anthropic.Anthropic(base_url=emu.base_url, api_key="any-key")
        with client.messages.stream(
            model=known_models()[0],
            max_tokens=256,
            messages=[{"role": "user", "content": "Explain HTTP caching"}],
        ) as stream:
            print("".join(stream.text_stream))      # Use `Cache-Control`.
        print(emu.requests[-1].messages)           # what the server received

From another process: ``python -m claude_magic.emulator --port 8765 --script turns.yaml`` and set
``ANTHROPIC_BASE_URL=http://127.0.0.1:8765``. The script format is in ``SCRIPT_FORMAT.md`` and in the
docstring of :mod:`claude_magic.emulator._script`. Admin endpoints: ``GET /_emulator/health``,
``GET /_emulator/requests``, ``POST /_emulator/reset``, ``POST /_emulator/script`` (body: script JSON),
``POST /_emulator/pace`` (body: ``{"tokens_per_second": .., "chunk_tokens": ..}``).
"""

from __future__ import annotations

from ._emulator import Emulator, ScriptSource
from ._errors import ERROR_TYPE_BY_STATUS
from ._replies import default_reply, generate_markdown
from ._script import Fault, Generate, Pace, Script, ScriptError, Turn, load_script, parse_script
from ._state import RecordedRequest
from ._tokens import count_tokens, tokenize
from ._validate import history_problem, served_models


def known_models() -> tuple[str, ...]:
    """Model ids every emulator accepts: those the installed SDK lists in ``ModelParam`` and those of the
    contract table (``claude_magic._model_facts``)."""
    return served_models()


__all__ = [
    "ERROR_TYPE_BY_STATUS",
    "Emulator",
    "Fault",
    "Generate",
    "Pace",
    "RecordedRequest",
    "Script",
    "ScriptError",
    "ScriptSource",
    "Turn",
    "count_tokens",
    "default_reply",
    "generate_markdown",
    "history_problem",
    "known_models",
    "load_script",
    "parse_script",
    "tokenize",
]
