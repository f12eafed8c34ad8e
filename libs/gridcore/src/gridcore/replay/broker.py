"""The live engine's paper bot, without the engine: how one price tick reaches the core.

A transcription of what the engine does with a tick for a paper bot (services/engine; libs never import
services, so it is written out here and must change with it):

* `gridcore.paper.crossed_fills` (which the engine's paper broker calls too): the fills are every resting
  order the tick's path reaches, taken from the book as it was before the tick — buys priced at or above the
  low (highest first), sells at or below the high (lowest first); buys first when the tick closed up, sells
  first otherwise; with stopAtMax and a high at upperPrice nothing after the sells' leg fills. Each fill is
  `gridcore.paper_fill`: whole, at the order's price, with the maker fee.
* `engine.applying.handlers._paper_fills`: every fill of the tick is marked filled, then each is applied
  in order, unless its order is no longer open (`apply_fill`).
* `engine.applying.handlers._tick`: after the fills, the Tick itself goes to the core only when it arms
  an idle slot or triggers stopAtMax (the core's `watch()` after the fills; with grid options also a
  trigger, take-profit, stop-loss or trailing step: `Watch.acts_on`); otherwise the core never sees it,
  so its `last_price` stays where the last event it saw left it.
* Sell base on stop: the core's SellMarket is filled at once, whole, at its price (the last the core saw:
  the trade that stopped the bot) with the taker fee in quote (`gridcore.paper.market_fill`).
* `engine.step.Step.feed`: an event, then the cancel confirmations of a paper exchange, breadth first;
  a cancel of an order already marked filled is left to its fill.
"""

from __future__ import annotations

from gridcore.commands import CancelOrder, RecordTrade, SellMarket
from gridcore.events import Event, OrderCanceled, OrderFilled, OrderRejected, Tick
from gridcore.machine import GridBot
from gridcore.paper import crossed_fills, market_fill

TradeRecord = tuple[int, RecordTrade]


class PaperBroker:
    """Feeds one bot the events a paper bot's ticks cause; collects its trades with their time."""

    __slots__ = ("bot", "filled", "now", "trades")

    def __init__(self, bot: GridBot) -> None:
        self.bot = bot
        self.filled: set[str] = set()  # the engine's BotHandle.paper_filled
        self.trades: list[TradeRecord] = []
        self.now = 0  # ms stamped on the trades of the current tick

    def feed(self, event: Event) -> None:
        """Apply one event, then the cancel confirmations it causes (a paper exchange confirms at once)."""
        bot, queue = self.bot, [event]
        while queue:
            current = queue.pop(0)
            commands = bot.handle(current)
            # The engine's Step._note_closed: an order closed by this event is no longer awaiting its fill.
            if (
                isinstance(current, OrderFilled | OrderCanceled | OrderRejected)
                and bot.open_order(current.client_order_id) is None
            ):
                self.filled.discard(current.client_order_id)
            for command in commands:
                if isinstance(command, RecordTrade):
                    self.trades.append((self.now, command))
                elif isinstance(command, CancelOrder) and command.client_order_id not in self.filled:
                    queue.append(OrderCanceled(command.client_order_id))
                elif isinstance(command, SellMarket):
                    # A stop's market sell: filled at the price of the trade that stopped the bot.
                    queue.append(market_fill(bot, command, command.price))

    def tick(self, tick: Tick, now: int) -> None:
        """One price tick: the paper fills it causes, then the Tick itself when the core needs it."""
        self.now = now
        bot = self.bot
        fills = crossed_fills(bot, tick, self.filled)
        if fills:
            self.filled.update(fill.client_order_id for fill in fills)
            for fill in fills:
                if bot.open_order(fill.client_order_id) is not None:
                    self.feed(fill)
        if bot.watch().acts_on(tick.low, tick.high):
            self.feed(tick)
