"""Pytest fixtures for the harness.

Use from ``tests/conftest.py``::

    from harness.fixtures import *  # noqa: F401,F403

Fixtures: ``artifacts`` (per-test dir), ``kernel_factory``, ``jupyterlab_factory``, ``browser``
(session-scoped), ``lab_page`` (a fresh page; on failure a screenshot and the console log are saved into
``artifacts``). No hooks are needed: ``lab_page`` notices a failure through ``session.testsfailed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .kernel import KernelSession
from .lab import CHROMIUM, Browser, JupyterLab, artifacts_dir

__all__ = [
    "artifacts",
    "browser",
    "jupyterlab_factory",
    "kernel_factory",
    "lab_page",
]


def _test_artifacts_name(node: Any) -> str:
    module = Path(str(getattr(node, "path", getattr(node, "fspath", "")))).stem
    return f"{module}__{node.name}" if module else node.name


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``test-artifacts/<module>__<test name>/`` under the repo root, emptied and created for each test."""
    return artifacts_dir(_test_artifacts_name(request.node), clean=True)


@pytest.fixture
def kernel_factory() -> Iterator[Callable[..., KernelSession]]:
    """``make(env=None, cwd=None, startup_timeout=60, kernel_name="python3")`` -> a started KernelSession;
    all are shut down at teardown."""
    sessions: list[KernelSession] = []

    def make(**kwargs: Any) -> KernelSession:
        session = KernelSession(**kwargs)
        sessions.append(session)
        return session.start()

    yield make
    for session in reversed(sessions):
        session.shutdown(now=True)


@pytest.fixture
def jupyterlab_factory(artifacts: Path) -> Iterator[Callable[..., JupyterLab]]:
    """``make(root_dir=None, env=None, comm_subshells=None, ..., app=JupyterLab)`` -> a started JupyterLab
    (see :class:`JupyterLab`), or Notebook 7 with ``app=Notebook7``; its log goes to the test's artifacts
    dir. All are stopped at teardown."""
    labs: list[JupyterLab] = []

    def make(app: type[JupyterLab] = JupyterLab, **kwargs: Any) -> JupyterLab:
        kwargs.setdefault("log_dir", artifacts)
        lab = app(**kwargs)
        labs.append(lab)
        return lab.start()

    yield make
    for lab in reversed(labs):
        lab.stop()


def chromium_missing_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:  # pragma: no cover - playwright is a test dependency
        return f"playwright is not importable: {exc}"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test file. Without /usr/bin/chromium the test is skipped, except under
    CI (env CI set), where that is a failure. Not one per session: Playwright's sync API marks an asyncio
    loop as running on the main thread while it is started, so a later file's `asyncio.run` (ask_async,
    cassettes) would fail in the same worker process."""
    reason = chromium_missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    with Browser(headless=True) as b:
        yield b


@pytest.fixture
def lab_page(browser: Browser, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new Playwright page (own context). If the test fails, ``failure.png`` and ``console.log`` are
    written to the test's artifacts dir."""
    failed_before = request.session.testsfailed
    page = browser.new_page()
    yield page
    try:
        # The call phase's report is logged (and counted) before this fixture's teardown runs.
        if request.session.testsfailed > failed_before:
            page.screenshot(path=str(artifacts / "failure.png"), full_page=True)
            (artifacts / "console.log").write_text("\n".join(getattr(page, "harness_console", [])) + "\n")
    finally:
        page.context.close()
