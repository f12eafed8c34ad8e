"""Orders another process committed as `new` and no exchange has seen: placed only once its request cannot land.

Binance keeps a client order id unique among *open* orders only. A replica paused (GC, SIGSTOP, a network
stall) after signing a placement may send it on waking; if the bot's new owner has meanwhile placed the same
never-seen order itself and it has filled, the exchange would take the old request as a second order. A
signed Binance request is refused once it is older than its `recvWindow` (set by `live/client.py`), so the
new owner places such an order only after it has seen it missing for longer than that, plus a clock margin;
until then it looks again (an owed reconciliation). Orders this process itself tried to place, and Upbit's
(whose `identifier` is unique for good), are placed at once, as before.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from common.exchanges import Exchange

# What our Binance requests declare as recvWindow (Binance's own default), and the clock margin beyond it.
RECV_WINDOW_MS = 5000
CLOCK_MARGIN_SECONDS = 1.0
# How many of our own attempts are remembered (a few per open order; the oldest are forgotten first).
_REMEMBERED = 100_000


class InheritedPlacements:
    """Which never-seen `new` orders may be placed now by this process."""

    def __init__(self, wait_seconds: float = RECV_WINDOW_MS / 1000 + CLOCK_MARGIN_SECONDS) -> None:
        self.wait_seconds = wait_seconds
        self._tried: OrderedDict[str, None] = OrderedDict()
        self._missing_since: dict[str, float] = {}

    def trying(self, cid: str) -> None:
        """This process is about to send the placement itself."""
        self._tried[cid] = None
        self._tried.move_to_end(cid)
        while len(self._tried) > _REMEMBERED:
            self._tried.popitem(last=False)
        self._missing_since.pop(cid, None)

    def may_place(self, exchange: str, cid: str) -> bool:
        """True when a `new` order the exchange has not seen may be placed now; else look again later."""
        if exchange != Exchange.BINANCE.value or cid in self._tried:
            return True
        first = self._missing_since.setdefault(cid, time.monotonic())
        return time.monotonic() - first >= self.wait_seconds
