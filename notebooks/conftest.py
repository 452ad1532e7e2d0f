"""nbval runs the tutorials offline: the kernel it starts inherits this environment.

Final-only display: nbval records a cell's outputs as first sent and ignores display updates, so
the live mode would be compared by its first frame. Final mode sends the finished answer once,
exactly what a saved notebook holds after a live run.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CLAUDE_MAGIC_OFFLINE"] = "1"
    os.environ["CLAUDE_MAGIC_DISPLAY"] = "final"
    os.environ["CLAUDE_MAGIC_EMULATOR_TPS"] = "0"
