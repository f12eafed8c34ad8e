"""A private stream on keys the exchange refuses backs off exponentially (capped), across stream objects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from common.exchanges import Exchange, ExchangeSettings
from common.testing.wait import eventually
from engine.live.client import ExchangeFill
from engine.live.credentials import Keys
from engine.live.streams import REJECTED_MAX_BACKOFF, PrivateStream
from exchange_sim import SimServer

REFUSED = 8


class Sleeps:
    """Records every wait a stream asks for and returns at once; `enough` is set after `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.delays: list[float] = []
        self.limit = limit
        self.enough = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.limit:
            self.enough.set()
            await asyncio.Event().wait()  # park the stream here until the test closes it
        await asyncio.sleep(0)


async def _ignore_fill(cid: str, order_id: str, fill: ExchangeFill) -> None:
    return None


async def _ignore_closed(cid: str, order_id: str) -> None:
    return None


def _stream(
    exchange: Exchange, sim: SimServer, keys: Keys, sleep: Sleeps, connected: Callable[[], Awaitable[None]]
) -> PrivateStream:
    settings = ExchangeSettings(**{k.lower(): v for k, v in ExchangeSettings.simulator(sim.url).items()})
    return PrivateStream(
        exchange,
        settings,
        keys,
        on_fill=_ignore_fill,
        on_closed=_ignore_closed,
        on_connected=connected,
        sleep=sleep,
    )


@pytest.mark.parametrize("exchange", [Exchange.BINANCE, Exchange.UPBIT])
async def test_refused_keys_back_off_exponentially_and_a_new_stream_keeps_the_count(
    exchange: Exchange, sim: SimServer
) -> None:
    keys = Keys(f"unknown{exchange.value}".ljust(64, "k"), "s" * 64)  # an account the exchange never had
    reconciliations = 0

    async def connected() -> None:
        nonlocal reconciliations
        reconciliations += 1

    sleeps = Sleeps(REFUSED)
    stream = _stream(exchange, sim, keys, sleeps, connected)
    stream.start()
    try:
        await asyncio.wait_for(sleeps.enough.wait(), 60)
    finally:
        await stream.close()
    assert stream.rejections == REFUSED and reconciliations == 0  # never "connected" on refused keys
    # Each wait is within [d/2, d] for d = 2 s doubling per refusal, up to the cap: never a quick retry.
    for n, delay in enumerate(sleeps.delays, start=1):
        ceiling = min(REJECTED_MAX_BACKOFF, 2.0 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling + 0.5, (n, sleeps.delays)
    assert sleeps.delays[-1] >= 64

    # The engine drops a refused client and makes another: its stream waits out the same backoff first.
    again = Sleeps(1)
    replacement = _stream(exchange, sim, keys, again, connected)
    replacement.start()
    try:
        await asyncio.wait_for(again.enough.wait(), 10)
    finally:
        await replacement.close()
    assert replacement.rejections == 0 and again.delays[0] >= 60


@pytest.mark.parametrize("exchange", [Exchange.BINANCE, Exchange.UPBIT])
async def test_working_keys_connect_at_once(
    exchange: Exchange, sim: SimServer, sim_http: httpx.AsyncClient
) -> None:
    created = (await sim_http.post("/_sim/accounts", json={"balances": {"USDT": "10"}})).json()
    reconciliations = 0

    async def connected() -> None:
        nonlocal reconciliations
        reconciliations += 1

    sleeps = Sleeps(100)
    stream = _stream(exchange, sim, Keys(created["apiKey"], created["secretKey"]), sleeps, connected)
    stream.start()
    try:
        await eventually(lambda: stream.connected and reconciliations == 1, timeout=10)
    finally:
        await stream.close()
    assert sleeps.delays == [] and stream.rejections == 0
