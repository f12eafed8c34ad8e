"""No log line, at any level, carries a key or a secret (the conftest also watches every module)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from common.logging import JsonFormatter
from credentials.models import Credential
from credentials.revalidate import Revalidator
from credentials.testing import SimKeys, User
from exchange_sim import SimServer

Mint = Callable[..., Awaitable[SimKeys]]


async def test_the_whole_flow_logs_no_key_or_secret(
    app: FastAPI,
    client: httpx.AsyncClient,
    sim: SimServer,
    sim_http: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
    internal: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user = new_user()
    first, second, other = await mint(), await mint(), await mint()
    wrong = SimKeys(first.api_key, other.secret_key)

    for exchange in ("upbit", "binance"):
        await client.post("/api/exchange/validate-credentials", json=first.body(exchange), headers=user.auth)
        await client.post("/api/exchange/validate-credentials", json=wrong.body(exchange), headers=user.auth)
        await client.post("/api/credentials", json=wrong.body(exchange), headers=user.auth)
        assert (
            await client.post("/api/credentials", json=first.body(exchange), headers=user.auth)
        ).status_code == 201
    await sim_http.post("/_sim/faults", json={"kind": "http_500", "count": 5, "exchange": "upbit"})
    await client.post("/api/exchange/validate-credentials", json=second.body("upbit"), headers=user.auth)
    await sim_http.delete("/_sim/faults")
    await client.get("/api/credentials", headers=user.auth)
    await client.get("/api/credentials/upbit", headers=user.auth)
    await client.put(
        "/api/credentials/upbit",
        json={"apiKey": second.api_key, "secretKey": second.secret_key},
        headers=user.auth,
    )
    await client.put("/api/credentials/upbit", json={"secretKey": other.secret_key}, headers=user.auth)
    await client.get(f"/internal/credentials/{user.user_id}/upbit", headers=internal)
    await client.get(
        f"/internal/credentials/{user.user_id}/upbit", headers={"Authorization": f"Bearer {first.secret_key}"}
    )
    # Keys that stop working, found by a re-validation pass.
    del sim.state.accounts._accounts[first.api_key]
    async with app.state.session_factory() as session, session.begin():
        await session.execute(
            update(Credential)
            .where(Credential.user_id == user.user_id)
            .values(last_validated_at=datetime.now(UTC) - timedelta(hours=2))
        )
    revalidator = Revalidator(
        app.state.session_factory,
        app.state.vault,
        app.state.validator,
        app.state.relay,
        interval=timedelta(hours=1),
    )
    assert (await revalidator.run_once()).invalidated == 1
    await client.delete("/api/credentials/upbit", headers=user.auth)
    await app.state.relay.drain()

    formatter = JsonFormatter("credentials")
    rendered = [
        text
        for record in caplog.records
        for text in (formatter.format(record), record.getMessage(), repr(record.args), repr(record.__dict__))
    ]
    assert len(caplog.records) > 50  # DEBUG really was captured
    assert any("credential validation failed" in line for line in rendered)
    secrets = [first.api_key, first.secret_key, second.api_key, second.secret_key, other.secret_key]
    leaking = [line for line in rendered if any(secret in line for secret in secrets)]
    assert leaking == []
