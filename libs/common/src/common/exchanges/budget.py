"""One budget of exchange calls per exchange, shared by every request, process and replica.

Every REST call a ccxt client of ours makes is charged here first (see `ccxt_client.create_ccxt`), in
clock-aligned fixed windows counted in the cache (Redis shared by every process; memory:// in the one-process
mode). A call that finds a window full waits for the next one while that is within `max_wait_seconds`,
else fails at once as `ExchangeBudgetExhaustedError`, a transient exchange error (503 to a user, a retry with
backoff for the engine).

The figures (docs/runbook.md, "Exchange call budget") are half of what each exchange publishes. Half is what
makes a fixed window safe: any span of one window's length overlaps at most two of ours, so nothing we send
can exceed the published limit in ANY such span, whatever the exchange's own window alignment.

* Binance spot (per IP): REQUEST_WEIGHT 6000 per minute -> 3000. A call weighs what Binance charges for its
  endpoint; ccxt's endpoint costs are those weights / 5 (its 50 ms rateLimit spreads 6000 over a minute).
  Per account: ORDERS 50 per 10 s -> 25, and 160,000 per day -> 80,000 (each order placement).
* Upbit: quotation (public) 10/s per IP -> 5/s; exchange API 30/s per account -> 15/s; orders
  (POST /v1/orders) 8/s per account (12/s since 2026-08) -> 4/s.

Accounts are told apart by a hash of the API key (the key itself never reaches the cache). When the cache
fails, the budget is kept in this process alone (still bounded, per process) rather than refusing every call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from common.cache import Cache, CacheError, InMemoryCache
from common.exchanges.errors import ExchangeBudgetExhaustedError
from common.exchanges.ids import Exchange
from common.exchanges.limits import (
    BINANCE_ORDERS,
    BINANCE_ORDERS_DAY,
    BINANCE_WEIGHT,
    BUCKETS,
    UPBIT_EXCHANGE,
    UPBIT_ORDER,
    UPBIT_QUOTATION,
    Bucket,
)
from common.exchanges.settings import ExchangeSettings

log = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Charge:
    """What one call takes from one bucket."""

    bucket: Bucket
    amount: int = 1


# ccxt's Binance costs are weight / 5 (rateLimit 50 ms: 1200 cost units a minute for 6000 weight).
_BINANCE_WEIGHT_PER_COST = 5
_BINANCE_ORDER_PATHS = frozenset({"order", "order/oco", "orderList/oco", "orderList/oto", "orderList/otoco"})
_UPBIT_ORDER_PATHS = frozenset({"orders", "orders/cancel_and_new"})


def charges(exchange: Exchange, api: object, method: str, path: str, cost: float) -> list[Charge]:
    """What a ccxt REST call (its api section, HTTP method, path and ccxt cost) takes from the budget."""
    section = api if isinstance(api, str) else "/".join(str(part) for part in api)  # type: ignore[attr-defined]
    method = method.upper()
    if exchange is Exchange.BINANCE:
        weight = max(1, math.ceil(round(float(cost) * _BINANCE_WEIGHT_PER_COST, 6)))
        taken = [Charge(BINANCE_WEIGHT, weight)]
        if method == "POST" and path in _BINANCE_ORDER_PATHS:
            taken += [Charge(BINANCE_ORDERS), Charge(BINANCE_ORDERS_DAY)]
        return taken
    if section == "public":
        return [Charge(UPBIT_QUOTATION)]
    if method == "POST" and path in _UPBIT_ORDER_PATHS:
        return [Charge(UPBIT_ORDER)]
    return [Charge(UPBIT_EXCHANGE)]


def account_id(api_key: str | None) -> str | None:
    """The cache's name for an account: a short hash of its API key (None for public calls)."""
    if not api_key:
        return None
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class _Window:
    key: str
    ttl: float
    ends_at: float


