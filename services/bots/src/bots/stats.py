"""Trading figures computed from the trades table only: per-bot totals, and the performance of API.md.

Money is summed as Decimal: on PostgreSQL by SQL over NUMERIC (exact), on SQLite in Python (money is text
there, so SQL would sum it as floats); both feed the same `TradeStats.add`, so every caller sees one path.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from common.contracts.public import profit_percent
from common.exchanges import Exchange, quote_currency
from trading.models import OrderSide, Trade

ZERO = Decimal(0)
CENT = Decimal("0.01")
# Derived money figures (ratios, marks to market) are given to 8 decimals, the finest quote unit in use.
MONEY_STEP = Decimal("0.00000001")
SECONDS_PER_DAY = 86_400


def base_asset(exchange: Exchange, ticker: str) -> str:
    """The base asset of a native ticker: KRW-BTC → BTC (Upbit), BTCUSDT → BTC (Binance)."""
    if exchange is Exchange.UPBIT:
        return ticker.split("-", 1)[-1]
    quote = quote_currency(exchange)
    return ticker[: -len(quote)] if ticker.endswith(quote) else ticker


@dataclass
class SideTotals:
    """Sums over one side's fills; fees split by the asset they were charged in."""

    count: int = 0
    amount: Decimal = ZERO
    total: Decimal = ZERO
    fee_quote: Decimal = ZERO
    fee_base: Decimal = ZERO
    profit: Decimal = ZERO


@dataclass
class TradeStats:
    """One bot's trades, summed."""

    buys: SideTotals = field(default_factory=SideTotals)
    sells: SideTotals = field(default_factory=SideTotals)
    last_executed_at: datetime | None = None

    @property
    def count(self) -> int:
        """Every fill, buys and sells."""
        return self.buys.count + self.sells.count

    @property
    def realized_profit(self) -> Decimal:
        """Σ profit of the sells: completed round trips net of both fees."""
        return self.sells.profit

    @property
    def held_base(self) -> Decimal:
        """Base bought (net of fees taken in base) and not sold yet."""
        return self.buys.amount - self.buys.fee_base - self.sells.amount - self.sells.fee_base

    @property
    def held_cost(self) -> Decimal:
        """What the held base cost: all buys' quote spent minus the cost of what was sold.

        A sell's cost is what it received net of its quote fee minus its profit (profit = net − cost).
        """
        spent = self.buys.total + self.buys.fee_quote
        sold_cost = self.sells.total - self.sells.fee_quote - self.sells.profit
        return spent - sold_cost

    def add(
        self,
        side: str,
        fee_kind: str,
        count: int,
        amount: Decimal,
        total: Decimal,
        fee: Decimal,
        profit: Decimal,
        last: datetime | None,
    ) -> None:
        """Fold one group of fills (one side, one fee asset) in."""
        target = self.buys if side == OrderSide.BUY.value else self.sells
        target.count += count
        target.amount += amount
        target.total += total
        if fee_kind == "quote":
            target.fee_quote += fee
        elif fee_kind == "base":
            target.fee_base += fee
        # A fee in a third asset (e.g. BNB) changes neither the base held nor the quote spent.
        if side == OrderSide.SELL.value:
            target.profit += profit
        if last is not None and (self.last_executed_at is None or last > self.last_executed_at):
            self.last_executed_at = last


def fee_kind(fee_currency: str, quote: str, base: str) -> str:
    """Which asset a fee was charged in: the bot's quote, its base, or another one (e.g. BNB)."""
    currency = fee_currency.upper()
    return "quote" if currency == quote else "base" if currency == base else "other"


async def trade_stats(
    session: AsyncSession, bots: Sequence[tuple[uuid.UUID, Exchange, str]]
) -> dict[uuid.UUID, TradeStats]:
    """Totals per bot (id, exchange, ticker) from its trades; bots without trades get empty totals."""
    stats = {bot_id: TradeStats() for bot_id, _, _ in bots}
    if not bots:
        return stats
    assets = {bot_id: (quote_currency(ex), base_asset(ex, ticker).upper()) for bot_id, ex, ticker in bots}
    ids = list(stats)
    if session.get_bind().dialect.name == "postgresql":
        grouped = await session.execute(
            select(
                Trade.bot_id,
                Trade.side,
                Trade.fee_currency,
                func.count(),
                func.sum(Trade.amount),
                func.sum(Trade.total),
                func.sum(Trade.fee),
                func.sum(Trade.profit),
                func.max(Trade.executed_at),
            )
            .where(Trade.bot_id.in_(ids))
            .group_by(Trade.bot_id, Trade.side, Trade.fee_currency)
        )
        rows: Iterable[Any] = grouped.all()
    else:
        plain = await session.execute(
            select(
                Trade.bot_id,
                Trade.side,
                Trade.fee_currency,
                Trade.amount,
                Trade.total,
                Trade.fee,
                Trade.profit,
                Trade.executed_at,
            ).where(Trade.bot_id.in_(ids))
        )
        rows = ((b, s, c, 1, a, t, f, p, e) for b, s, c, a, t, f, p, e in plain.all())
    for bot_id, side, fee_currency, count, amount, total, fee, profit, last in rows:
        quote, base = assets[bot_id]
        stats[bot_id].add(
            side,
            fee_kind(fee_currency, quote, base),
            int(count),
            amount or ZERO,
            total or ZERO,
            fee or ZERO,
            profit or ZERO,
            last,
        )
    return stats


