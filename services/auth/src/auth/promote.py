"""`python -m auth.promote EMAIL…` (`make admin EMAIL=…`): make registered users administrators.

Reads only DATABASE_URL (the database of `make run` when unset: var/gridbot.db). The new role reaches the
user's tokens at their next login or refresh.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from auth.admin import promote_admins
from auth.models import SCHEMA
from auth.repository import UserRepository
from common.db import create_engine, create_session_factory

EMBEDDED_DATABASE = Path("var/gridbot.db")


async def promote(url: str, emails: list[str]) -> int:
    """Promote each email's user; 1 when one of them is not registered."""
    engine = create_engine(url, schemas=[SCHEMA])
    try:
        sessions = create_session_factory(engine)
        await promote_admins(sessions, emails)
        missing = []
        async with sessions() as session:
            users = UserRepository(session)
            for email in emails:
                if await users.by_email(email) is None:
                    missing.append(email)
        for email in emails:
            sys.stdout.write(f"{email}: {'not registered' if email in missing else 'administrator'}\n")
        return 1 if missing else 0
    finally:
        await engine.dispose()


def main() -> None:
    """Entry point."""
    emails = [arg.strip().lower() for arg in sys.argv[1:] if arg.strip()]
    if not emails:
        sys.exit("usage: python -m auth.promote EMAIL [EMAIL …]  (make admin EMAIL=…)")
    url = os.environ.get("DATABASE_URL") or f"sqlite+aiosqlite:///{EMBEDDED_DATABASE.resolve()}"
    sys.exit(asyncio.run(promote(url, emails)))


if __name__ == "__main__":
    main()
