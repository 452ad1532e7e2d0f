"""The demo's environment runs every tutorial it opens: each package a notebook imports is declared in the
extra `.ci/demo` installs (or in the package's own dependencies)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

# tomllib is in the standard library from Python 3.11; on 3.10 the check runs on the newer interpreters of CI.
tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def demo_packages() -> set[str]:
    """The distributions the demo's `.ci/setup EXTRAS` installs: the dependencies plus those extras, expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    installed = re.search(r"\.ci/setup (?:--\S+ )*([^-\s]\S*)", (ROOT / ".ci" / "demo").read_text())
    assert installed is not None, ".ci/demo must install through .ci/setup"
    packages = {_requirement_name(requirement) for requirement in project["dependencies"]}
    pending = installed[1].split(",")
    while pending:
        for requirement in extras[pending.pop()]:
            self_extras = re.fullmatch(r"claude[-_]magic\[(.+)\]", requirement)
            if self_extras:
                pending += self_extras[1].split(",")
            else:
                packages.add(_requirement_name(requirement))
    return packages


def notebook_imports(path: Path) -> set[str]:
    """Top-level modules a notebook's code cells import (IPython syntax turned into Python first)."""
    transformer = TransformerManager()
    modules = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(transformer.transform_cell(cell.source))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"claude_magic"}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_every_tutorial_import_is_installed_by_the_demo(notebook: Path) -> None:
    module_to_package = {module: package.lower().replace("_", "-") for package, module in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["tool"]["deptry"]["package_module_name_map"].items()}
    imported = notebook_imports(notebook)
    unknown = imported - set(module_to_package)
    assert not unknown, f"{notebook.name} imports {unknown}: declare them (and their module names for deptry)"
    missing = {module_to_package[module] for module in imported} - demo_packages()
    assert not missing, f"{notebook.name} imports {sorted(missing)}, which `bash .ci/demo` does not install"


def test_the_tutorials_import_something_outside_the_standard_library() -> None:
    # Guards the check above against parsing nothing: 07 plots and tabulates.
    assert {"matplotlib", "pandas"} <= notebook_imports(ROOT / "notebooks" / "07_context.ipynb")
