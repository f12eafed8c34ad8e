"""Settings, migrations, password hashing, health, replicas sharing revocations, and log hygiene."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.engine import Connection

import auth.migrate
from auth.main import create_app
from auth.models import Base
from auth.passwords import PasswordHasher, _prehash
from auth.settings import Settings
from auth.testing import PASSWORD, Backend, error_code, make_settings
from common.db import create_engine
from common.migrations import migrate_main, migrations_path


def test_settings_read_upper_cased_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///x.db")
    monkeypatch.setenv("REDIS_URL", "memory://")
    monkeypatch.setenv("JWT_SECRET", "s" * 40)
    monkeypatch.setenv("BCRYPT_ROUNDS", "13")
    settings = Settings()
    assert settings.database_url.get_secret_value() == "sqlite+aiosqlite:///x.db"
    assert settings.redis_url.get_secret_value() == "memory://"
    assert settings.jwt_secret.get_secret_value() == "s" * 40
    assert settings.bcrypt_rounds == 13
    assert settings.port == 3001


def test_bcrypt_cost_below_12_only_in_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BCRYPT_ROUNDS", raising=False)
    assert Settings(environment="development").bcrypt_rounds == 12
    assert Settings(environment="test", bcrypt_rounds=4).bcrypt_rounds == 4
    for environment, rounds in (("development", 11), ("production", 10), ("test", 3)):
        with pytest.raises(ValidationError):
            Settings(environment=environment, bcrypt_rounds=rounds, jwt_secret="p" * 48)


async def test_password_hashing() -> None:
    hasher = await PasswordHasher.create(4)
    hashed = await hasher.hash(PASSWORD)
    assert hashed.startswith("$2b$04$")
    assert PASSWORD not in hashed
    assert await hasher.verify(PASSWORD, hashed)
    assert not await hasher.verify(PASSWORD + " ", hashed)
    assert not await hasher.verify(PASSWORD, None)
    assert not await hasher.verify(PASSWORD, "not a bcrypt hash")
    # Past 72 bytes every byte still counts, and bcrypt never sees more than 44 bytes.
    prefix = "é" * 36  # 72 UTF-8 bytes
    long_hash = await hasher.hash(prefix + "a")
    assert not await hasher.verify(prefix + "b", long_hash)
    assert len(_prehash("😀" * 128)) == 44
    assert b"\x00" not in _prehash("\x00" * 10)


async def test_hashing_refuses_nothing_bcrypt_would_choke_on() -> None:
    hasher = await PasswordHasher.create(4)
    with pytest.raises(ValueError):
        bcrypt.hashpw(b"x" * 73, bcrypt.gensalt(4))  # what the pre-hash protects us from
    assert await hasher.verify("x" * 73, await hasher.hash("x" * 73))


async def test_models_match_the_migration_on_postgres(migrated_postgres: str) -> None:
    engine = create_engine(migrated_postgres, schemas=["auth"])

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "compare_type": True,
                "include_name": lambda name, kind, _parent: kind != "schema" or name == "auth",
                "include_object": lambda _obj, name, kind, *_: (
                    not (kind == "table" and name == "alembic_version")
                ),
            },
        )
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


def test_migrate_module_applies_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "fresh.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    migrate_main("auth", auth.migrate.__file__)
    migrate_main("auth", auth.migrate.__file__)  # idempotent
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        version = conn.execute("select version_num from alembic_version_auth").fetchall()
    assert {"users", "refresh_tokens"} <= tables
    assert version == [("0002_user_roles",)]


def test_migrations_path_override_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (migrations_path("auth", auth.migrate.__file__) / "versions" / "0001_initial.py").is_file()
    monkeypatch.setenv("AUTH_MIGRATIONS_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="AUTH_MIGRATIONS_PATH"):
        migrations_path("auth", auth.migrate.__file__)


async def test_migrate_on_start_serves_a_fresh_database(tmp_path: Path, namespace: str) -> None:
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}", "memory://")
    app = create_app(make_settings(backend, namespace, migrate_on_start=True))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://auth") as client,
    ):
        response = await client.post(
            "/api/auth/register", json={"email": f"{namespace}@example.com", "password": PASSWORD}
        )
        assert response.status_code == 201


async def test_health_routes(client: httpx.AsyncClient) -> None:
    live = await client.get("/health")
    assert live.status_code == 200
    assert live.json()["data"]["status"] == "ok"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["data"]["checks"] == {"database": "ok", "cache": "ok"}


async def test_dead_database_is_503_not_500(namespace: str) -> None:
    backend = Backend("postgres", "postgresql+asyncpg://postgres@127.0.0.1:1/nothing", "memory://")
    app = create_app(make_settings(backend, namespace))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://auth") as client,
    ):
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert error_code(ready) == "SERVICE_UNAVAILABLE"
        assert ready.json()["error"]["details"]["down"] == ["database"]
        login = await client.post(
            "/api/auth/login", json={"email": f"{namespace}@example.com", "password": PASSWORD}
        )
        assert login.status_code == 503
        assert error_code(login) == "SERVICE_UNAVAILABLE"


async def test_dead_cache_fails_closed_with_503(migrated_sqlite: str, namespace: str) -> None:
    backend = Backend("sqlite", migrated_sqlite, "redis://127.0.0.1:1/0")
    app = create_app(make_settings(backend, namespace))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://auth") as client,
    ):
        registered = await client.post(
            "/api/auth/register", json={"email": f"{namespace}@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201  # registration needs no cache
        token = registered.json()["data"]["token"]
        # The revocation list cannot be read: the token is not accepted on faith.
        me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 503
        assert error_code(me) == "SERVICE_UNAVAILABLE"
        ready = await client.get("/health/ready")
        assert ready.json()["error"]["details"]["down"] == ["cache"]


@pytest.fixture
async def second_replica(settings: Settings) -> AsyncIterator[FastAPI]:
    """Another instance of the service over the same database and cache."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