class ExchangeBudget:
    """Charges calls against per-exchange buckets in the cache; waits (bounded) for room, else refuses."""

    @classmethod
    def for_settings(cls, cache: Cache, settings: ExchangeSettings) -> ExchangeBudget:
        """The budget in `cache` with EXCHANGE_BUDGET_LIMITS applied, waiting at most EXCHANGE_BUDGET_WAIT_SECONDS."""
        overrides = settings.exchange_budget_limits
        buckets = {
            exchange: tuple(
                dataclasses.replace(
                    bucket, limit=overrides.get(f"{exchange.value}.{bucket.name}", bucket.limit)
                )
                for bucket in found
            )
            for exchange, found in BUCKETS.items()
        }
        return cls(cache, max_wait_seconds=settings.exchange_budget_wait_seconds, buckets=buckets)

    def __init__(
        self,
        cache: Cache,
        *,
        max_wait_seconds: float = 5.0,
        buckets: dict[Exchange, tuple[Bucket, ...]] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cache = cache
        self.max_wait_seconds = max_wait_seconds
        self._limits = {
            exchange: {bucket.name: bucket for bucket in found}
            for exchange, found in (buckets or BUCKETS).items()
        }
        self._clock = clock
        self._sleep = sleep
        self._local = InMemoryCache("xbudget-local", clock=clock)
        self._last_warning = 0.0
        self.waits = 0
        self.refusals = 0

    def _bucket(self, exchange: Exchange, bucket: Bucket) -> Bucket:
        # Tests (and a deployment with its own table) replace the figures by bucket name.
        return self._limits.get(exchange, {}).get(bucket.name, bucket)

    def _window(self, exchange: Exchange, bucket: Bucket, account: str | None, now: float) -> _Window:
        index = int(now // bucket.window_seconds)
        who = (account or "-") if bucket.per_account else "ip"
        key = f"xbudget:{exchange.value}:{bucket.name}:{who}:{index}"
        ends_at = (index + 1) * bucket.window_seconds
        return _Window(key, ends_at - now + 1.0, ends_at)

    async def _incr(self, key: str, amount: int, ttl: float) -> int:
        try:
            return await self.cache.incr(key, amount, ttl_seconds=ttl)
        except CacheError as exc:
            self._warn(exc)
            return await self._local.incr(key, amount, ttl_seconds=ttl)

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("exchange budget cache unavailable, counting in this process only: %r", exc)

    async def _try(
        self, exchange: Exchange, taken: Sequence[Charge], account: str | None
    ) -> tuple[Bucket, float] | None:
        """Take every charge, or none of them: None, or the full bucket and when its window ends."""
        now = self._clock()
        done: list[tuple[_Window, int]] = []
        refused: tuple[Bucket, float] | None = None
        for charge in taken:
            bucket = self._bucket(exchange, charge.bucket)
            window = self._window(exchange, bucket, account, now)
            # A call heavier than a whole window (a small EXCHANGE_BUDGET_LIMITS) takes a whole window.
            amount = min(charge.amount, bucket.limit)
            count = await self._incr(window.key, amount, window.ttl)
            done.append((window, amount))
            if count > bucket.limit:
                refused = (bucket, window.ends_at)
                break
        if refused is not None:
            # Give back what this attempt took (the TTL again, in case the window just expired).
            for window, amount in done:
                await self._incr(window.key, -amount, window.ttl)
        return refused

    async def spend(self, exchange: Exchange, taken: Sequence[Charge], account: str | None = None) -> None:
        """Take `taken` from the exchange's budget, waiting for room up to max_wait_seconds."""
        if not taken:
            return
        deadline = self._clock() + self.max_wait_seconds
        while True:
            refused = await self._try(exchange, taken, account)
            if refused is None:
                return
            bucket, ends_at = refused
            now = self._clock()
            # Waiters spread over the first tenth of the next window instead of all landing at its start.
            wake = ends_at + random.uniform(0, bucket.window_seconds / 10)  # noqa: S311 - jitter
            if wake > deadline:
                self.refusals += 1
                raise ExchangeBudgetExhaustedError(exchange.value, bucket.name, max(0.0, ends_at - now))
            self.waits += 1
            await self._sleep(max(0.0, wake - now))
