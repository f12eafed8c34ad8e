"""Credential events halt live bots (once per message), and the internal route market-data asks."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from bots.testing import BALANCE_TOKEN, TICKERS_TOKEN, CredentialsContract, FakeEngine, User, error_code
from common.bus import Bus, Envelope
from common.contracts.credentials import CREDENTIALS_EXCHANGE, CredentialEvent
from common.exchanges import Exchange
from common.testing.wait import eventually
from trading.models import OUTBOX, Bot

CreateBot = Callable[..., Awaitable[dict[str, Any]]]
SetPrice = Callable[[str, str, str], Awaitable[None]]


@pytest.fixture
async def live_bots(
    user: User, credentials: CredentialsContract, create_bot: CreateBot, set_price: SetPrice
) -> dict[str, str]:
    """The user's bots: two running live on Upbit, one live on Binance, one paper on Upbit, one stopped."""
    credentials.set(user.user_id, "upbit")
    credentials.set(user.user_id, "binance")
    await set_price("upbit", "KRW-BTC", "60000000")
    await set_price("binance", "BTCUSDT", "100000")
    binance = {
        "exchange": "binance",
        "ticker": "BTCUSDT",
        "lowerPrice": 90000,
        "upperPrice": 110000,
        "orderAmount": 20,
    }
    return {
        "live1": (await create_bot(mode="live"))["botId"],
        "live2": (await create_bot(mode="live", ticker="KRW-ETH", lowerPrice=4000000, upperPrice=5000000))[
            "botId"
        ],
        "binance": (await create_bot(mode="live", **binance))["botId"],
        "paper": (await create_bot(mode="paper"))["botId"],
        "stopped": (await create_bot(mode="live", autoStart=False))["botId"],
    }


async def _statuses(client: httpx.AsyncClient, user: User, lang: str = "ko") -> dict[str, dict[str, Any]]:
    listed = (await client.get("/api/bots", headers={**user.auth, "Accept-Language": lang})).json()["data"]
    return {b["_id"]: b for b in listed["bots"]}


async def _publish(bus: Bus, kind: str, user: User, exchange: str, message_id: str) -> None:
    event = CredentialEvent(user_id=user.user_id, exchange=Exchange(exchange), reason="test")
    await bus.publish(CREDENTIALS_EXCHANGE, kind, event, message_id=message_id)


async def test_deleted_or_replaced_keys_are_left_to_the_engine(
    app: FastAPI, client: httpx.AsyncClient, user: User, live_bots: dict[str, str], engine: FakeEngine
) -> None:
    # The engine stops those bots itself: it must cancel their orders with the keys it still holds, so a
    # stop from here (racing it, and ending with other keys) would only get in its way.
    bus: Bus = app.state.bus
    await _publish(bus, "credential.deleted", user, "upbit", f"cred-msg-1-{user.user_id}")
    await _publish(bus, "credential.updated", user, "upbit", f"cred-msg-4-{user.user_id}")
    # A later message on the same ordered queue: once its effect shows, the ones above were seen.
    await _publish(bus, "credential.invalidated", user, "binance", f"cred-msg-2-{user.user_id}")

    async def settled() -> bool:
        status: str = (await _statuses(client, user))[live_bots["binance"]]["status"]
        return status == "error"

    await eventually(settled, timeout=10)
    bots = await _statuses(client, user)
    for name in ("live1", "live2", "paper"):
        assert bots[live_bots[name]]["status"] == "running", name
        assert bots[live_bots[name]]["stopReason"] is None, name
        assert not engine.commands.of("bot.stop", bot_id=live_bots[name]), name
    assert bots[live_bots["binance"]]["stopReason"] == "error"


async def test_an_invalidated_credential_puts_live_bots_in_error_with_a_message(
    app: FastAPI, client: httpx.AsyncClient, user: User, live_bots: dict[str, str], engine: FakeEngine
) -> None:
    bus: Bus = app.state.bus
    await _publish(bus, "credential.invalidated", user, "upbit", f"cred-msg-3-{user.user_id}")
    await _publish(bus, "credential.invalidated", user, "upbit", f"cred-msg-3-{user.user_id}")

    async def engine_told() -> bool:
        return all(engine.commands.of("bot.stop", bot_id=live_bots[n]) for n in ("live1", "live2"))

    await eventually(engine_told, timeout=10)
    bots = await _statuses(client, user)
    for name in ("live1", "live2"):
        assert bots[live_bots[name]]["status"] == "error"
        assert bots[live_bots[name]]["stopReason"] == "error"
        assert "인증 정보" in bots[live_bots[name]]["errorMessage"]
        (stop,) = engine.commands.of("bot.stop", bot_id=live_bots[name])
        assert stop.payload["status"] == "error"  # the engine halts it and keeps it in error
    english = await _statuses(client, user, "en")
    assert "credentials" in english[live_bots["live1"]]["errorMessage"]
    assert (
        bots[live_bots["binance"]]["status"] == "running" and bots[live_bots["paper"]]["status"] == "running"
    )
    # The same message again changes nothing (its inbox row is there): handled directly, deterministically.
    payload = {"user_id": user.user_id, "exchange": "upbit", "reason": "rejected_by_exchange"}
    await app.state.credential_consumer.handle(
        Envelope(message_id=f"cred-msg-3-{user.user_id}", type="credential.invalidated", payload=payload)
    )
    async with app.state.session_factory() as session:
        stops = await session.scalar(
            select(func.count())
            .select_from(OUTBOX)
            .where(
                OUTBOX.c.routing_key == "bot.stop",
                OUTBOX.c.payload["bot_id"].as_string() == live_bots["live1"],
            )
        )
    assert stops == 1


async def test_running_tickers_for_market_data(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    # The database is shared with other tests: this bot gets a ticker of its own to be recognisable.
    bot_id = (await create_bot(ticker="KRW-XRP", lowerPrice=1000, upperPrice=1200))["botId"]
    ticker = f"KRW-T{uuid.uuid4().hex[:8].upper()}"
    async with app.state.session_factory() as session:
        await session.execute(update(Bot).where(Bot.id == uuid.UUID(bot_id)).values(ticker=ticker))
        await session.commit()
    internal = {"Authorization": f"Bearer {TICKERS_TOKEN}"}

    async def listed() -> list[dict[str, str]]:
        response = await client.get("/internal/bots/running-tickers", headers=internal)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        tickers: list[dict[str, str]] = response.json()["tickers"]
        assert len(tickers) == len({(t["exchange"], t["ticker"]) for t in tickers})  # each pair once
        return tickers

    assert {"exchange": "upbit", "ticker": ticker} in await listed()
    assert (await client.post(f"/api/bots/{bot_id}/stop", headers=user.auth)).status_code == 200
    assert {"exchange": "upbit", "ticker": ticker} not in await listed()
    # Only market-data's token: the token this service itself presents to credentials (or any other
    # route's) is refused.
    other_route = {"Authorization": f"Bearer {BALANCE_TOKEN}"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, user.auth, other_route):
        response = await client.get("/internal/bots/running-tickers", headers=headers)
        assert response.status_code == 401 and error_code(response) in ("UNAUTHORIZED", "INVALID_TOKEN")
        assert response.json()["success"] is False and "tickers" not in response.json()
    openapi = (await client.get("/openapi.json")).json()
    assert not any(path.startswith("/internal") for path in openapi["paths"])
    assert "/api/bots/{bot_id}/performance" in openapi["paths"]
