"""Gateway test fixtures: upstream stand-ins, tokens, Redis-backed settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from common.cache import Cache, create_cache
from gateway.settings import Settings
from gateway.testing import Tokens, Upstream


@pytest.fixture
def auth_up() -> Upstream:
    """The auth service stand-in."""
    return Upstream("auth")


@pytest.fixture
def bots_up() -> Upstream:
    """The bots service stand-in."""
    return Upstream("bots")


@pytest.fixture
def redis_overrides(redis_url: str, namespace: str) -> dict[str, Any]:
    """Settings that put the rate limits and the revocation list on the real Redis, isolated."""
    return {"redis_url": redis_url, "cache_namespace": namespace}


@pytest.fixture
async def redis_cache(redis_url: str, namespace: str) -> AsyncIterator[Cache]:
    """The namespaced Redis cache the gateway reads revocations from."""
    cache = create_cache(redis_url, namespace)
    try:
        yield cache
    finally:
        await cache.close()


@pytest.fixture
def tokens() -> Tokens:
    """Tokens valid for the default (development) JWT settings that tests use."""
    return Tokens(Settings(environment="test"))
