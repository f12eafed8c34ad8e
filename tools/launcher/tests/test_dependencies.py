"""The launcher's pyproject.toml declares every package its code imports, workspace packages included: an
import that works only because another package happens to pull its distribution in breaks when that one
stops needing it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
WORKSPACE = PACKAGE.parents[1]


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: Path) -> set[str]:
    """The distributions a pyproject.toml depends on (names only)."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return {normalized(re.split(r"[\s<>=!~;\[]", dependency, maxsplit=1)[0]) for dependency in dependencies}


def workspace_modules() -> dict[str, str]:
    """Top-level module -> distribution, for every workspace member (editable installs do not say)."""
    members = tomllib.loads((WORKSPACE / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    modules: dict[str, str] = {}
    for pattern in members:
        for pyproject in WORKSPACE.glob(f"{pattern}/pyproject.toml"):
            name = normalized(tomllib.loads(pyproject.read_text())["project"]["name"])
            modules.update(
                {path.name: name for path in (pyproject.parent / "src").iterdir() if path.is_dir()}
            )
    return modules


def imported_modules(source: Path) -> set[str]:
    """The top-level modules every file under `source` imports (absolute imports, anywhere in the file)."""
    modules: set[str] = set()
    for path in source.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def test_every_imported_package_is_declared() -> None:
    source = PACKAGE / "src"
    own = {path.name for path in source.iterdir() if path.is_dir()}
    third_party = packages_distributions()
    ours = workspace_modules()
    wanted = declared(PACKAGE / "pyproject.toml")
    modules = imported_modules(source) - own - set(sys.stdlib_module_names) - {"__future__"}
    assert {"auth", "engine", "uvicorn"} <= modules  # the parse sees imports inside functions too
    undeclared = {}
    for module in sorted(modules):
        distributions = (
            {ours[module]} if module in ours else {normalized(d) for d in third_party.get(module, [])}
        )
        assert distributions, f"{module}: no installed distribution provides it"
        if not distributions & wanted:
            undeclared[module] = sorted(distributions)
    assert not undeclared, f"tools/launcher/pyproject.toml does not declare: {undeclared}"
