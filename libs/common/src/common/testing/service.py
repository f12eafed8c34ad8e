"""Test support shared by the services' own suites: backends, users, error envelopes, bus sinks.

A service's conftest builds its fixtures from these pieces, so every service is tested the same way: its
API on PostgreSQL + Redis + RabbitMQ and again on SQLite + the in-process cache and bus.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.bus import Envelope

MEMORY = "memory://"


@dataclass(frozen=True)
class Backend:
    """Where an app under test keeps its data and sends its messages."""

    name: str
    database_url: str
    cache_url: str
    bus_url: str = MEMORY

    def values(self, namespace: str) -> dict[str, Any]:
        """The settings every service takes from its backend, isolated by the test's namespace."""
        return {
            "environment": "test",
            "log_json": False,
            "database_url": self.database_url,
            "database_pool_size": 10,
            "redis_url": self.cache_url,
            "cache_namespace": namespace,
            "rabbitmq_url": self.bus_url,
            "bus_namespace": namespace,
        }


@dataclass(frozen=True)
class User:
    """A user of the app under test (an access token signed with the test JWT secret)."""

    user_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of this user."""
        return {"Authorization": f"Bearer {self.token}"}


def user_factory(settings: Any) -> Callable[..., User]:
    """Makes fresh users (`role="admin"` for an administrator) with access tokens an app built from these
    settings accepts."""
    from common.security import TokenService, TokenType

    tokens = TokenService.from_settings(settings)

    def new(role: str = "user") -> User:
        user_id = str(uuid.uuid4())
        issued = tokens.issue(
            TokenType.ACCESS, user_id=user_id, email=f"{user_id[:8]}@example.com", role=role
        )
        return User(user_id, issued.token)

    return new


def exact_json(response: httpx.Response) -> Any:
    """The body with every JSON number with a fraction as the exact Decimal it was written as (never a float)."""
    return json.loads(response.text, parse_float=Decimal)


def error_code(response: httpx.Response) -> str:
    """The `error.code` of an error envelope (asserting it is one)."""
    body = response.json()
    assert body["success"] is False, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    code: str = body["error"]["code"]
    return code


class EnvelopeSink:
    """A bus consumer keeping every envelope it receives, in arrival order."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler."""
        self.received.append(envelope)

    def of(self, routing_key: str, **payload: Any) -> list[Envelope]:
        """Received envelopes with this routing key whose payload has these values."""
        return [
            e
            for e in self.received
            if e.type == routing_key and all(e.payload.get(k) == v for k, v in payload.items())
        ]


def backend_fixtures(upgrade: Callable[[str], None], service: str) -> tuple[Any, Any, Any]:
    """`migrated_postgres`, `migrated_sqlite` and the parametrised `backend` fixtures of one service.

    In the service's conftest: `migrated_postgres, migrated_sqlite, backend = backend_fixtures(upgrade, "x")`.
    """

    @pytest.fixture(scope="session", name="migrated_postgres")
    def migrated_postgres(postgres_url: str) -> str:
        """The test process's PostgreSQL database with the service's migrations applied (once)."""
        upgrade(postgres_url)
        return postgres_url

    @pytest.fixture(scope="session", name="migrated_sqlite")
    def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
        """A SQLite file with the service's migrations applied (once)."""
        path: Path = tmp_path_factory.mktemp(f"{service}-sqlite") / f"{service}.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade(url)
        return url

    @pytest.fixture(params=["postgres", "sqlite"], name="backend")
    def backend(request: pytest.FixtureRequest) -> Backend:
        """API tests run on PostgreSQL + Redis + RabbitMQ and on SQLite + memory://.

        A test whose subject is not the database runs on PostgreSQL only:
        `pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)`.
        """
        if request.param == "postgres":
            return Backend(
                "postgres",
                request.getfixturevalue("migrated_postgres"),
                request.getfixturevalue("redis_url"),
                request.getfixturevalue("rabbitmq_url"),
            )
        return Backend("sqlite", request.getfixturevalue("migrated_sqlite"), MEMORY, MEMORY)

    return migrated_postgres, migrated_sqlite, backend
