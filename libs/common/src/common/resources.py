"""What every service's lifespan opens the same way (database, cache, bus, token checks) and their health.

A service's lifespan calls `open_resources` inside its AsyncExitStack, so everything is closed in reverse
order however the lifespan ends; its readiness route asks `infrastructure_checks` for the same pieces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.bus import Bus
from common.cache import Cache
from common.db import create_engine, create_session_factory
from common.runtime import acquire_bus, acquire_cache, release_bus, release_cache
from common.security import AuthState, RevocationList, TokenService
from common.web import HealthCheck


@dataclass
class Resources:
    """A service's open connections, as its routes and consumers use them."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    # Same pool without BEGIN/COMMIT: a read that is one SELECT needs no transaction.
    read_session_factory: async_sessionmaker[AsyncSession]
    cache: Cache
    bus: Bus | None
    auth: AuthState

    def install(self, state: Any) -> None:
        """Expose them on `app.state` under the names the kit's dependencies and checks read."""
        state.engine = self.engine
        state.session_factory = self.session_factory
        state.read_session_factory = self.read_session_factory
        state.cache = self.cache
        state.bus = self.bus
        state.auth = self.auth


async def open_resources(
    stack: AsyncExitStack,
    settings: Any,
    schemas: list[str],
    *,
    upgrade: Callable[[str], None] | None = None,
    bus: bool = False,
) -> Resources:
    """Migrate (when the settings ask for it), then open the database, cache and, if asked, the bus."""
    url = settings.database_url.get_secret_value()
    if upgrade is not None and settings.migrate_on_start:
        # Alembic runs its own event loop: keep it off ours.
        await asyncio.to_thread(upgrade, url)
    engine = create_engine(url, schemas=schemas, pool_size=settings.database_pool_size)
    stack.push_async_callback(engine.dispose)
    cache = await acquire_cache(settings.redis_url.get_secret_value(), settings.cache_namespace)
    stack.push_async_callback(release_cache, cache)
    opened: Bus | None = None
    if bus:
        opened = await acquire_bus(settings.rabbitmq_url.get_secret_value(), settings.bus_namespace)
        stack.push_async_callback(release_bus, opened)
    return Resources(
        engine=engine,
        session_factory=create_session_factory(engine),
        read_session_factory=create_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT")),
        cache=cache,
        bus=opened,
        auth=AuthState(TokenService.from_settings(settings), RevocationList(cache)),
    )


def infrastructure_checks(
    engine: AsyncEngine | None, cache: Cache | None, bus: Bus | None
) -> dict[str, HealthCheck]:
    """Readiness checks of the database, the cache and (when the service has one) the bus."""

    async def database() -> bool:
        if engine is None:
            return False
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def cache_alive() -> bool:
        return cache is not None and await cache.ping()

    checks: dict[str, HealthCheck] = {"database": database, "cache": cache_alive}
    if bus is not None:

        async def bus_alive() -> bool:
            return await bus.ping()

        checks["bus"] = bus_alive
    return checks
