"""Print the installed distributions whose version differs from the lock's, as `name lock→installed`, on one
line (nothing when the environment is the lock's). Run with the environment's python:
    python .ci/lock_diff.py .ci/requirements.lock [--frontend]
--frontend: only what the browser tests exercise beyond the kernel (the server, the frontends, the widgets'
front-end side, the browser driver).
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

FRONTEND = {
    "jupyterlab", "jupyterlab-server", "jupyter-server", "notebook", "notebook-shim", "ipywidgets",
    "jupyterlab-widgets", "widgetsnbextension", "playwright",
}
NOT_LOCKED = {"claude-magic", "pip", "setuptools", "wheel"}  # the project itself, and the venv's own tools


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    lock_text = Path(sys.argv[1]).read_text()
    locked = {normalized(name): version for name, version in re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", lock_text, re.M)}
    installed = {normalized(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()}
    names = sorted((set(installed) | set(locked)) - NOT_LOCKED)
    if "--frontend" in sys.argv:
        names = [name for name in names if name in FRONTEND]
    changed = [f"{name} {locked.get(name, '-')}→{installed.get(name, '-')}" for name in names
               if locked.get(name) != installed.get(name)]
    print(", ".join(changed))


if __name__ == "__main__":
    main()
