"""Start, stop and delete: commands relayed after commit, the engine's stop confirmation, and its absence."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from bots import commands
from bots.testing import FakeEngine, Fill, User, error_code, seed_fills
from common.testing.wait import eventually
from trading.models import OUTBOX, Bot, Order, Trade

CreateBot = Callable[..., Awaitable[dict[str, Any]]]


async def _bot(client: httpx.AsyncClient, user: User, bot_id: str, lang: str = "ko") -> dict[str, Any]:
    response = await client.get(f"/api/bots/{bot_id}", headers={**user.auth, "Accept-Language": lang})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_stop_answers_after_the_engine_confirmed_and_is_idempotent(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot())["botId"]
    # An open order that the engine must cancel before the stop is answered.
    async with app.state.session_factory() as session:
        session.add(
            Order(
                bot_id=uuid.UUID(bot_id),
                exchange="upbit",
                client_order_id=f"c-{bot_id}",
                slot=0,
                side="buy",
                price=Decimal(50000000),
                quantity=Decimal("0.0002"),
                status="open",
            )
        )
        await session.commit()
    response = await client.post(f"/api/bots/{bot_id}/stop", headers=user.auth)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "message": "봇이 중지되었습니다",
        "data": {"botId": bot_id, "status": "stopped"},
    }
    # By the time the stop was answered, the engine had cancelled the open order.
    async with app.state.session_factory() as session:
        statuses = set(
            (await session.execute(select(Order.status).where(Order.bot_id == uuid.UUID(bot_id)))).scalars()
        )
    assert statuses == {"canceled"}
    (stop,) = engine.commands.of("bot.stop", bot_id=bot_id)
    assert stop.message_id == stop.payload["command_id"] and stop.payload["status"] == "stopped"
    again = await client.post(f"/api/bots/{bot_id}/stop", headers={**user.auth, "Accept-Language": "en"})
    assert again.status_code == 200 and again.json()["message"] == "Bot stopped"
    assert len(engine.commands.of("bot.stop", bot_id=bot_id)) == 1  # already stopped: nothing sent


async def test_start_is_idempotent_and_commands_follow_in_order(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    for _ in range(2):
        response = await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)
        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "message": "봇이 시작되었습니다",
            "data": {"botId": bot_id, "status": "running"},
        }
    assert (await client.post(f"/api/bots/{bot_id}/stop", headers=user.auth)).status_code == 200
    assert (await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)).status_code == 200
    await eventually(lambda: len(engine.commands.of("bot.start", bot_id=bot_id)) == 2)
    kinds = [e.type for e in engine.commands.received if e.payload.get("bot_id") == bot_id]
    assert kinds == ["bot.start", "bot.stop", "bot.start"]
    ids = [e.message_id for e in engine.commands.received]
    assert len(set(ids)) == len(ids)


@pytest.mark.engine(confirm=False)
@pytest.mark.settings(stop_confirm_timeout_seconds=0.5)
async def test_an_unconfirmed_stop_leaves_the_bot_in_error_and_answers_503(
    client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot())["botId"]
    started = time.monotonic()
    response = await client.post(f"/api/bots/{bot_id}/stop", headers=user.auth)
    assert time.monotonic() - started < 3
    assert response.status_code == 503 and error_code(response) == "SERVICE_UNAVAILABLE"
    assert engine.commands.of("bot.stop", bot_id=bot_id)  # it was asked, it did not answer
    bot = await _bot(client, user, bot_id)
    assert bot["status"] == "error" and "엔진" in bot["errorMessage"] and bot["stopReason"] == "error"
    assert "did not confirm" in (await _bot(client, user, bot_id, "en"))["errorMessage"]
    # Delete must not pretend either: same wait, same answer, the bot stays.
    response = await client.delete(f"/api/bots/{bot_id}", headers=user.auth)
    assert response.status_code == 503
    assert (await _bot(client, user, bot_id))["status"] == "error"
    # Starting a bot in error clears its message and why it stopped.
    assert (await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)).status_code == 200
    bot = await _bot(client, user, bot_id)
    assert bot["status"] == "running" and bot["errorMessage"] is None and bot["stopReason"] is None


async def test_a_late_confirmation_of_an_errored_stop_is_honoured(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot())["botId"]
    engine.confirm = False
    service = app.state.bot_service
    service._stop_timeout = 0.3
    assert (await client.post(f"/api/bots/{bot_id}/stop", headers=user.auth)).status_code == 503
    # The engine comes back and stops the bot: a new stop is confirmed and clears the error.
    engine.confirm = True
    service._stop_timeout = 10
    response = await client.post(f"/api/bots/{bot_id}/stop", headers=user.auth)
    assert response.status_code == 200 and response.json()["data"]["status"] == "stopped"
    bot = await _bot(client, user, bot_id)
    assert bot["status"] == "stopped" and bot["errorMessage"] is None and bot["stopReason"] == "user"


async def test_delete_stops_first_keeps_trades_and_then_404s_everywhere(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot, engine: FakeEngine
) -> None:
    bot_id = (await create_bot())["botId"]
    when = datetime(2025, 1, 23, 10, 30, tzinfo=UTC)
    await seed_fills(
        app.state.session_factory,
        bot_id,
        "upbit",
        [Fill("buy", Decimal(50000000), Decimal("0.0002"), Decimal(5), "KRW", when)],
    )
    response = await client.delete(f"/api/bots/{bot_id}", headers=user.auth)
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "봇이 삭제되었습니다"}
    await eventually(lambda: bool(engine.commands.of("bot.deleted", bot_id=bot_id)))
    kinds = [e.type for e in engine.commands.received if e.payload.get("bot_id") == bot_id]
    assert kinds == ["bot.start", "bot.stop", "bot.deleted"]
    for method, path in [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("POST", "/start"),
        ("POST", "/stop"),
        ("GET", "/grid-levels"),
        ("GET", "/trades"),
        ("GET", "/performance"),
    ]:
        body = {"stopAtMax": True} if method == "PUT" else None
        response = await client.request(method, f"/api/bots/{bot_id}{path}", json=body, headers=user.auth)
        assert response.status_code == 404 and error_code(response) == "BOT_NOT_FOUND", (method, path)
    listed = (await client.get("/api/bots", headers=user.auth)).json()["data"]
    assert bot_id not in {b["_id"] for b in listed["bots"]}
    async with app.state.session_factory() as session:
        kept = await session.scalar(
            select(func.count()).select_from(Trade).where(Trade.bot_id == uuid.UUID(bot_id))
        )
    assert kept == 1  # retained for audit


async def test_a_rolled_back_request_publishes_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    create_bot: CreateBot,
    engine: FakeEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot_id = (await create_bot(autoStart=False))["botId"]
    real = commands.enqueue_command

    async def enqueue_then_fail(*args: Any, **kwargs: Any) -> str:
        await real(*args, **kwargs)
        raise RuntimeError("the transaction fails after the message was enqueued")

    monkeypatch.setattr(commands, "enqueue_command", enqueue_then_fail)
    response = await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)
    assert response.status_code == 500 and error_code(response) == "INTERNAL_SERVER_ERROR"
    monkeypatch.setattr(commands, "enqueue_command", real)
    assert (await _bot(client, user, bot_id))["status"] == "stopped"
    assert (await client.post(f"/api/bots/{bot_id}/start", headers=user.auth)).status_code == 200
    # The relay publishes in commit order: once the good start arrived, nothing else is on its way.
    await eventually(lambda: bool(engine.commands.of("bot.start", bot_id=bot_id)))
    assert len(engine.commands.of("bot.start", bot_id=bot_id)) == 1
    async with app.state.session_factory() as session:
        rows = (
            await session.execute(
                select(OUTBOX.c.routing_key).where(OUTBOX.c.payload["bot_id"].as_string() == bot_id)
            )
        ).all()
    assert [r.routing_key for r in rows] == ["bot.start"]
    assert await app.state.relay.pending() == 0


async def test_stops_nobody_waits_for_any_more_are_put_in_error(
    app: FastAPI, client: httpx.AsyncClient, user: User, create_bot: CreateBot
) -> None:
    abandoned, recent = (await create_bot())["botId"], (await create_bot())["botId"]
    now = datetime.now(UTC)
    async with app.state.session_factory() as session:
        # As a process that died between committing a stop and settling its wait leaves them.
        for bot_id, asked in ((abandoned, now - timedelta(minutes=5)), (recent, now)):
            await session.execute(
                update(Bot)
                .where(Bot.id == uuid.UUID(bot_id))
                .values(stop_command_id=uuid.uuid4().hex, stop_requested_at=asked)
            )
        await session.commit()
    assert await app.state.bot_service.sweep_abandoned_stops() >= 1
    swept = await _bot(client, user, abandoned)
    assert swept["status"] == "error" and "엔진" in swept["errorMessage"] and swept["stopReason"] == "error"
    assert (await _bot(client, user, recent))["status"] == "running"


async def test_an_administrator_stops_every_running_bot_of_a_user_and_no_one_else_can(
    client: httpx.AsyncClient,
    user: User,
    new_user: Callable[..., User],
    create_bot: CreateBot,
    engine: FakeEngine,
) -> None:
    mine = [(await create_bot())["botId"] for _ in range(2)]
    stopped_already = (await create_bot(autoStart=False))["botId"]
    other = new_user()
    theirs = (await create_bot(owner=other))["botId"]
    path = f"/internal/admin/users/{user.user_id}/stop-bots"
    # Anyone but an administrator: 403, nothing stopped.
    assert error_code(await client.post(path, headers=other.auth)) == "FORBIDDEN"
    assert error_code(await client.post(path)) == "UNAUTHORIZED"
    assert not engine.commands.of("bot.stop")
    admin = new_user(role="admin")
    response = await client.post(path, headers=admin.auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"botsStopped": 2}
    for bot_id in mine:
        assert (await _bot(client, user, bot_id))["status"] == "stopped"
        assert len(engine.commands.of("bot.stop", bot_id=bot_id)) == 1
    assert (await _bot(client, user, stopped_already))["status"] == "stopped"
    assert (await _bot(client, other, theirs))["status"] == "running"
    # Repeated (an administrator retrying a disable): nothing left to stop.
    again = await client.post(path, headers=admin.auth)
    assert again.json()["data"] == {"botsStopped": 0}
