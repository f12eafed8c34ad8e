"""Deliveries: user events and credential invalidations from the bus become signed webhook deliveries,
retried under one id until a 2xx, dead after the bound, never duplicated by a redelivered message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from common.bus import Bus
from common.contracts.credentials import CREDENTIALS_EXCHANGE, CredentialEvent, CredentialEventType
from common.contracts.envelope import new_message_id
from common.contracts.events import EVENTS_EXCHANGE, user_events_binding, user_events_key
from common.exchanges.ids import Exchange
from common.testing.service import User, exact_json
from common.testing.wait import eventually
from notifier.consumers import EVENTS_QUEUE
from notifier.main import create_app
from notifier.senders import WebhookSender, send_apprise
from notifier.settings import Settings
from notifier.testing import Receiver, verify

SECRET = "webhook-secret-0123456789"
WAIT = 15.0


async def configure(client: httpx.AsyncClient, user: User, url: str, **extra: Any) -> dict[str, Any]:
    body = {"channels": [{"type": "webhook", "url": url, "secret": SECRET}], **extra}
    response = await client.put("/api/notifications/settings", headers=user.auth, json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = exact_json(response)["data"]
    return data


def trade(bot: str) -> dict[str, Any]:
    return {
        "type": "trade",
        "botId": bot,
        "trade": {
            "_id": str(uuid.uuid4()),
            "type": "sell",
            "price": "51000000.5",
            "amount": "0.0002",
            "total": "10200.1",
            "fee": "5.1",
            "feeCurrency": "KRW",
            "orderId": "o-1",
            "executedAt": "2025-01-23T10:30:00.000Z",
            "profit": "200.25",
        },
    }


def stopped(bot: str, reason: str = "takeProfit") -> dict[str, Any]:
    return {"type": "bot_status", "botId": bot, "status": "stopped", "stopReason": reason}


def stats(bot: str, percent: str) -> dict[str, Any]:
    return {
        "type": "bot_stats",
        "botId": bot,
        "currentProfit": "10",
        "profitPercent": percent,
        "totalTrades": 3,
        "lastExecutedAt": None,
    }


async def publish(
    app: FastAPI, user: User, bot: str, *events: dict[str, Any], message_id: str | None = None
) -> None:
    payload = {"userId": user.user_id, "botId": bot, "events": list(events)}
    await app.state.bus.publish(
        EVENTS_EXCHANGE, user_events_key(user.user_id), payload, message_id=message_id or new_message_id()
    )


async def deliveries(client: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    response = await client.get("/api/notifications/deliveries?limit=100", headers=user.auth)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = exact_json(response)["data"]["deliveries"]
    return found


async def test_a_trade_and_a_stop_reach_the_webhook_signed(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    bot = str(uuid.uuid4())
    async with Receiver() as receiver:
        await configure(client, user, receiver.url, events=["trade", "bot_status"])
        await publish(app, user, bot, trade(bot), {"type": "grid_level", "botId": bot, "level": {}})
        await publish(app, user, bot, stopped(bot))
        await eventually(lambda: len(receiver.received) >= 2, timeout=WAIT, message="no deliveries")
    # No order between notifications is promised (they are handled side by side): picked by their event.
    by_event = {r.headers["x-gridbot-event"]: r for r in receiver.received}
    first, second = by_event["trade"], by_event["bot_status"]
    assert len(receiver.received) == 2
    assert all(verify(SECRET, r) for r in receiver.received)
    assert not verify("another-secret-0000", first)
    body = first.json()
    assert first.headers["x-gridbot-delivery"] == body["deliveryId"]
    assert first.headers["x-gridbot-event"] == "trade" and first.headers["content-type"] == "application/json"
    assert body["event"] == "trade" and body["botId"] == bot and body["userId"] == user.user_id
    # Money as exact JSON numbers, every digit kept.
    assert str(body["data"]["trade"]["price"]) == "51000000.5"
    assert b'"price":51000000.5' in first.body and b'"profit":200.25' in first.body
    status = second.json()
    assert status["event"] == "bot_status" and status["data"]["stopReason"] == "takeProfit"
    shown = await deliveries(client, user)
    assert {(d["event"], d["status"], d["attempts"]) for d in shown} == {
        ("trade", "succeeded", 1),
        ("bot_status", "succeeded", 1),
    }
    assert {d["deliveryId"] for d in shown} == {first.json()["deliveryId"], status["deliveryId"]}


async def test_a_receiver_failing_twice_gets_the_same_delivery_three_times_and_it_succeeds_once(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    bot = str(uuid.uuid4())
    async with Receiver(fail_first=2) as receiver:
        await configure(client, user, receiver.url)
        await publish(app, user, bot, stopped(bot, "stopLoss"))

        async def settled() -> bool:
            return [d["status"] for d in await deliveries(client, user)] == ["succeeded"]

        await eventually(settled, timeout=WAIT, interval=0.1, message="never succeeded")
    ids = [r.headers["x-gridbot-delivery"] for r in receiver.received]
    assert len(ids) == 3 and len(set(ids)) == 1
    (shown,) = await deliveries(client, user)
    assert shown["deliveryId"] == ids[0] and shown["attempts"] == 3 and "lastError" not in shown


@pytest.mark.settings(delivery_max_attempts=3)
async def test_a_delivery_is_dead_after_the_bound_and_never_sent_again(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    bot = str(uuid.uuid4())
    async with Receiver(fail_first=100, fail_status=503) as receiver:
        await configure(client, user, receiver.url)
        await publish(app, user, bot, stopped(bot))

        async def dead() -> bool:
            return [d["status"] for d in await deliveries(client, user)] == ["dead"]

        await eventually(dead, timeout=WAIT, interval=0.1, message="never dead")
        assert await app.state.delivery_worker.run_due() == 0
    (shown,) = await deliveries(client, user)
    assert shown["attempts"] == 3 and shown["lastError"] == "HTTP 503"
    assert len(receiver.received) == 3


async def test_a_redirect_is_never_followed(client: httpx.AsyncClient, user: User, app: FastAPI) -> None:
    async with Receiver(redirect_to="http://169.254.169.254/latest/meta-data/") as receiver:
        await configure(client, user, receiver.url)
        r = await client.post("/api/notifications/test", headers=user.auth)
        assert r.status_code == 202, r.text

        async def failed() -> bool:
            return [d["status"] for d in await deliveries(client, user)] == ["failed"]

        await eventually(failed, timeout=WAIT, interval=0.1, message="never failed")
    (shown,) = await deliveries(client, user)
    assert "not followed" in shown["lastError"] and len(receiver.received) == 1


async def test_a_redelivered_message_adds_nothing_and_a_profit_target_is_told_once_per_bot(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    bot, other = str(uuid.uuid4()), str(uuid.uuid4())
    async with Receiver() as receiver:
        await configure(client, user, receiver.url, profitTargetPercent=5)
        message_id = new_message_id()
        await publish(app, user, bot, stopped(bot), message_id=message_id)
        await publish(app, user, bot, stopped(bot), message_id=message_id)
        await publish(app, user, bot, trade(bot), stats(bot, "4.99"))  # trades: not chosen; below target
        await publish(app, user, bot, stats(bot, "5"))
        await publish(app, user, bot, stats(bot, "7.5"))
        await publish(app, user, other, stats(other, "6"))

        async def four() -> bool:
            shown = await deliveries(client, user)
            return len(shown) == 3 and all(d["status"] == "succeeded" for d in shown)

        await eventually(four, timeout=WAIT, interval=0.1, message="deliveries missing")
    events = sorted((r.json()["event"], r.json().get("botId")) for r in receiver.received)
    assert events == sorted([("bot_status", bot), ("profit_target", bot), ("profit_target", other)])
    target = next(
        r.json()
        for r in receiver.received
        if r.json()["event"] == "profit_target" and r.json()["botId"] == bot
    )
    # Messages are handled several at a time (prefetch 8): whichever figures above the target came first tell it.
    assert (
        target["data"]["profitPercent"] in (5, Decimal("7.5")) and target["data"]["profitTargetPercent"] == 5
    )


async def test_an_invalidated_credential_is_an_error_notification(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    async with Receiver() as receiver:
        await configure(client, user, receiver.url)
        event = CredentialEvent(user_id=user.user_id, exchange=Exchange.UPBIT, reason="rejected_by_exchange")
        await app.state.bus.publish(CREDENTIALS_EXCHANGE, CredentialEventType.INVALIDATED.value, event)
        await eventually(lambda: len(receiver.received) == 1, timeout=WAIT, message="no delivery")
    body = receiver.received[0].json()
    assert body["event"] == "error" and body["data"] == {
        "type": "credential_invalid",
        "exchange": "upbit",
        "reason": "rejected_by_exchange",
    }


async def test_the_test_route_sends_to_every_channel(
    client: httpx.AsyncClient, user: User, new_user: Any
) -> None:
    async with Receiver() as one, Receiver() as two:
        body = {
            "channels": [
                {"type": "webhook", "url": one.url, "secret": SECRET},
                {"type": "webhook", "url": two.url},
            ]
        }
        assert (
            await client.put("/api/notifications/settings", headers=user.auth, json=body)
        ).status_code == 200
        r = await client.post("/api/notifications/test", headers=user.auth)
        assert r.status_code == 202, r.text
        queued = exact_json(r)["data"]["deliveries"]
        assert [d["status"] for d in queued] == ["pending", "pending"]
        await eventually(lambda: len(one.received) == len(two.received) == 1, timeout=WAIT, message="no test")
    assert verify(SECRET, one.received[0]) and "x-gridbot-signature" not in two.received[0].headers
    assert one.received[0].json()["event"] == "test"
    # Another user's deliveries are not this user's.
    stranger = new_user()
    assert await deliveries(client, stranger) == []


async def test_apprise_channels_deliver_through_apprise() -> None:
    async with Receiver() as receiver:
        outcome = await send_apprise(f"json://127.0.0.1:{receiver.port}/hook", "gridbot: test", "hello", 5)
        assert outcome.delivered, outcome
    async with Receiver(fail_first=1) as failing:
        outcome = await send_apprise(f"json://127.0.0.1:{failing.port}/hook", "gridbot: test", "hello", 5)
        assert not outcome.delivered and outcome.retry
    sent = receiver.received[0].json()
    assert sent["title"] == "gridbot: test" and sent["message"] == "hello"


async def test_outside_development_the_target_is_checked_again_at_every_attempt() -> None:
    # A channel saved while its name pointed elsewhere is refused once it leads to a private address.
    sender = WebhookSender(3, allow_private=False)
    try:
        async with Receiver() as receiver:
            for url in (receiver.url, f"http://vm:{receiver.port}/hook"):
                outcome = await sender.send(url, SECRET, str(uuid.uuid4()), "test", b"{}")
                assert not outcome.delivered and not outcome.retry, outcome
                assert outcome.error is not None and "loopback" in outcome.error
        assert receiver.received == []
    finally:
        await sender.close()


@pytest.mark.settings(delivery_timeout_seconds=0.5)
async def test_an_attempt_cut_short_by_a_crash_is_made_again_under_the_same_id(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    worker = app.state.delivery_worker
    async with Receiver() as receiver:
        await configure(client, user, receiver.url)
        await worker.stop()
        queued = exact_json(await client.post("/api/notifications/test", headers=user.auth))["data"][
            "deliveries"
        ]
        # A process claims it and dies before sending: the claim counted the attempt and holds the row.
        (claimed,) = await worker.claim()
        assert str(claimed[0].id) == queued[0]["deliveryId"]
        (held,) = await deliveries(client, user)
        assert (held["status"], held["attempts"]) == ("pending", 1)
        assert await worker.claim() == []  # nobody else takes it while the claim holds
        worker.start()  # another process: it takes the row once the claim has lapsed

        async def succeeded() -> bool:
            return [d["status"] for d in await deliveries(client, user)] == ["succeeded"]

        await eventually(succeeded, timeout=WAIT, interval=0.1, message="never sent again")
    assert [r.headers["x-gridbot-delivery"] for r in receiver.received] == [queued[0]["deliveryId"]]
    (shown,) = await deliveries(client, user)
    assert shown["attempts"] == 2


# --- routing: which engine events reach the notifier's durable queue ---------------------------------------


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The notifier with its lifespan running; its durable queue outlives it."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=20):
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
            yield client


async def publish_stop(bus: Bus, user: User) -> str:
    bot = str(uuid.uuid4())
    payload = {"userId": user.user_id, "botId": bot, "events": [stopped(bot)]}
    await bus.publish(EVENTS_EXCHANGE, user_events_key(user.user_id), payload, message_id=new_message_id())
    return bot


async def kept(bus: Bus) -> int:
    """Messages waiting in the notifier's events queue."""
    depth = (await bus.depths([EVENTS_QUEUE]))[EVENTS_QUEUE]
    assert depth is not None
    return depth.messages


