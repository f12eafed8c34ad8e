"""Counters and latency samples of one engine process (read by the bench and the tests)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Metrics:
    """What the engine did since it started."""

    ticks: int = 0  # price ticks consumed
    tick_batches: int = 0  # merged ticks processed (one per ticker worker round)
    transactions: int = 0  # batches committed
    rolled_back: int = 0
    fills: int = 0  # fills applied to a core (committed)
    paper_fills: int = 0  # fills the paper broker made (committed)
    orders_placed: int = 0  # order rows written
    exchange_calls: int = 0
    work_items: int = 0  # units of work committed (over `transactions` batches)
    duplicates: int = 0  # units of work skipped as already handled (their inbox id was recorded)
    commit_seconds: float = 0.0  # time spent in batch transactions
    # Seconds from a price tick's publication to the commit of the orders it caused.
    tick_to_order: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    # Seconds from taking partitions over to driving their bots (load, reconcile, resume).
    takeovers: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    # Stages of such paths, for diagnosis: a paper fill committed (with the orders it caused, in one
    # transaction); a live fill's message received from the bus.
    tick_to_paper_fill: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    tick_to_fill_message: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))

    def reset(self) -> None:
        """Zero every figure (the bench measures one phase at a time)."""
        fresh = Metrics()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
