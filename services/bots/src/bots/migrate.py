"""Apply the bots schema's Alembic migrations: `upgrade(url)`, or `python -m bots.migrate`."""

from __future__ import annotations

import os
from pathlib import Path

from bots.settings import Settings
from common.migrations import upgrade_head

_HERE = Path(__file__).resolve().parent
# Where the scripts can be, most specific first: inside the installed package (a wheel built with
# services/bots/migrations force-included as bots/migrations, as the container image needs), then
# the source tree (services/bots/migrations, next to src/; editable installs and tests).
_CANDIDATES = (_HERE / "migrations", _HERE.parents[1] / "migrations")


def migrations_path() -> Path:
    """The migration scripts' directory: BOTS_MIGRATIONS_PATH, else the package, else the source tree."""
    override = os.environ.get("BOTS_MIGRATIONS_PATH")
    candidates = (Path(override),) if override else _CANDIDATES
    for path in candidates:
        if (path / "env.py").is_file():
            return path
    raise FileNotFoundError(
        f"bots migrations not found in {', '.join(map(str, candidates))} (set BOTS_MIGRATIONS_PATH)"
    )


def upgrade(url: str) -> None:
    """Bring the bots schema at `url` to the latest revision (blocking; runs its own event loop)."""
    upgrade_head(migrations_path(), url)


def main() -> None:
    """Migrate the database named by DATABASE_URL."""
    upgrade(Settings().database_url.get_secret_value())


if __name__ == "__main__":
    main()