async def test_logout_is_seen_by_every_replica(
    client: httpx.AsyncClient, second_replica: FastAPI, namespace: str
) -> None:
    registered = await client.post(
        "/api/auth/register",
        json={"email": f"replica-{namespace}@example.com", "password": PASSWORD},
    )
    headers = {"Authorization": f"Bearer {registered.json()['data']['token']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(second_replica), base_url="http://b") as other:
        assert (await other.get("/api/auth/me", headers=headers)).status_code == 200
        assert (await client.post("/api/auth/logout", headers=headers)).status_code == 200
        response = await other.get("/api/auth/me", headers=headers)
        assert response.status_code == 401
        assert error_code(response) == "INVALID_TOKEN"


async def test_no_password_or_token_reaches_the_logs(
    client: httpx.AsyncClient, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret_password = "Very-Secret-Password-42"
    caplog.set_level(logging.DEBUG)
    email = f"logs-{namespace}@example.com"
    data = (
        await client.post("/api/auth/register", json={"email": email, "password": secret_password})
    ).json()["data"]
    login = (await client.post("/api/auth/login", json={"email": email, "password": secret_password})).json()[
        "data"
    ]
    rotated = (await client.post("/api/auth/refresh", json={"refreshToken": data["refreshToken"]})).json()[
        "data"
    ]
    await client.post(
        "/api/auth/refresh", json={"refreshToken": data["refreshToken"]}
    )  # reuse: logs a warning
    await client.post("/api/auth/login", json={"email": email, "password": "wrong-" + secret_password})
    await client.post(
        "/api/auth/logout",
        headers={"Authorization": f"Bearer {login['token']}"},
        json={"refreshToken": login["refreshToken"]},
    )
    secrets = [
        secret_password,
        data["token"],
        data["refreshToken"],
        login["token"],
        rotated["refreshToken"],
    ]
    assert any("reuse" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        for secret in secrets:
            assert secret not in text, record
