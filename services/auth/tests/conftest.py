"""Auth test fixtures: the app on real PostgreSQL + Redis and on SQLite + the in-memory cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from auth.main import create_app
from auth.migrate import upgrade
from auth.settings import Settings
from auth.testing import PASSWORD, Account, Backend, make_settings
from common.testing.service import backend_fixtures

migrated_postgres, migrated_sqlite, backend = backend_fixtures(upgrade, "auth")


@pytest.fixture
def settings(backend: Backend, namespace: str) -> Settings:
    """Settings of the app under test."""
    return make_settings(backend, namespace)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The auth app with its lifespan running."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://auth") as c:
        yield c


@pytest.fixture
def register(client: httpx.AsyncClient, namespace: str) -> Callable[..., Awaitable[Account]]:
    """Register a fresh user (unique email per call) and return its tokens."""
    counter = iter(range(1_000_000))

    async def _register(
        email: str | None = None, password: str = PASSWORD, name: str | None = "홍길동"
    ) -> Account:
        email = email or f"user{next(counter)}-{namespace}@example.com"
        body: dict[str, Any] = {"email": email, "password": password}
        if name is not None:
            body["name"] = name
        response = await client.post("/api/auth/register", json=body)
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        return Account(data["userId"], data["email"], password, data["token"], data["refreshToken"])

    return _register
