"""Opening a tutorial in JupyterLab and saving it changes nothing: the notebooks are stored the way
JupyterLab writes them (its kernelspec display name, its language_info, its JSON layout), so trying
the demo leaves the repository clean (`git status` shows no modified tutorial after a session).

Each tutorial is copied into a JupyterLab root, opened (its kernel started: that is when JupyterLab
rewrites the kernelspec and language_info metadata), saved with JupyterLab's own Save command, and
compared byte for byte with the repository's file.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.lab import JupyterLab, LabNotebook, artifacts_dir, repo_root

pytestmark = pytest.mark.browser

TUTORIALS = sorted((repo_root() / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    root = tmp_path_factory.mktemp("tutorials")
    for notebook in TUTORIALS:
        shutil.copy(notebook, root / notebook.name)
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("CLAUDE_MAGIC_", "ANTHROPIC_")):
                patch.delenv(name)
        server = JupyterLab(root_dir=root, log_dir=artifacts_dir("test_notebooks_saved_browser__lab")).start()
    yield server
    server.stop()


def _metadata_diff(saved: dict[str, Any], stored: dict[str, Any]) -> str:
    return "\n".join(difflib.unified_diff(
        json.dumps(stored["metadata"], indent=1, sort_keys=True).splitlines(),
        json.dumps(saved["metadata"], indent=1, sort_keys=True).splitlines(), "repository", "saved by JupyterLab",
        lineterm=""))


def test_opening_and_saving_a_tutorial_in_jupyterlab_changes_nothing(lab: JupyterLab, lab_page: Any,
                                                                     artifacts: Path) -> None:
    assert len(TUTORIALS) >= 9
    nb = LabNotebook(lab_page)
    changed = {}
    for index, tutorial in enumerate(TUTORIALS):
        nb.open(lab, tutorial.name, timeout=120, reload=index == 0)
        # JupyterLab writes the kernel's language_info and the kernelspec's display name into the model
        # once the kernel is ready; the save below writes the model exactly as JupyterLab holds it.
        lab_page.wait_for_function(
            "() => !!window.jupyterapp.shell.currentWidget.model.getMetadata('language_info')", timeout=60_000)
        dirty = nb.eval_app("app.shell.currentWidget.context.model.dirty")
        lab_page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        lab_page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                                   timeout=30_000)
        saved_bytes = (lab.root_dir / tutorial.name).read_bytes()
        stored_bytes = tutorial.read_bytes()
        if saved_bytes != stored_bytes or dirty:
            saved, stored = json.loads(saved_bytes), json.loads(stored_bytes)
            (artifacts / tutorial.name).write_bytes(saved_bytes)
            changed[tutorial.name] = (f"dirty on open: {dirty}; same JSON: {saved == stored}\n"
                                      f"{_metadata_diff(saved, stored)}")
    nb.screenshot(artifacts / "last-tutorial.png", full_page=False)
    assert not changed, "JupyterLab rewrote these tutorials:\n" + "\n\n".join(
        f"{name}: {diff}" for name, diff in changed.items())
