"""Test harness for claude_magic: a real IPython kernel (``kernel``) and JupyterLab + Chromium (``lab``).

Pytest fixtures live in :mod:`.fixtures`; load them from ``tests/conftest.py`` with
``from harness.fixtures import *  # noqa: F401,F403`` (``tests/`` is on ``sys.path`` under pytest's default
import mode), or ``pytest_plugins = ["harness.fixtures"]``.
"""

from .kernel import ExecutionResult, KernelSession, reconstruct_outputs, strip_ansi
from .lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Browser,
    JupyterLab,
    LabNotebook,
    artifacts_dir,
    repo_root,
    write_notebook,
)

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "Browser",
    "ExecutionResult",
    "JupyterLab",
    "KernelSession",
    "LabNotebook",
    "artifacts_dir",
    "reconstruct_outputs",
    "repo_root",
    "strip_ansi",
    "write_notebook",
]
