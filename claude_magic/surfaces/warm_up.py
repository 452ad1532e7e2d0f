"""Load the SDK and the answer path in a background thread right after `%load_ext claude_magic`.

`import anthropic` is most of what a first answer would otherwise wait for (its types alone take a second
or two on a busy machine), and ten times what loading the extension itself costs. So `%load_ext` imports
only the magic, its settings and the history, starts this warm-up and returns; by the time the first
question is typed the SDK, the engine and the renderers are loaded, and the first answer in a fresh kernel
starts as soon as one in a warm kernel does.

Every surface calls `wait()` before it imports what the warm-up imports: a thread that imports a module
another thread is importing blocks on that module's import lock until it is done, which is what we want,
but two threads importing the same set of modules in different orders can deadlock on those locks, so the
main thread never imports them while the warm-up runs. `wait()` returns at once when no warm-up runs.
"""

from __future__ import annotations

import importlib
import threading

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
THREAD_NAME = "claude-magic-warm-up"

_lock = threading.Lock()
_thread: threading.Thread | None = None


def start() -> None:
    """Begin importing MODULES in a daemon thread (once per process; later calls do nothing)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _thread = threading.Thread(target=_import_all, name=THREAD_NAME, daemon=True)
        _thread.start()


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the surface's own import raises it again, with its traceback, in its cell
            return


def wait() -> None:
    """Block until the warm-up has finished (at once if none runs, or when called from the warm-up itself).
    A KeyboardInterrupt ends the wait; the warm-up goes on."""
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


__all__ = ["MODULES", "THREAD_NAME", "start", "wait"]
