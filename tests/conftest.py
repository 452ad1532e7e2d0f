"""Shared fixtures: a clean environment, the emulator, and a kernel with the extension loaded."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.fixtures import *  # noqa: F401,F403
from harness.kernel import KernelSession
from support import FAKE_API_KEY

from claude_magic.core.history import STORE
from claude_magic.emulator import Emulator


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's key or the notebook runs' CLAUDE_MAGIC_* settings; conversations are
    saved in a folder of the test's own (this process and the kernels it starts inherit the variable), and
    none is left in this process."""
    for name in list(os.environ):
        if name.startswith("CLAUDE_MAGIC_") or name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                                                         "ANTHROPIC_BASE_URL", "JPY_SESSION_NAME"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLAUDE_MAGIC_HISTORY_DIR", str(tmp_path_factory.mktemp("history")))
    # Nor the conversations an earlier test left in this process: tests calling ask() without the shell
    # fixture keep theirs, and the next file on the same worker would read them as its own history.
    for conversation in STORE.conversations():
        conversation.reset()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator answering as fast as it can (tests set pace and script as they need)."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def api_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the real SDK (in this process and in kernels started later) at the emulator."""
    env = {"ANTHROPIC_BASE_URL": emulator.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def magic_kernel(kernel_factory: Callable[..., KernelSession], api_env: dict[str, str]) -> KernelSession:
    """A real kernel talking to the emulator, with `%load_ext claude_magic` done."""
    kernel = kernel_factory(env=api_env)
    kernel.execute("%load_ext claude_magic")
    return kernel


@pytest.fixture
def shell(api_env: dict[str, str]) -> Iterator[Any]:
    """An in-process InteractiveShell with the extension loaded; errors raise like in jupysql's tests."""
    from IPython.core.interactiveshell import InteractiveShell

    from claude_magic.core import client as _client

    shell = InteractiveShell.instance(history_length=0)
    shell.run_line_magic("load_ext", "claude_magic")
    yield shell
    _client.reset_clients()  # (its conversations are reset when the next test starts: clean_environment)
    InteractiveShell.clear_instance()
