"""Notifications through the gateway, in `make run` and `make dev`: a paper bot's trade and its stop reach a
webhook on this machine signed with the channel's secret; a receiver that fails twice gets the same delivery
three times, and the deliveries route shows it succeeded once. (Both stacks run with ENVIRONMENT=development,
which allows a receiver on loopback; production's refusals are tested in services/notifier.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from common.testing.wait import eventually
from launcher.testing import POLL, System, body, clients, grid_around, move, register, sim_price
from notifier.testing import Receiver, verify

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret-0123456789"
STEP_SECONDS = 20  # a price move to show as a delivery (engine, events exchange, notifier, retry)


async def webhook_to(api: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver, **extra: Any) -> None:
    channels = [{"type": "webhook", "url": receiver.url, "secret": SECRET}]
    r = await api.put("/api/notifications/settings", headers=auth, json={"channels": channels, **extra})
    shown = body(r)
    assert shown["channels"][0]["url"] == receiver.url and SECRET not in r.text


def of(receiver: Receiver, event: str) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.received if r.json()["event"] == event]


@pytest.mark.timeout(4 * STEP_SECONDS + 30, func_only=True)
async def test_a_paper_bots_trade_and_its_stop_reach_the_webhook_signed(
    system: System, client_ip: str
) -> None:
    exchange, symbol = "upbit", "KRW-ETH"
    async with clients(system, client_ip) as (api, sim), Receiver() as receiver:
        auth = await register(api)
        await webhook_to(api, auth, receiver, events=["trade", "bot_status"])
        start = await sim_price(sim, exchange, symbol)
        await move(sim, exchange, symbol, start)  # pinned: the random walk no longer moves it
        bot = body(
            await api.post(
                "/api/bots",
                headers=auth,
                json=grid_around(exchange, symbol, start, "0.05", 1, 10000, mode="paper"),
            )
        )
        bot_id = bot["botId"]
        levels = [
            level["price"]
            for level in body(await api.get(f"/api/bots/{bot_id}/grid-levels", headers=auth))["gridLevels"]
        ]
        buy = max(price for price in levels if price < start)
        # Orders rest once the bot runs; the market then trades down through the highest buy.
        await eventually(
            lambda: _resting(api, auth, bot_id),
            timeout=STEP_SECONDS,
            interval=POLL,
            message="no order rested",
        )
        await move(sim, exchange, symbol, buy)
        await eventually(
            lambda: bool(of(receiver, "trade")),
            timeout=STEP_SECONDS,
            interval=0.2,
            message="no trade delivery",
        )
        trade = of(receiver, "trade")[0]
        assert trade["botId"] == bot_id and trade["data"]["trade"]["type"] == "buy"
        assert trade["data"]["trade"]["price"] == buy  # an exact JSON number
        r = await api.post(f"/api/bots/{bot_id}/stop", headers=auth)
        assert r.status_code == 200, r.text
        await eventually(
            lambda: bool(of(receiver, "bot_status")),
            timeout=STEP_SECONDS,
            interval=0.2,
            message="no stop delivery",
        )
        stopped = of(receiver, "bot_status")[0]
        assert stopped["botId"] == bot_id and stopped["data"]["status"] == "stopped"
        assert stopped["data"]["stopReason"] == "user"
        for received in receiver.received:
            assert verify(SECRET, received), received.headers
            assert received.headers["x-gridbot-delivery"] == received.json()["deliveryId"]
        shown = body(await api.get("/api/notifications/deliveries", headers=auth))["deliveries"]
        delivered = {r.json()["deliveryId"] for r in receiver.received}
        assert {d["deliveryId"] for d in shown if d["status"] == "succeeded"} >= delivered
        await api.delete(f"/api/bots/{bot_id}", headers=auth)


async def _resting(api: httpx.AsyncClient, auth: dict[str, str], bot_id: str) -> bool:
    shown = body(await api.get(f"/api/bots/{bot_id}/grid-levels?status=pending", headers=auth))
    return any(level["type"] == "buy" for level in shown["gridLevels"])


@pytest.mark.timeout(90, func_only=True)
async def test_a_receiver_failing_twice_gets_one_delivery_three_times_and_it_succeeds_once(
    system: System, client_ip: str
) -> None:
    async with clients(system, client_ip) as (api, _), Receiver(fail_first=2) as receiver:
        auth = await register(api)
        await webhook_to(api, auth, receiver)
        queued = body(await api.post("/api/notifications/test", headers=auth))["deliveries"]
        assert [(d["status"], d["attempts"]) for d in queued] == [("pending", 0)]
        delivery_id = queued[0]["deliveryId"]

        async def succeeded() -> bool:
            shown = body(await api.get("/api/notifications/deliveries", headers=auth))["deliveries"]
            return [(d["deliveryId"], d["status"]) for d in shown] == [(delivery_id, "succeeded")]

        # Two failures: the retries wait about 2 s and 4 s (DELIVERY_RETRY_BASE_SECONDS, jittered).
        await eventually(succeeded, timeout=60, interval=POLL, message="the delivery never succeeded")
        (shown,) = body(await api.get("/api/notifications/deliveries", headers=auth))["deliveries"]
    assert [r.headers["x-gridbot-delivery"] for r in receiver.received] == [delivery_id] * 3
    assert all(verify(SECRET, r) for r in receiver.received)
    assert shown["attempts"] == 3 and shown["event"] == "test" and "lastError" not in shown
