"""Key rotation: every row re-sealed under the new version, resumably, and every credential still works."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.crypto import KeyRing, Sealed, generate_key, parse_key
from common.db import create_engine, create_session_factory
from common.security import TokenService, TokenType
from common.testing.infra import scratch_database
from credentials.main import create_app
from credentials.migrate import upgrade
from credentials.models import SCHEMA, Credential
from credentials.revalidate import Revalidator
from credentials.rotate import MissingKeyVersionsError, rotate, versions_in_use
from credentials.settings import Settings
from credentials.testing import ENCRYPTION_KEY_V1, ENCRYPTION_KEY_V2, Backend, SimKeys, User, make_settings
from credentials.vault import CredentialVault, ExchangeKeys, SealedKeys
from exchange_sim import SimServer

Mint = Callable[..., Awaitable[SimKeys]]
V2 = {"encryption_key": ENCRYPTION_KEY_V2, "encryption_key_version": 2}


@pytest.fixture(params=["postgres", "sqlite"])
def rotation_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A database of its own: rotation touches every row, so no other test may share it."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'rotation.db'}"
        upgrade(url)
        yield Backend("sqlite", url, "memory://", "memory://")
        return
    with scratch_database(request.getfixturevalue("postgres_admin_url")) as url:
        upgrade(url)
        yield Backend(
            "postgres", url, request.getfixturevalue("redis_url"), request.getfixturevalue("rabbitmq_url")
        )


@pytest.fixture
async def factory(rotation_backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the rotation database."""
    engine = create_engine(rotation_backend.database_url, schemas=[SCHEMA], pool_size=2)
    yield create_session_factory(engine)
    await engine.dispose()


class CrashingVault(CredentialVault):
    """Dies while sealing the n-th row, as a process killed mid-batch would."""

    def __init__(self, ring: KeyRing, crash_at: int) -> None:
        super().__init__(ring)
        self.calls = 0
        self.crash_at = crash_at

    def seal(self, user_id: str, exchange: str, keys: ExchangeKeys) -> SealedKeys:
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("killed (test)")
        return super().seal(user_id, exchange, keys)


def _ring(current: str, version: int, previous: dict[int, str] | None = None) -> KeyRing:
    keys = {v: parse_key(k) for v, k in (previous or {}).items()}
    keys[version] = parse_key(current)
    return KeyRing(version, keys)


async def test_rotation_reseals_every_row_resumably(
    rotation_backend: Backend,
    factory: async_sessionmaker[AsyncSession],
    sim: SimServer,
    mint: Mint,
    namespace: str,
) -> None:
    # Five credentials stored under version 1 through the API.
    settings_v1 = make_settings(rotation_backend, sim.url, namespace)
    stored: dict[tuple[str, str], SimKeys] = {}
    app = create_app(settings_v1)
    async with (
        LifespanManager(app, startup_timeout=20, shutdown_timeout=20),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://credentials") as client,
    ):
        for index in range(3):
            user = _user(settings_v1, index)
            for exchange in ("upbit", "binance")[: 2 if index < 2 else 1]:
                keys = await mint()
                response = await client.post("/api/credentials", json=keys.body(exchange), headers=user.auth)
                assert response.status_code == 201, response.text
                stored[(user.user_id, exchange)] = keys
    assert await versions_in_use(factory) == {1: 5}

    # A run that dies in its second batch: the first batch stays done, the second is rolled back.
    ring_v2 = _ring(ENCRYPTION_KEY_V2, 2, {1: ENCRYPTION_KEY_V1})
    with pytest.raises(RuntimeError, match="killed"):
        await rotate(factory, CrashingVault(ring_v2, crash_at=4), batch_size=2)
    assert await versions_in_use(factory) == {1: 3, 2: 2}

    # Stopping after one batch is as safe.
    partial = await rotate(factory, CredentialVault(ring_v2), batch_size=2, max_batches=1)
    assert (partial.rotated, partial.remaining) == (2, 1)

    # The command finishes the job, printing counts and nothing else.
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": rotation_backend.database_url,
        "ENCRYPTION_KEY": ENCRYPTION_KEY_V2,
        "ENCRYPTION_KEY_VERSION": "2",
        "ENCRYPTION_PREVIOUS_KEYS": json.dumps({"1": ENCRYPTION_KEY_V1}),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "credentials.rotate",
        "--batch-size",
        "2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, stderr
    assert "rotated 1 credential(s) to key version 2; 0 remaining under older versions; 0 failed" in stdout
    secrets = [
        ENCRYPTION_KEY_V1,
        ENCRYPTION_KEY_V2,
        *(v for k in stored.values() for v in (k.api_key, k.secret_key)),
    ]
    assert not [secret for secret in secrets if secret in stdout + stderr]

    # A second run is a no-op.
    again = await rotate(factory, CredentialVault(ring_v2), batch_size=2)
    assert (again.rotated, again.remaining, again.failed) == (0, 0, 0)
    async with factory() as session:
        rows = (await session.execute(select(Credential))).scalars().all()
    assert {row.key_version for row in rows} == {2}
    assert {Sealed.from_token(t).version for row in rows for t in (row.api_key, row.secret_key)} == {2}

    # With the old key gone entirely, every credential still opens and still validates.
    settings_v2 = make_settings(rotation_backend, sim.url, namespace, **V2)
    app = create_app(settings_v2)
    async with (
        LifespanManager(app, startup_timeout=20, shutdown_timeout=20),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://credentials") as client,
    ):
        internal = {"Authorization": f"Bearer {settings_v2.internal_keys_token.get_secret_value()}"}
        for (user_id, exchange), keys in stored.items():
            response = await client.get(f"/internal/credentials/{user_id}/{exchange}", headers=internal)
            assert response.json()["data"] == {"apiKey": keys.api_key, "secretKey": keys.secret_key}
        async with factory() as session, session.begin():
            await session.execute(
                update(Credential).values(last_validated_at=datetime.now(UTC) - timedelta(hours=2))
            )
        revalidator = Revalidator(
            app.state.session_factory, app.state.vault, app.state.validator, None, interval=timedelta(hours=1)
        )
        report = await revalidator.run_once()
        assert (report.checked, report.valid, report.invalidated, report.failed) == (5, 5, 0, 0)


async def test_rotation_refuses_rows_it_cannot_open(
    rotation_backend: Backend, factory: async_sessionmaker[AsyncSession]
) -> None:
    ring_v1 = _ring(ENCRYPTION_KEY_V1, 1)
    sealed = CredentialVault(ring_v1).seal("u-1", "upbit", ExchangeKeys("k" * 20, "s" * 20))
    async with factory() as session, session.begin():
        session.add(
            Credential(
                user_id="u-1",
                exchange="upbit",
                api_key=sealed.api_key,
                secret_key=sealed.secret_key,
                key_version=1,
                key_last4="kkkk",
                is_valid=True,
            )
        )
    # A ring that lost version 1 changes nothing and says which versions it lacks.
    with pytest.raises(MissingKeyVersionsError) as caught:
        await rotate(factory, CredentialVault(_ring(generate_key(), 3)))
    assert caught.value.versions == [1]
    assert await versions_in_use(factory) == {1: 1}


def _user(settings: Settings, index: int) -> User:
    user_id = f"rotation-user-{index}"
    issued = TokenService.from_settings(settings).issue(
        TokenType.ACCESS, user_id=user_id, email=f"r{index}@example.com"
    )
    return User(user_id, issued.token)
