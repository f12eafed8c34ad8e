"""Crash tests' parking points (TEST_PARK_AT): an order reaching the point notes itself and waits to be killed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from engine.settings import Settings

log = logging.getLogger(__name__)

Fault = Callable[[str, str], Awaitable[None]]


def park_hook(settings: Settings) -> Fault | None:
    """TEST_PARK_AT's hook: at its point an order notes itself in TEST_PARK_FILE and never goes on."""
    point, path = settings.test_park_at, settings.test_park_file
    if point is None or path is None:
        return None

    async def park(where: str, cid: str) -> None:
        if where != point:
            return
        with path.open("a", encoding="utf-8") as note:
            note.write(f"{where} {cid}\n")
        log.warning("order %s parked at %s (TEST_PARK_AT): waiting to be killed", cid, where)
        await asyncio.Event().wait()

    return park
