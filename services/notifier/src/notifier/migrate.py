"""Apply the notifier schema's Alembic migrations: `upgrade(url)`, or `python -m notifier.migrate`."""

from __future__ import annotations

from common.migrations import migrate_main, migrations_path, upgrade_head


def upgrade(url: str) -> None:
    """Bring the notifier schema at `url` to the latest revision (blocking; runs its own event loop)."""
    upgrade_head(migrations_path("notifier", __file__), url)


if __name__ == "__main__":
    # Only DATABASE_URL: migrating needs no other secret, so the migration job is given none.
    migrate_main("notifier", __file__)
