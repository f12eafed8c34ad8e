"""Background re-validation: isValid/lastValidatedAt kept current, invalidated keys announced once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from common.contracts.credentials import CredentialEvent, CredentialEventType
from common.testing.wait import eventually
from credentials.models import Credential
from credentials.revalidate import Revalidator
from credentials.testing import EventSink, SimKeys, User
from exchange_sim import SimServer

Mint = Callable[..., Awaitable[SimKeys]]


def revoke(sim: SimServer, keys: SimKeys) -> None:
    """Make the simulator forget an account's keys, as an exchange does when a user deletes them.

    The simulator's control API has no such call; tests reach into its in-process state.
    """
    del sim.state.accounts._accounts[keys.api_key]


async def _backdate(app: FastAPI, user: User, hours: float = 2) -> datetime:
    when = datetime.now(UTC) - timedelta(hours=hours)
    async with app.state.session_factory() as session, session.begin():
        await session.execute(
            update(Credential).where(Credential.user_id == user.user_id).values(last_validated_at=when)
        )
    return when


async def _row(app: FastAPI, user: User, exchange: str) -> Credential:
    async with app.state.session_factory() as session:
        query = select(Credential).where(Credential.user_id == user.user_id, Credential.exchange == exchange)
        return (await session.execute(query)).scalar_one()


def _revalidator(app: FastAPI) -> Revalidator:
    settings = app.state.settings
    return Revalidator(
        app.state.session_factory,
        app.state.vault,
        app.state.validator,
        app.state.relay,
        interval=timedelta(hours=1),
        concurrency=settings.revalidate_concurrency,
    )


async def test_keys_that_stop_working_are_marked_invalid_and_announced_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    sim: SimServer,
    new_user: Callable[[], User],
    mint: Mint,
    events: EventSink,
) -> None:
    user = new_user()
    revoked, kept = await mint(), await mint()
    await client.post("/api/credentials", json=revoked.body("upbit"), headers=user.auth)
    await client.post("/api/credentials", json=kept.body("binance"), headers=user.auth)
    revalidator = _revalidator(app)

    # Freshly validated rows are not due.
    fresh = await revalidator.run_once()
    assert fresh.checked == 0

    revoke(sim, revoked)
    stale = await _backdate(app, user)
    report = await revalidator.run_once()
    assert (report.checked, report.valid, report.invalidated) == (2, 1, 1)

    listed = (await client.get("/api/credentials", headers=user.auth)).json()["data"]["credentials"]
    validity = {c["exchange"]: c["isValid"] for c in listed}
    assert validity == {"upbit": False, "binance": True}
    for exchange in ("upbit", "binance"):
        assert (await _row(app, user, exchange)).last_validated_at > stale  # type: ignore[operator]

    await eventually(lambda: bool(events.of(CredentialEventType.INVALIDATED.value)), timeout=10)
    [envelope] = events.of(CredentialEventType.INVALIDATED.value)
    event = envelope.payload_as(CredentialEvent)
    assert (event.user_id, event.exchange.value, event.reason) == (
        user.user_id,
        "upbit",
        "rejected_by_exchange",
    )

    # Still rejected at the next pass: no second announcement.
    await _backdate(app, user)
    again = await revalidator.run_once()
    assert (again.checked, again.invalidated) == (2, 0)
    await app.state.relay.drain()
    assert len(events.of(CredentialEventType.INVALIDATED.value)) == 1

    # New, working keys through PUT make the credential valid again.
    replacement = await mint()
    put = await client.put(
        "/api/credentials/upbit",
        json={"apiKey": replacement.api_key, "secretKey": replacement.secret_key},
        headers=user.auth,
    )
    assert put.status_code == 200 and put.json()["data"]["isValid"] is True


async def test_exchange_trouble_changes_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    sim_http: httpx.AsyncClient,
    new_user: Callable[[], User],
    mint: Mint,
) -> None:
    user = new_user()
    keys = await mint()
    await client.post("/api/credentials", json=keys.body("upbit"), headers=user.auth)
    stale = await _backdate(app, user)
    await sim_http.post(
        "/_sim/faults",
        json={"kind": "http_500", "count": 50, "exchange": "upbit", "path_prefix": "/v1/accounts"},
    )
    report = await _revalidator(app).run_once()
    assert (report.checked, report.unknown, report.invalidated) == (1, 1, 0)
    row = await _row(app, user, "upbit")
    assert row.is_valid is True
    assert row.last_validated_at == stale  # still due: the next pass tries again

    await sim_http.delete("/_sim/faults")
    report = await _revalidator(app).run_once()
    assert (report.checked, report.valid) == (1, 1)
    assert (await _row(app, user, "upbit")).last_validated_at > stale  # type: ignore[operator]
