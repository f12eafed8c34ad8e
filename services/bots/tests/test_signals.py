"""TradingView signals: a token per bot (hashed, replaced by a new one), signals that start and stop the bot as
its owner's routes do, 10 a minute per token, refused for a disabled owner, and every one recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from bots.testing import FakeEngine, User, error_code
from common.contracts.bots import BotEvent
from common.security import RevocationList
from common.testing.wait import eventually
from trading.models import SignalToken

CreateBot = Callable[..., Awaitable[dict[str, Any]]]


async def _issue(client: httpx.AsyncClient, user: User, bot_id: str) -> str:
    """POST /signal-token; the path to post signals to (the URL's path)."""
    response = await client.post(f"/api/bots/{bot_id}/signal-token", headers=user.auth)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    url = urlsplit(data["url"])
    assert (url.scheme, url.netloc) == ("https", "api.example.com")
    assert url.path == f"/api/signals/tradingview/{data['token']}"
    assert len(data["token"]) >= 43  # 32 random bytes, URL-safe base64
    return url.path


async def _status(client: httpx.AsyncClient, user: User, bot_id: str) -> str:
    response = await client.get(f"/api/bots/{bot_id}", headers=user.auth)
    assert response.status_code == 200, response.text
    status: str = response.json()["data"]["status"]
    return status


async def _signals(client: httpx.AsyncClient, user: User, bot_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/bots/{bot_id}/signals", params=params, headers=user.auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# Built on PUBLIC_API_URL: the gateway's public origin.
pytestmark = pytest.mark.settings(public_api_url="https://api.example.com/")


async def test_a_signal_stops_and_starts_the_bot_as_its_owners_routes_do(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot())["botId"]
    path = await _issue(client, user, bot_id)

    # TradingView's JSON message; no Authorization header at all.
    stopped = await client.post(path, json={"action": "stop"}, headers={"X-Real-IP": "52.89.214.238"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {
        "success": True,
        "message": "봇이 중지되었습니다",
        "data": {"botId": bot_id, "status": "stopped"},
    }
    assert await _status(client, user, bot_id) == "stopped"
    # The engine was told, and confirmed (the stop answers only after its confirmation).
    assert engine.commands.of(BotEvent.STOP.value, bot_id=bot_id)

    # The alert message as plain text: the one word.
    started = await client.post(
        path, content=b" Start\n", headers={"Content-Type": "text/plain", "Accept-Language": "en"}
    )
    assert started.status_code == 200, started.text
    assert started.json()["data"] == {"botId": bot_id, "status": "running"}
    assert started.json()["message"] == "Bot started"
    assert await _status(client, user, bot_id) == "running"

    async def start_relayed() -> bool:
        return len(engine.commands.of(BotEvent.START.value, bot_id=bot_id)) == 2  # autoStart, then the signal

    await eventually(start_relayed, timeout=10, message="the signal's start never reached the engine")

    shown = await _signals(client, user, bot_id)
    assert [(s["action"], s["outcome"], s["clientIp"]) for s in shown["signals"]] == [
        ("start", "ok", "127.0.0.1"),
        ("stop", "ok", "52.89.214.238"),
    ]
    assert shown["pagination"] == {"total": 2, "limit": 50, "offset": 0, "hasMore": False}


async def test_a_new_token_replaces_the_old_and_only_its_hash_is_stored(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    old = await _issue(client, user, bot_id)
    new = await _issue(client, user, bot_id)
    assert new != old

    refused = await client.post(old, content=b"start", headers={"Content-Type": "text/plain"})
    assert (refused.status_code, error_code(refused)) == (404, "NOT_FOUND")
    assert await _status(client, user, bot_id) == "stopped"
    # An unknown token is no signal of any bot: nothing recorded.
    assert (await _signals(client, user, bot_id))["signals"] == []

    async with app.state.session_factory() as session:
        rows = (await session.execute(select(SignalToken))).scalars().all()
    token = new.rsplit("/", 1)[1]
    assert [r.token_hash for r in rows if str(r.bot_id) == bot_id] == [
        hashlib.sha256(token.encode()).hexdigest()
    ]
    assert all(token not in r.token_hash for r in rows)

    accepted = await client.post(new, json={"action": "start"})
    assert accepted.status_code == 200, accepted.text
    assert await _status(client, user, bot_id) == "running"


async def test_the_eleventh_signal_within_a_minute_is_refused_and_every_one_recorded(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    path = await _issue(client, user, bot_id)
    for _ in range(10):
        response = await client.post(path, content=b"stop", headers={"Content-Type": "text/plain"})
        assert response.status_code == 200, response.text
    eleventh = await client.post(path, content=b"start", headers={"Content-Type": "text/plain"})
    assert (eleventh.status_code, error_code(eleventh)) == (429, "RATE_LIMIT_EXCEEDED")
    assert eleventh.headers["retry-after"] == "60"
    assert await _status(client, user, bot_id) == "stopped"

    shown = await _signals(client, user, bot_id, limit=5)
    assert shown["pagination"] == {"total": 11, "limit": 5, "offset": 0, "hasMore": True}
    assert [(s["action"], s["outcome"]) for s in shown["signals"]] == [
        ("start", "RATE_LIMIT_EXCEEDED"),
        *[("stop", "ok")] * 4,
    ]
    # Another bot's token has a budget of its own.
    other = await _issue(client, user, (await create_bot(autoStart=False))["botId"])
    assert (await client.post(other, json={"action": "stop"})).status_code == 200


async def test_bad_bodies_a_disabled_owner_and_other_users(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    new_user: Callable[[], User],
    create_bot: CreateBot,
    engine: FakeEngine,
) -> None:
    bot_id = (await create_bot())["botId"]
    path = await _issue(client, user, bot_id)
    for content, kind in [
        (b"pause", "text/plain"),
        (b'{"action": "STOP!"}', "application/json"),
        (b'["stop"]', "application/json"),
        (b"\xff", "text/plain"),
    ]:
        response = await client.post(path, content=content, headers={"Content-Type": kind})
        assert (response.status_code, error_code(response)) == (400, "VALIDATION_ERROR"), content
    assert await _status(client, user, bot_id) == "running"

    revocations = RevocationList(app.state.cache)
    await revocations.disable_user(user.user_id)
    try:
        refused = await client.post(path, json={"action": "stop"})
        assert (refused.status_code, error_code(refused)) == (403, "ACCOUNT_DISABLED")
    finally:
        await revocations.enable_user(user.user_id)
    assert await _status(client, user, bot_id) == "running"
    assert not engine.commands.of(BotEvent.STOP.value, bot_id=bot_id)

    shown = await _signals(client, user, bot_id)
    assert [(s["action"], s["outcome"]) for s in shown["signals"]] == [
        ("stop", "ACCOUNT_DISABLED"),
        *[(None, "VALIDATION_ERROR")] * 4,
    ]

    # Another user can neither issue a token for the bot nor read its signals.
    stranger = new_user()
    for response in (
        await client.post(f"/api/bots/{bot_id}/signal-token", headers=stranger.auth),
        await client.get(f"/api/bots/{bot_id}/signals", headers=stranger.auth),
    ):
        assert (response.status_code, error_code(response)) == (404, "BOT_NOT_FOUND")
    # Issuing needs the owner's bearer token.
    anonymous = await client.post(f"/api/bots/{bot_id}/signal-token")
    assert (anonymous.status_code, error_code(anonymous)) == (401, "UNAUTHORIZED")

    # A deleted bot's token is unknown from then on.
    assert (await client.delete(f"/api/bots/{bot_id}", headers=user.auth)).status_code == 200
    gone = await client.post(path, json={"action": "start"})
    assert (gone.status_code, error_code(gone)) == (404, "NOT_FOUND")
