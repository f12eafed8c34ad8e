"""The reference replay: every simulated trade of every candle through the paper broker, nothing skipped.

What a paper bot in the live engine sees when the exchange simulator replays these candles:

* The simulator (tools/exchange-sim, `replay.py`, `prices.candle_path`) replays a candle as four trades
  along its path: open → low → high → close when the candle rose or stayed flat (close ≥ open), open →
  high → low → close when it fell. One candle each second by default (a trade every 250 ms).
* market-data publishes at most one price tick per ticker per 100 ms (`conflate.py`); a tick's high/low
  are those of its own trades. At the default pace every trade is alone in its window, so every trade is
  one tick with last = high = low = its price. The engine folds ticks that arrive while a bot's shard is
  busy (`intake/ticks.py`), and `closed_up` is "last above the previous tick's last".
* A backtest assumes that default: one tick per simulated trade, none folded. A faster replay, or an
  engine falling behind, folds several trades into one tick; with single-price ticks no order placed in
  a tick can fill in it, while a folded tick fills only what rested before it, so a folded run can miss
  the round trips its trades would have completed one at a time.
* The bot starts at the first candle's open (`Start(open)`), as a bot started when that trade printed.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext

from gridcore.events import Start, Tick
from gridcore.machine import GridBot
from gridcore.replay.broker import PaperBroker
from gridcore.replay.candles import CandleSeries
from gridcore.replay.types import BACKTEST_BOT_ID, TICK_OFFSETS_MS, Replay, ReplaySpec, Trade
from gridcore.state import ZERO, GridConfig, Phase

Progress = Callable[[int], None]
# Sums of exact money: a rounding anywhere would be a bug, so it raises instead of rounding.
EXACT = Context(prec=80, traps=[Inexact, InvalidOperation])


def new_bot(spec: ReplaySpec) -> GridBot:
    """A stopped core over the spec's grid."""
    config = GridConfig(
        bot_id=BACKTEST_BOT_ID,
        levels=spec.levels,
        upper_price=spec.upper_price,
        rules=spec.rules,
        trigger_price=spec.trigger_price,
        take_profit_price=spec.take_profit_price,
        stop_loss_price=spec.stop_loss_price,
        sell_base_on_stop=spec.sell_base_on_stop,
        trailing_up=spec.trailing_up,
        trailing_up_limit=spec.trailing_up_limit,
        kind=spec.kind,
    )
    return GridBot.new(config, spec.order_amount, spec.stop_at_max)


def candle_path(open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> tuple[Decimal, ...]:
    """The simulator's four trades of a candle: low first when it closed at or above its open."""
    return (open_, low, high, close) if close >= open_ else (open_, high, low, close)


class ProgressMeter:
    """Calls `progress(percent)` once per whole percent of the candles passed (at most 101 calls)."""

    __slots__ = ("_callback", "_next", "_total", "reported")

    def __init__(self, callback: Progress | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self.reported = -1
        self._next = 0  # the first candle index whose passing reports a higher percent

    def passed(self, candles: int) -> None:
        """`candles` candles are behind the replay."""
        if self._callback is None or candles < self._next:
            return
        percent = candles * 100 // self._total
        if percent > self.reported:
            self.reported = percent
            self._callback(percent)
        self._next = -(-(percent + 1) * self._total // 100)  # ceil: the first count reaching percent + 1

    def done(self) -> None:
        """The replay ended: report 100 if it was not yet."""
        if self._callback is not None and self.reported < 100:
            self.reported = 100
            self._callback(100)


def finish(broker: PaperBroker, stopped_at: int | None, visited: int) -> Replay:
    """The Replay of a broker's run."""
    state = broker.bot.state
    with localcontext(EXACT):
        held_qty = sum((slot.holding_qty for slot in state.slots), ZERO)
        held_cost = sum((slot.holding_cost for slot in state.slots), ZERO)
    trades = tuple(
        Trade(now, t.slot, t.side, t.price, t.qty, t.fee, t.fee_currency, t.profit)
        for now, t in broker.trades
    )
    return Replay(
        trades=trades,
        realized_profit=state.realized_profit,
        held_qty=held_qty,
        held_cost=held_cost,
        stop_reason=state.stop_reason if state.phase is not Phase.RUNNING else None,
        stopped_at=stopped_at,
        state=state,
        visited=visited,
    )


def replay_reference(spec: ReplaySpec, candles: CandleSeries, progress: Progress | None = None) -> Replay:
    """Replay the candles through the plain core, one tick per simulated trade (the module doc says why)."""
    bot = new_bot(spec)
    broker = PaperBroker(bot)
    meter = ProgressMeter(progress, len(candles))
    stamps = candles.timestamps.tolist()
    opens, highs, lows, closes = candles.open, candles.high, candles.low, candles.close
    broker.now = stamps[0]
    broker.feed(Start(opens[0]))
    stopped_at = stamps[0] if bot.state.phase is not Phase.RUNNING else None
    previous = opens[0]
    for index, stamp in enumerate(stamps):
        meter.passed(index)
        path = candle_path(opens[index], highs[index], lows[index], closes[index])
        for offset, price in zip(TICK_OFFSETS_MS, path, strict=True):
            broker.tick(Tick(last=price, high=price, low=price, closed_up=price > previous), stamp + offset)
            previous = price
            if stopped_at is None and bot.state.phase is not Phase.RUNNING:
                stopped_at = stamp + offset
    meter.done()
    return finish(broker, stopped_at, len(candles))
