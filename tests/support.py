"""Constants shared by test modules (imported as `support`; conftest modules are not importable by name
when pytest collects several directories that each have one)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

FAKE_API_KEY = "sk-ant-test-0123456789abcdef"


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` on a thread of its own.

    The session's Playwright browser (sync API) leaves its event loop registered as the main thread's
    running loop, so a plain `asyncio.run` in a test that runs after a browser test refuses to start.
    """
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=run, name="test-asyncio-run")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


_THINKING_FOLD = re.compile(r"\A(?:\[thinking\]\n.*?\n\[/thinking\]\n)+", re.S)


def after_thinking(plain: str) -> str:
    """A text/plain answer without the thinking it starts with: the default model thinks first (a
    `[thinking] … [/thinking]` fold, empty when its display is "omitted"); tests that are about the
    answer's text read what follows."""
    return _THINKING_FOLD.sub("", plain, count=1)


def text_blocks(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text blocks of a stored or sent answer (the thinking blocks before them left out)."""
    return [block for block in content if block.get("type") == "text"]


def largest_block(markup: str) -> int:
    """The length of the largest top-level block (paragraph, list, heading, code, table) in rendered HTML."""
    blocks = re.finditer(r"<(p|pre|ul|ol|h[1-6]|blockquote|table)\b.*?</\1>", markup, flags=re.S)
    return max(len(block.group(0)) for block in blocks)
