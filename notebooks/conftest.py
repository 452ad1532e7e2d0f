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


# Tutorials that need an optional extra: skipped where it is not installed (the lower-bounds pass leaves the mcp
# extra out, .ci/oldest.txt says why), run everywhere else.
NEEDS = {"12_mcp_servers.ipynb": "mcp"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import importlib.util

    for item in items:
        module = NEEDS.get(item.path.name)
        if module is not None and importlib.util.find_spec(module) is None:
            item.add_marker(pytest.mark.skip(reason=f'needs the {module} extra: pip install "claude_magic[{module}]"'))
