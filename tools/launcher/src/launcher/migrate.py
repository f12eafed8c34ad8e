"""`make migrate`: apply every service's migrations to DATABASE_URL (the compose prestart, all at once)."""

from __future__ import annotations

import importlib
import os
import sys

from launcher.topology import SERVICES


def migrate_all(database_url: str) -> None:
    """Upgrade every service schema to head."""
    for spec in SERVICES:
        if spec.migrate_module:
            importlib.import_module(spec.migrate_module).upgrade(database_url)


def main() -> None:
    """Entry point."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set")
    migrate_all(url)


if __name__ == "__main__":
    main()
