"""The shared exchange call budget: what calls cost, bounded waits, refusals, and one budget for many processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.cache import Cache, InMemoryCache, RedisCache
from common.exchanges import (
    Exchange,
    ExchangeBudget,
    ExchangeBudgetExhaustedError,
    ExchangeSettings,
    TransientExchangeError,
    call,
    create_ccxt,
    sim_exchange_env,
    to_app_error,
)
from common.exchanges.budget import (
    BINANCE_WEIGHT,
    UPBIT_EXCHANGE,
    UPBIT_ORDER,
    UPBIT_QUOTATION,
    Bucket,
    Charge,
)
from common.testing.infra import free_port
from exchange_sim import SimServer

T0 = 1_800_000_000.0  # a minute boundary (divisible by 60)


class FakeTime:
    """A clock the budget reads and a sleep that advances it: waits are exact and instant."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Cache]:
    """The cache port's two adapters: the budget must count the same on both."""
    if request.param == "memory":
        yield InMemoryCache(namespace)
        return
    redis = RedisCache(request.getfixturevalue("redis_url"), namespace)
    yield redis
    await redis.close()


def _budget(cache: Cache, clock: FakeTime, wait: float, **limits: int) -> ExchangeBudget:
    buckets = {
        Exchange.BINANCE: (Bucket("weight", limits.get("weight", 100), 60),),
        Exchange.UPBIT: (
            Bucket("quotation", limits.get("quotation", 5), 1),
            Bucket("order", limits.get("order", 2), 1, per_account=True),
        ),
    }
    return ExchangeBudget(cache, max_wait_seconds=wait, buckets=buckets, clock=clock, sleep=clock.sleep)


async def test_a_full_window_waits_for_the_next_one_within_the_bound(cache: Cache) -> None:
    clock = FakeTime(T0 + 10)
    budget = _budget(cache, clock, wait=60, weight=100)
    for _ in range(5):
        await budget.spend(Exchange.BINANCE, [Charge(BINANCE_WEIGHT, 20)])
    assert clock.slept == []
    await budget.spend(Exchange.BINANCE, [Charge(BINANCE_WEIGHT, 20)])  # the sixth waits for the next minute
    assert len(clock.slept) == 1 and T0 + 60 <= clock.now <= T0 + 66
    assert budget.waits == 1


async def test_a_window_out_of_reach_refuses_at_once_as_a_transient_error(cache: Cache) -> None:
    clock = FakeTime(T0 + 10)
    budget = _budget(cache, clock, wait=3, weight=40)
    await budget.spend(Exchange.BINANCE, [Charge(BINANCE_WEIGHT, 40)])
    with pytest.raises(ExchangeBudgetExhaustedError) as refused:
        await budget.spend(Exchange.BINANCE, [Charge(BINANCE_WEIGHT, 1)])
    assert isinstance(refused.value, TransientExchangeError)
    assert refused.value.retry_after == pytest.approx(50)
    assert clock.slept == [] and budget.refusals == 1
    error = to_app_error(refused.value)
    assert (error.status, error.code.value, error.headers) == (
        503,
        "SERVICE_UNAVAILABLE",
        {"Retry-After": "50"},
    )
    assert error.details == {"exchange": "binance", "reason": "exchange_budget"}


async def test_a_refused_call_takes_nothing_from_the_other_buckets(cache: Cache) -> None:
    clock = FakeTime(T0)
    budget = _budget(cache, clock, wait=0, quotation=5, order=1)
    await budget.spend(Exchange.UPBIT, [Charge(UPBIT_ORDER)], "acct")
    for _ in range(3):
        with pytest.raises(ExchangeBudgetExhaustedError):
            await budget.spend(Exchange.UPBIT, [Charge(UPBIT_QUOTATION), Charge(UPBIT_ORDER)], "acct")
    # Another account's orders are its own; the refused attempts gave their quotation units back.
    for _ in range(5):
        await budget.spend(Exchange.UPBIT, [Charge(UPBIT_QUOTATION)], "other")
    with pytest.raises(ExchangeBudgetExhaustedError):
        await budget.spend(Exchange.UPBIT, [Charge(UPBIT_QUOTATION)], "other")


async def test_a_cache_outage_still_bounds_calls_in_this_process() -> None:
    dead = RedisCache(f"redis://127.0.0.1:{free_port()}/0", "budget", socket_connect_timeout=0.5)
    clock = FakeTime(T0)
    budget = _budget(dead, clock, wait=0, weight=3)
    try:
        for _ in range(3):
            await budget.spend(Exchange.BINANCE, [Charge(BINANCE_WEIGHT)])
        with pytest.raises(ExchangeBudgetExhaustedError):
            await budget.spend(Exchange.BINANCE, [Charge(BINANCE_WEIGHT)])
    finally:
        await dead.close()


