"""Test support for the auth service (fixtures live in services/auth/tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auth.settings import Settings
from common.testing.service import Backend as Backend
from common.testing.service import error_code as error_code

JWT_SECRET = "auth-tests-jwt-secret-0123456789abcdef-0123456789abcdef-0123456789"
PASSWORD = "correct horse battery"


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
    values: dict[str, Any] = {**backend.values(namespace), "jwt_secret": JWT_SECRET, "bcrypt_rounds": 4}
    values.update(overrides)
    return Settings(**values)
