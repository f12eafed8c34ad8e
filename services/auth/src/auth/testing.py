"""Test support for the auth service (fixtures live in services/auth/tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from auth.settings import Settings

JWT_SECRET = "auth-tests-jwt-secret-0123456789abcdef-0123456789abcdef-0123456789"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Backend:
    """Where an app under test keeps its data."""

    name: str
    database_url: str
    cache_url: str


@dataclass(frozen=True)
class Account:
    """A registered user and the tokens registration returned."""

    user_id: str
    email: str
    password: str
    token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of this account's access token."""
        return {"Authorization": f"Bearer {self.token}"}


def make_settings(backend: Backend, namespace: str, **overrides: Any) -> Settings:
    """Test settings: fast bcrypt, a known JWT secret, the backend, a per-test cache namespace."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": backend.database_url,
        "redis_url": backend.cache_url,
        "cache_namespace": namespace,
        "jwt_secret": JWT_SECRET,
        "bcrypt_rounds": 4,
        "log_json": False,
        "database_pool_size": 5,
    }
    values.update(overrides)
    return Settings(**values)


def error_code(response: httpx.Response) -> str:
    """The `error.code` of an error envelope (asserting it is one)."""
    body = response.json()
    assert body["success"] is False, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    code: str = body["error"]["code"]
    return code
