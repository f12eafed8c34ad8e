"""The kit's engines: a failing statement's message never carries the values it was given."""

from __future__ import annotations

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
