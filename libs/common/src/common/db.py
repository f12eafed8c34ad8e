"""Async SQLAlchemy engine and sessions for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from common import tracing

# Stable constraint names so Alembic migrations are reproducible on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_base(schema: str) -> type[DeclarativeBase]:
    """A declarative base whose tables live in one service's schema."""

    class Base(DeclarativeBase):
        metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)

    return Base


def is_sqlite(url: str) -> bool:
    """True for a SQLite URL (the embedded mode)."""
    return make_url(url).get_backend_name() == "sqlite"


def schema_translate_map(url: str, schemas: Sequence[str]) -> dict[str | None, str | None]:
    """SQLite has no schemas: every service schema maps to the one main database there."""
    return {s: None for s in schemas} if is_sqlite(url) else {}


def create_engine(
    url: str,
    *,
    schemas: Sequence[str] = (),
    pool_size: int = 10,
    pre_ping: bool = False,
    echo: bool = False,
    server_settings: Mapping[str, str] | None = None,
    json_deserializer: Callable[[str], Any] | None = None,
) -> AsyncEngine:
    """An async engine; on SQLite with WAL, foreign keys on and a busy timeout (one writer at a time).

    No pre-ping by default: it costs three round trips per checkout with asyncpg, and a connection that
    died with the server fails one request (503) and invalidates the pool anyway. Errors never quote the
    statement's parameters (`hide_parameters`): they can be keys, ciphertext or a user's input, and error
    messages end up in logs.
    """
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if json_deserializer is not None:
        # JSON columns read with this instead of json.loads (the engine reads every bot's state at takeover).
        kwargs["json_deserializer"] = json_deserializer
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # Every connection is kept once opened (no overflow): an overflow connection is closed as soon as it
        # is returned to a pool holding `pool_size` idle ones, so a load swinging around that size opened new
        # ones all the time, each a forked PostgreSQL backend and asyncpg's type introspection (~50 a second
        # at 700 requests/s offered, 0.4 of a core in backends that lived for one burst).
        kwargs.update(pool_size=pool_size, max_overflow=0, pool_pre_ping=pre_ping, pool_recycle=1800)
        if server_settings:
            kwargs["connect_args"] = {"server_settings": dict(server_settings)}
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    tracing.instrument_engine(engine)  # a span per statement, while tracing is on
    translate = schema_translate_map(url, schemas)
    if translate:
        engine = engine.execution_options(schema_translate_map=translate)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (responses are built after it)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session per request or message: commit at the end, roll back on any error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