# A queue must outlive its consumer for what it keeps to be counted: RabbitMQ.
on_rabbitmq = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@on_rabbitmq
async def test_only_users_with_a_channel_have_their_events_kept_and_they_are_told_after_a_restart(
    settings: Settings, user: User, new_user: Callable[[], User], engine_bus: Bus
) -> None:
    quiet = new_user()
    async with Receiver() as receiver:
        async with running(settings) as client:
            await configure(client, user, receiver.url, events=["bot_status"])
        # The notifier is down: what the engine publishes now waits in its queue, but only the user's. Theirs
        # is published last, so once it is counted the others would be too (a queue keeps its order).
        await publish_stop(engine_bus, quiet)
        await publish_stop(engine_bus, quiet)
        told = await publish_stop(engine_bus, user)
        await eventually(lambda: kept(engine_bus), timeout=WAIT, message="the user's event was not kept")
        assert await kept(engine_bus) == 1
        async with running(settings) as client:
            await eventually(lambda: len(receiver.received) >= 1, timeout=WAIT, message="not told")
            assert [r.json()["botId"] for r in receiver.received] == [told]
            assert len(await deliveries(client, user)) == 1
            assert await deliveries(client, quiet) == []


@on_rabbitmq
async def test_a_queue_an_earlier_version_bound_to_every_user_keeps_only_users_with_a_channel_after_a_start(
    settings: Settings, user: User, new_user: Callable[[], User], engine_bus: Bus
) -> None:
    quiet = new_user()
    # What earlier notifiers left behind: the durable queue bound to `user.*.events`.
    await engine_bus.declare(EVENTS_QUEUE, EVENTS_EXCHANGE, [user_events_binding()])
    async with Receiver() as receiver:
        async with running(settings) as client:  # its start drops the wildcard; a start finding none is alike
            await configure(client, user, receiver.url, events=["bot_status"])
        await publish_stop(engine_bus, quiet)
        await publish_stop(engine_bus, user)
        await eventually(lambda: kept(engine_bus), timeout=WAIT, message="the user's event was not kept")
        assert await kept(engine_bus) == 1
