"""What the system refuses, and that a refusal creates nothing, in `make run` and `make dev`: a live bot the
account cannot fund, a live bot whose keys the exchange no longer accepts, and the 11th bot of an hour."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from launcher.testing import (
    System,
    body,
    clients,
    connect_keys,
    move,
    refusal,
    register,
    sim_orders,
    sim_price,
    upbit_buy_qty,
)

pytestmark = pytest.mark.e2e

D = Decimal
EXCHANGE, SYMBOL = "upbit", "KRW-ETH"
UPBIT_FEE = D("0.0005")


def two_slot_grid(price: Decimal, **extra: Any) -> tuple[dict[str, Any], list[Decimal]]:
    """A live grid P0 → 1.1·P0 → 1.21·P0 (10 %: exactly two slots, every level on Upbit's price unit) with
    `price` between its middle and top level, so both buys rest at once; the body and its levels."""
    p0 = (price / D("1.15") / 100000).to_integral_value(rounding="ROUND_DOWN") * 100000
    levels = [p0, p0 * D("1.1"), p0 * D("1.21")]
    assert levels[1] < price < levels[2]
    spec = {
        "exchange": EXCHANGE,
        "ticker": SYMBOL,
        "lowerPrice": int(levels[0]),
        "upperPrice": int(levels[2]),
        "priceChangePercent": 10,
        "orderAmount": 10000,
        "stopAtMax": False,
        "autoStart": True,
        "mode": "live",
        **extra,
    }
    return spec, levels


async def nothing_created(api: httpx.AsyncClient, auth: dict[str, str]) -> bool:
    """The user has no bot at all."""
    listing = body(await api.get("/api/bots", headers=auth))
    return listing["bots"] == [] and listing["summary"]["totalBots"] == 0


async def test_a_live_bot_the_account_cannot_fund_is_refused(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, EXCHANGE, KRW="15000")
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        await move(sim, EXCHANGE, SYMBOL, start)
        spec, levels = two_slot_grid(start)

        r = await api.post("/api/bots", headers=auth, json=spec)
        status, code, details = refusal(r)
        # Both buys lock price·qty·(1+fee) each: just under 20,000 KRW, more than the 15,000 held.
        need = sum(upbit_buy_qty(D(10000), p) * p * (1 + UPBIT_FEE) for p in levels[:2])
        assert (status, code) == (400, "INSUFFICIENT_BALANCE")
        assert details == {"required": need, "available": 15000, "currency": "KRW"}
        assert r.json()["error"]["message"] == "잔액이 부족합니다"
        assert await nothing_created(api, auth)
        assert await sim_orders(sim, api_key, EXCHANGE) == []

        # The same grid stopped (a paper bot needs no funds) is accepted: the refusal was about the money.
        r = await api.post("/api/bots", headers=auth, json={**spec, "mode": "paper", "autoStart": False})
        assert r.status_code == 201, r.text


async def test_a_live_bot_on_keys_the_exchange_revoked_is_refused(system: System, client_ip: str) -> None:
    async with clients(system, client_ip) as (api, sim):
        auth = await register(api)
        api_key = await connect_keys(api, sim, auth, EXCHANGE)
        start = await sim_price(sim, EXCHANGE, SYMBOL)
        await move(sim, EXCHANGE, SYMBOL, start)
        spec, _ = two_slot_grid(start)
        # The owner deletes the key on the exchange: the stored credential no longer opens the account.
        r = await sim.post(f"/_sim/accounts/{api_key}/revoke")
        assert r.status_code == 200, r.text

        r = await api.post("/api/bots", headers=auth, json=spec)
        assert refusal(r) == (400, "INVALID_CREDENTIALS", {"exchange": EXCHANGE})
        assert await nothing_created(api, auth)
        assert await sim_orders(sim, api_key, EXCHANGE) == []
        # The refusal is remembered on the credential, as the exchange's word on those keys.
        shown = body(await api.get(f"/api/credentials/{EXCHANGE}", headers=auth))
        assert shown["isValid"] is False


async def create_until_limited(
    api: httpx.AsyncClient, auth: dict[str, str], spec: dict[str, Any]
) -> list[httpx.Response]:
    """POST /api/bots until one answers 429 (at most 11 times)."""
    answers: list[httpx.Response] = []
    while len(answers) < 11 and (not answers or answers[-1].status_code != 429):
        answers.append(await api.post("/api/bots", headers=auth, json=spec))
    return answers


async def test_the_eleventh_bot_of_an_hour_is_refused(system: System, client_ip: str) -> None:
    spec = {
        "exchange": "upbit",
        "ticker": "KRW-BTC",
        "lowerPrice": 50000000,
        "upperPrice": 70000000,
        "priceChangePercent": 2,
        "orderAmount": 10000,
        "stopAtMax": False,
        "autoStart": False,
        "mode": "paper",
    }
    async with clients(system, client_ip) as (api, _):
        # The hour is a clock-aligned window (shifted per user): a user whose window ends within the next
        # few minutes could see it reset mid-test, so such a user is swapped for another.
        for _ in range(3):
            auth = await register(api)
            first = await api.post("/api/bots", headers=auth, json=spec)
            assert first.status_code == 201, first.text
            if int(first.headers["x-ratelimit-reset"]) - time.time() > 300:
                break
        else:
            pytest.fail("three users in a row had their window end within five minutes")
        assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == ("10", "9")

        answers = [first, *await create_until_limited(api, auth, spec)]
        assert [a.status_code for a in answers] == [201] * 10 + [429]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == [str(9 - i) for i in range(10)] + [
            "0"
        ]
        limited = answers[-1]
        assert refusal(limited)[:2] == (429, "RATE_LIMIT_EXCEEDED")
        assert 0 < int(limited.headers["retry-after"]) <= 3600
        assert limited.headers["x-ratelimit-limit"] == "10"
        listing = body(await api.get("/api/bots", headers=auth))
        assert listing["summary"]["totalBots"] == 10  # the refused one created nothing

        # Per user: someone else creates a bot at once, and the limited user's other routes still answer.
        other = await register(api)
        assert (await api.post("/api/bots", headers=other, json=spec)).status_code == 201
        assert (await api.get("/api/bots", headers=auth)).status_code == 200
