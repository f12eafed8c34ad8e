"""Where the shared material lives (API.md, data/, wire/): `<repo>/../shared`, or GRIDBOT_SHARED_DIR.

The one place that knows it: tests, the benchmarks, the simulator's default candle file and compose all ask
here, so a checkout anywhere finds the folder beside it. No pytest import at module level: the simulator
uses `shared_dir` at run time, where pytest is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DIR_ENV = "GRIDBOT_SHARED_DIR"
_WORKSPACE_MARKER = "[tool.uv.workspace]"


def _workspace_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` whose pyproject.toml declares the uv workspace."""
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        try:
            if _WORKSPACE_MARKER in pyproject.read_text(encoding="utf-8"):
                return folder
        except OSError:
            continue
    return None


def repo_root() -> Path | None:
    """The checkout this code runs from (found from this file, else from the working directory)."""
    return _workspace_root(Path(__file__).resolve().parent) or _workspace_root(Path.cwd().resolve())


def shared_dir() -> Path:
    """GRIDBOT_SHARED_DIR if set, else `shared` beside the checkout (`../shared` of the working directory
    when no checkout is found, as in an installed image); it may not exist."""
    override = os.environ.get(SHARED_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    root = repo_root()
    base = root.parent if root is not None else Path.cwd().resolve().parent
    return base / "shared"


def shared_file(*parts: str) -> Path:
    """A file of the shared folder; when it is missing the test fails under CI=true and is skipped elsewhere."""
    path = shared_dir().joinpath(*parts)
    if not path.is_file():
        from common.testing.infra import unavailable  # pytest: test runs only

        unavailable(
            f"{path} is missing (the shared folder sits beside the checkout, or set {SHARED_DIR_ENV})"
        )
    return path
