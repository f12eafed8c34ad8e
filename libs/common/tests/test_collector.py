"""The served process's start-up objects leave the collector's full passes once the lifespan has started, and full
passes become rarer."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Message

from common.collector import THRESHOLDS, FreezeAfterStartup


async def test_the_objects_of_startup_are_frozen_once_it_completes() -> None:
    built: list[object] = []
    frozen_during_startup: list[int] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        built.extend({"market": n} for n in range(1000))  # what a lifespan loads and keeps
        frozen_during_startup.append(gc.get_freeze_count())
        yield

    messages: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            sent.append(f"frozen {gc.get_freeze_count()}")

    defaults = gc.get_threshold()
    cpython = (700, 10, 10)  # CPython's own; another test in this process may have changed them
    gc.set_threshold(*cpython)
    gc.unfreeze()
    try:
        await FreezeAfterStartup(FastAPI(lifespan=lifespan))({"type": "lifespan"}, receive, send)
        assert frozen_during_startup == [0]
        assert sent[0] == "lifespan.startup.complete"
        assert int(sent[1].split()[1]) >= len(built)
        assert sent[2:] == ["lifespan.shutdown.complete"]
        # Full passes are rarer from then on (the default ran one every ~10 s under the API bench).
        assert gc.get_threshold() == THRESHOLDS
        assert THRESHOLDS[2] > cpython[2]
    finally:
        gc.unfreeze()
        gc.set_threshold(*defaults)
