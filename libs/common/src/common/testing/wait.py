"""Deadline-bounded waiting for tests: poll a condition instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Predicate = Callable[[], bool | Awaitable[bool]]


# A deadline is this helper's whole point, hence the `timeout` parameter ASYNC109 warns about.
async def eventually(
    predicate: Predicate,
    timeout: float = 5.0,  # noqa: ASYNC109
    interval: float = 0.01,
    message: str = "",
) -> None:
    """Return as soon as `predicate()` is true; fail with AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