async def test_ccxt_calls_are_charged_what_the_exchange_counts(
    exchange_settings: ExchangeSettings, new_account: Any
) -> None:
    """Binance: exchangeInfo and /account weigh 20 each, a ticker price 2; Upbit: by group and account."""
    keys = await new_account(USDT="100", KRW="100000")
    cache = InMemoryCache("charged")
    budget = ExchangeBudget(cache, clock=FakeTime(T0))
    index = int(T0 // 60)
    binance = create_ccxt(
        Exchange.BINANCE, exchange_settings, budget=budget, api_key=keys["apiKey"], secret=keys["secretKey"]
    )
    upbit = create_ccxt(
        Exchange.UPBIT, exchange_settings, budget=budget, api_key=keys["apiKey"], secret=keys["secretKey"]
    )
    try:
        await binance.fetch_balance()  # exchangeInfo (20) + account (20)
        await binance.public_get_ticker_price({"symbol": "BTCUSDT"})  # 2
        assert await cache.get(f"xbudget:binance:weight:ip:{index}") == "42"
        await upbit.public_get_ticker({"markets": "KRW-BTC"})
        await upbit.private_get_accounts()
        assert await cache.get(f"xbudget:upbit:quotation:ip:{int(T0)}") == "1"
        account = binance.gridbot_account
        assert account and keys["apiKey"] not in account
        assert await cache.get(f"xbudget:upbit:{UPBIT_EXCHANGE.name}:{account}:{int(T0)}") == "1"
    finally:
        await binance.close()
        await upbit.close()


async def test_a_spent_budget_is_one_prompt_failure_of_call(exchange_settings: ExchangeSettings) -> None:
    budget = ExchangeBudget(
        InMemoryCache(), max_wait_seconds=0, buckets={Exchange.BINANCE: (Bucket("weight", 2, 60),)}
    )
    client = create_ccxt(Exchange.BINANCE, exchange_settings, budget=budget)
    try:
        await call(client.public_get_ticker_price, {"symbol": "BTCUSDT"})
        with pytest.raises(ExchangeBudgetExhaustedError):
            await call(client.public_get_ticker_price, {"symbol": "BTCUSDT"}, attempts=5)
        assert budget.refusals == 1  # not retried: waiting is the budget's business
    finally:
        await client.close()


# One process of the burst: its own budget object on the shared Redis, 2 x LIMIT weight of ticker calls.
_BURST = """
import asyncio, json, os
from common.cache import create_cache
from common.exchanges import Exchange, ExchangeBudget, ExchangeBudgetExhaustedError, ExchangeSettings, create_ccxt

async def main() -> None:
    settings = ExchangeSettings()
    cache = create_cache(os.environ["REDIS_URL"], os.environ["CACHE_NAMESPACE"])
    client = create_ccxt(Exchange.BINANCE, settings, budget=ExchangeBudget.for_settings(cache, settings))
    sent = refused = 0
    try:
        for _ in range(int(os.environ["CALLS"])):
            try:
                await client.public_get_ticker_price({"symbol": "BTCUSDT"})
                sent += 1
            except ExchangeBudgetExhaustedError:
                refused += 1
    finally:
        await client.close()
        await cache.close()
    print(json.dumps({"sent": sent, "refused": refused}))

asyncio.run(main())
"""


async def test_processes_share_one_budget(
    sim: SimServer, http: httpx.AsyncClient, redis_url: str, namespace: str
) -> None:
    """Three processes each try twice the limit: together they never get more than two windows' worth.

    A window boundary may fall inside the burst, so the bound is 2 x LIMIT; budgets of their own would let
    each process send at least LIMIT, 3 x LIMIT in all.
    """
    limit_calls = 10  # ticker/price weighs 2: a weight limit of 20
    env = {
        **os.environ,
        **sim_exchange_env(sim.url),
        "REDIS_URL": redis_url,
        "CACHE_NAMESPACE": namespace,
        "EXCHANGE_BUDGET_LIMITS": json.dumps({"binance.weight": 2 * limit_calls}),
        "EXCHANGE_BUDGET_WAIT_SECONDS": "0",
        "CALLS": str(2 * limit_calls),
    }
    before = (await http.get("/_sim/requests", params={"path_prefix": "/api/v3/ticker/price"})).json()[
        "total"
    ]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _BURST, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [await process.communicate() for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    received = (await http.get("/_sim/requests", params={"path_prefix": "/api/v3/ticker/price"})).json()[
        "total"
    ]
    sent = sum(r["sent"] for r in results)
    assert received - before == sent
    assert limit_calls <= sent <= 2 * limit_calls
    assert sum(r["refused"] for r in results) == 6 * limit_calls - sent


def test_no_service_reaches_an_exchange_around_the_budget() -> None:
    """ccxt is only ever built by common.exchanges.create_ccxt (which charges the budget): no other import."""
    root = Path(__file__).resolve().parents[4]
    allowed = root / "libs" / "common" / "src" / "common" / "exchanges"
    offenders = []
    for source in [*root.glob("services/*/src/**/*.py"), *root.glob("libs/common/src/**/*.py")]:
        if source.is_relative_to(allowed):
            continue
        text = source.read_text(encoding="utf-8")
        if re.search(r"^\s*(import ccxt|from ccxt)", text, re.MULTILINE):
            offenders.append(str(source.relative_to(root)))
    assert offenders == []
