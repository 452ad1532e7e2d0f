"""`%load_ext claude_magic` is quick: it imports neither the SDK nor the renderers itself, and a background
warm-up has them loaded before the first answer needs them, so no answer waits for an import in its cell.

Each test runs a fresh Python process (an import is visible once per process), with an import hook that
records which thread imported each watched module first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from support import FAKE_API_KEY

from claude_magic.emulator import Emulator
from claude_magic.surfaces.warm_up import THREAD_NAME

# The SDK, its HTTP library, and what the answer path renders with: what made `%load_ext` slow.
WATCHED = ("anthropic", "httpx2", "markdown_it", "nh3", "claude_magic.core.engine")

PROBE = """
import importlib.abc, json, sys, threading

WATCHED = {watched!r}
importers = {{}}


class RecordImporter(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED:
            importers.setdefault(name, threading.current_thread().name)
        return None  # the normal finders do the import


sys.meta_path.insert(0, RecordImporter())
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance(history_length=0)
shell.run_line_magic("load_ext", "claude_magic")
loaded_at_return = sorted(name for name in WATCHED if name in sys.modules and importers.get(name) == "MainThread")
{then}
print("PROBE", json.dumps({{"importers": importers, "main_thread_at_return": loaded_at_return}}))
"""

ASK_AT_ONCE = """
result = shell.run_cell("%%claude\\nWhat is a warm-up?")
assert result.success, result
"""

WAIT_FOR_WARM_UP = """
from claude_magic.surfaces import warm_up

warm_up.wait()
"""


def probe(then: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    code = PROBE.format(watched=WATCHED, then=then)
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                               env={**os.environ, **(env or {})})
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE ")), completed.stdout


def test_load_ext_leaves_the_sdk_and_the_renderers_to_the_warm_up() -> None:
    seen, _ = probe(WAIT_FOR_WARM_UP)
    assert seen["main_thread_at_return"] == []
    # After the warm-up every watched module is loaded, and it was the warm-up that loaded it.
    assert seen["importers"] == {name: THREAD_NAME for name in WATCHED}


def test_a_question_asked_at_once_waits_for_the_warm_up_and_is_answered(emulator: Emulator) -> None:
    """The first cell may run while the warm-up still imports: it waits for it (never importing the same
    modules from a second thread at once) and answers."""
    emulator.set_script({"turns": [{"content": "Loading ahead of need."}]})
    env = {"ANTHROPIC_BASE_URL": emulator.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY,
           "CLAUDE_MAGIC_DISPLAY": "terminal"}
    seen, stdout = probe(ASK_AT_ONCE, env)
    assert "Loading ahead of need." in stdout
    assert len(emulator.requests) == 1
    assert seen["importers"] == {name: THREAD_NAME for name in WATCHED}
