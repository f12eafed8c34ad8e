"""The kit's engines: a failing statement's message never carries the values it was given, and the pool
keeps the connections it opened."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc, text

from common.db import create_engine

SECRET = "sk-live-do-not-log-0123456789"


async def test_database_errors_do_not_quote_statement_parameters(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TEMPORARY TABLE t (v VARCHAR(8))"))
            with pytest.raises(exc.DBAPIError) as info:
                await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": SECRET})
    finally:
        await engine.dispose()
    message = str(info.value)
    assert "INSERT INTO t" in message  # the statement is still there to debug with
    assert SECRET not in message


async def test_the_pool_keeps_its_connections_through_bursts(postgres_url: str) -> None:
    # Bursts past the pool's size wait for a pooled connection; an overflow connection closed on return
    # would have the next burst fork new backends (a new session each time, ~50 a second past capacity).
    engine = create_engine(postgres_url, pool_size=2)
    backends: set[int] = set()

    async def session() -> None:
        async with engine.connect() as conn:
            backends.add(int(await conn.scalar(text("SELECT pg_backend_pid()"))))

    try:
        for _ in range(3):
            await asyncio.gather(*(session() for _ in range(6)))
    finally:
        await engine.dispose()
    assert len(backends) == 2
