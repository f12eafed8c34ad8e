"""Crash tests' parking points (TEST_PARK_AT): work reaching the named point notes itself and waits to be killed.

A crash test sets TEST_PARK_AT (one of the service's points) and TEST_PARK_FILE, waits for the note, then
SIGKILLs the real process at that very moment and checks what its successor makes of it. Refused outside
ENVIRONMENT=test, so no deployment can park.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self

from pydantic import model_validator

from common.settings import Environment, ServiceSettings

log = logging.getLogger(__name__)

Fault = Callable[[str, str], Awaitable[None]]
"""`await fault(point, subject)` at each parking point (`subject`: what reached it, for the note)."""


class ParkSettings(ServiceSettings):
    """TEST_PARK_AT / TEST_PARK_FILE (a service narrows `test_park_at` to its own points)."""

    test_park_at: str | None = None
    test_park_file: Path | None = None

    @model_validator(mode="after")
    def _parking_is_for_tests(self) -> Self:
        if self.test_park_at is not None and (
            self.environment is not Environment.TEST or self.test_park_file is None
        ):
            raise ValueError("TEST_PARK_AT needs ENVIRONMENT=test and TEST_PARK_FILE")
        return self


def park_hook(settings: ParkSettings) -> Fault | None:
    """TEST_PARK_AT's hook: at its point the subject notes itself in TEST_PARK_FILE and never goes on."""
    point, path = settings.test_park_at, settings.test_park_file
    if point is None or path is None:
        return None

    async def park(where: str, subject: str) -> None:
        if where != point:
            return
        with path.open("a", encoding="utf-8") as note:
            note.write(f"{where} {subject}\n")
        log.warning("%s parked at %s (TEST_PARK_AT): waiting to be killed", subject, where)
        await asyncio.Event().wait()

    return park