# Fee × price and the sums of a day: wide enough never to round (money is NUMERIC(38, 18)).
_EXACT = Context(prec=100)


@dataclass
class DayTotals:
    """One UTC day of a bot's trades: realised profit, fill counts and fees in the quote currency."""

    day: date
    profit: Decimal = ZERO
    buys: int = 0
    sells: int = 0
    fees: Decimal = ZERO

    def add(
        self, side: str, fee_kind: str, count: int, fee: Decimal, fee_value: Decimal, profit: Decimal
    ) -> None:
        """Fold one group of fills in: `fee_value` is Σ fee × price (what a fee in base is worth in quote)."""
        if side == OrderSide.BUY.value:
            self.buys += count
        else:
            self.sells += count
            self.profit = _EXACT.add(self.profit, profit)
        if fee_kind == "quote":
            self.fees = _EXACT.add(self.fees, fee)
        elif fee_kind == "base":
            # Valued at the fill's own price: what the fee cost when it was taken.
            self.fees = _EXACT.add(self.fees, fee_value)
        # A fee in a third asset (e.g. BNB) has no price here: left out of `fees` (docs/api-additions.md).


async def daily_stats(
    conn: AsyncConnection,
    bot: tuple[uuid.UUID, Exchange, str],
    since: datetime | None,
    until: datetime | None,
) -> list[DayTotals]:
    """The bot's trades executed in [since, until) summed per UTC day, oldest first (days without trades
    left out). One range scan of ix_trades_bot_id_executed_at; PostgreSQL groups, SQLite sums in Python."""
    bot_id, exchange, ticker = bot
    quote, base = quote_currency(exchange), base_asset(exchange, ticker).upper()
    conditions = [Trade.bot_id == bot_id]
    if since is not None:
        conditions.append(Trade.executed_at >= since)
    if until is not None:
        conditions.append(Trade.executed_at < until)
    if conn.dialect.name == "postgresql":
        # A literal, not a bound parameter: GROUP BY must repeat the SELECT's expression exactly.
        day = func.date(func.timezone(literal_column("'UTC'"), Trade.executed_at))
        grouped = await conn.execute(
            select(
                day,
                Trade.side,
                Trade.fee_currency,
                func.count(),
                func.sum(Trade.fee),
                func.sum(Trade.fee * Trade.price),
                func.sum(Trade.profit),
            )
            .where(*conditions)
            .group_by(day, Trade.side, Trade.fee_currency)
        )
        rows: Iterable[Any] = grouped.all()
    else:
        plain = await conn.execute(
            select(
                Trade.executed_at, Trade.side, Trade.fee_currency, Trade.fee, Trade.price, Trade.profit
            ).where(*conditions)
        )
        rows = (
            (at.date(), side, currency, 1, fee, _EXACT.multiply(fee, price), profit)
            for at, side, currency, fee, price, profit in plain.all()
        )
    days: dict[date, DayTotals] = {}
    for day_of, side, fee_currency, count, fee, fee_value, profit in rows:
        totals = days.setdefault(day_of, DayTotals(day_of))
        totals.add(
            side,
            fee_kind(fee_currency, quote, base),
            int(count),
            Decimal(fee or ZERO),
            Decimal(fee_value or ZERO),
            Decimal(profit or ZERO),
        )
    for totals in days.values():
        # NUMERIC sums carry the column's scale: 10.200000… is written 10.2.
        totals.profit, totals.fees = totals.profit.normalize(_EXACT), totals.fees.normalize(_EXACT)
    return [days[d] for d in sorted(days)]


def money(value: Decimal) -> Decimal:
    """A derived money figure to 8 decimals."""
    return value.quantize(MONEY_STEP, rounding=ROUND_HALF_UP).normalize()


def running_days(first_started_at: datetime | None, now: datetime) -> int:
    """Whole days since the first start, at least 1."""
    if first_started_at is None:
        return 1
    return max(1, math.floor((now - first_started_at).total_seconds() / SECONDS_PER_DAY))


def performance(
    stats: TradeStats,
    investment: Decimal,
    current_price: Decimal | None,
    first_started_at: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """The figures of GET /bots/:id/performance (API.md), as Decimals and ints."""
    total_profit = stats.realized_profit
    sells = stats.sells.count
    held = stats.held_base
    if held == 0:
        unrealized = -stats.held_cost
    elif current_price is None:
        raise ValueError("a price is needed to value held base")
    else:
        unrealized = held * current_price - stats.held_cost
    days = running_days(first_started_at, now)
    return {
        "totalProfit": total_profit,
        "profitPercent": profit_percent(total_profit, investment),
        "totalTrades": stats.count,
        "buyTrades": stats.buys.count,
        "sellTrades": sells,
        "avgProfitPerTrade": money(total_profit / sells) if sells else ZERO,
        "investmentAmount": investment,
        "currentValue": money(investment + total_profit + unrealized),
        "runningDays": days,
        "dailyAvgProfit": (total_profit / days).quantize(CENT, rounding=ROUND_HALF_UP),
    }
