"""Apply the auth schema's Alembic migrations: `upgrade(url)`, or `python -m auth.migrate`."""

from __future__ import annotations

import os
from pathlib import Path

from auth.settings import Settings
from common.migrations import upgrade_head

_HERE = Path(__file__).resolve().parent
# Where the scripts can be, most specific first: inside the installed package (a wheel built with
# services/auth/migrations force-included as auth/migrations, as the container image needs), then
# the source tree (services/auth/migrations, next to src/; editable installs and tests).
_CANDIDATES = (_HERE / "migrations", _HERE.parents[1] / "migrations")


def migrations_path() -> Path:
    """The migration scripts' directory: AUTH_MIGRATIONS_PATH, else the package, else the source tree."""
    override = os.environ.get("AUTH_MIGRATIONS_PATH")
    candidates = (Path(override),) if override else _CANDIDATES
    for path in candidates:
        if (path / "env.py").is_file():
            return path
    raise FileNotFoundError(
        f"auth migrations not found in {', '.join(map(str, candidates))} (set AUTH_MIGRATIONS_PATH)"
    )


def upgrade(url: str) -> None:
    """Bring the auth schema at `url` to the latest revision (blocking; runs its own event loop)."""
    upgrade_head(migrations_path(), url)


def main() -> None:
    """Migrate the database named by DATABASE_URL."""
    upgrade(Settings().database_url.get_secret_value())


if __name__ == "__main__":
    main()
