"""Load the SDK and the answer path in a background thread right after `%load_ext claude_magic`.

`import anthropic` is most of what a first answer would otherwise wait for (its types alone take a second
or two on a busy machine), many times what loading the extension itself costs. So `%load_ext` imports
only the magic, its settings and the history, starts this warm-up and returns; by the time the first
question is typed the SDK, the engine and the renderers are loaded, and the first answer in a fresh kernel
starts as soon as one in a warm kernel does. Two more things a first answer does once per process are done
here too: the client for the session's settings is built (its connection pool and TLS context), and the
SDK's types that every stream parses build their validators (pydantic builds them on first use).

Every surface calls `wait()` before it imports what the warm-up imports: a thread that imports a module
another thread is importing blocks on that module's import lock until it is done, which is what we want,
but two threads importing the same set of modules in different orders can deadlock on those locks, so the
main thread never imports them while the warm-up runs. `wait()` returns at once when no warm-up runs.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any

# What the first %%claude answer (and `ask`, and the panel's first turn) imports: the engine brings the SDK
# (client, stream, error texts), the display the sinks and renderers (markdown-it, nh3, Pygments, rich).
MODULES = (
    "claude_magic.core.engine",
    "claude_magic.surfaces.display",
    "claude_magic.surfaces.sinks",
    "claude_magic.surfaces.terminal",
    "claude_magic.surfaces.reply",
    "claude_magic.surfaces.context_line",
    "claude_magic.surfaces.history_view",
    "claude_magic.core.tokens",
)
# Modules the SDK itself imports on its first request, not on `import anthropic`: SDK 2.17 loads its
# tracing propagators then (and with them the installed packages' entry points). A module the installed
# SDK does not bring is skipped.
SDK_FIRST_REQUEST_MODULES = ("opentelemetry.propagate",)
# The SDK's types a streamed text answer is parsed into; a name the installed SDK lacks is skipped.
SDK_TYPES = (
    "RawMessageStartEvent", "RawContentBlockStartEvent", "RawContentBlockDeltaEvent", "RawContentBlockStopEvent",
    "RawMessageDeltaEvent", "RawMessageStopEvent", "Message", "Usage", "TextBlock", "ParsedMessage",
    "ParsedTextBlock",
)
THREAD_NAME = "claude-magic-warm-up"

_lock = threading.Lock()
_thread: threading.Thread | None = None


def start(settings: Any = None) -> None:
    """Begin importing MODULES in a daemon thread, then prepare the SDK's types and the client for
    `settings` (a `ClaudeMagic`, optional). Once per process; later calls do nothing."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _thread = threading.Thread(target=_warm_up, args=(settings,), name=THREAD_NAME, daemon=True)
        _thread.start()


def _warm_up(settings: Any) -> None:
    try:
        for name in MODULES:
            importlib.import_module(name)
        for name in SDK_FIRST_REQUEST_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        _build_validators()
        if settings is not None:
            _build_client(settings)
    except Exception:  # noqa: BLE001 - the cell that needs it does the same again and reports the failure there
        return


def _build_validators() -> None:
    from anthropic import types

    for name in SDK_TYPES:
        model = getattr(types, name, None)
        if model is not None:
            model.model_rebuild(force=True)  # pydantic's public way to build a deferred model's validator now


def _build_client(settings: Any) -> None:
    """The client the first answer will take from the cache (the same settings and environment make the same
    cache key); without an API key this raises the usual one line, which is the first cell's to show."""
    from claude_magic.core.client import get_client
    from claude_magic.core.engine import client_settings

    get_client(client_settings(settings))


def wait() -> None:
    """Block until the warm-up has finished (at once if none runs, or when called from the warm-up itself).
    A KeyboardInterrupt ends the wait; the warm-up goes on."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


__all__ = ["MODULES", "SDK_TYPES", "THREAD_NAME", "start", "wait"]
