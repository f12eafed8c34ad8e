"""Counters and latency samples of one engine process: read in-process by the tests, exported at `GET /metrics`
in Prometheus text format (`EngineCollector`) for operators and the benchmarks that run engines as processes."""

from __future__ import annotations

import asyncio
import gc
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from common.metrics import PREFIX

# Tick→order seconds: 1 ms steps up to 5 ms, 2.5 ms up to 25 ms (the aim), coarser beyond.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.0225, 0.025,
    0.03, 0.035, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Seconds a takeover (or the start's share) spent loading, reconciling and resuming its bots.
TAKEOVER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
LOOP_LAG_INTERVAL = 0.05


async def watch_loop_lag(samples: Samples, interval: float = LOOP_LAG_INTERVAL) -> None:
    """Sleep `interval` again and again, counting how late each wake-up came (runs until cancelled)."""
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        await asyncio.sleep(interval)
        samples.append(max(0.0, loop.time() - began - interval))


def time_full_collections(samples: Samples) -> Callable[[], None]:
    """Count every full garbage collection's duration into `samples`; returns the function that stops it."""
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            samples.append(time.perf_counter() - began[0])

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)


class Histogram:
    """Cumulative bucket counts since the process started (never reset: Prometheus counts only grow)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one sample."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, count of samples ≤ le) pairs, ending with +Inf, as the exposition format wants them."""
        pairs, running = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            pairs.append((bound, float(running)))
        return pairs


class Samples(deque[float]):
    """The most recent samples (for in-process readers), each also counted into a histogram (exported)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS, maxlen: int = 200_000) -> None:
        super().__init__(maxlen=maxlen)
        self.histogram = Histogram(bounds)

    def append(self, value: float) -> None:
        """Keep the sample and count it."""
        super().append(value)
        self.histogram.observe(value)


def _samples(bounds: tuple[float, ...] = LATENCY_BUCKETS, maxlen: int = 200_000) -> Callable[[], Samples]:
    return lambda: Samples(bounds, maxlen)


@dataclass
class Metrics:
    """What the engine did since it started (or since the last `reset()`, for the in-process readers)."""

    ticks: int = 0  # price ticks consumed
    ticks_dropped: int = 0  # unreadable, out of order, or whose bot's work failed for good
    tick_batches: int = 0  # merged ticks processed (one per ticker worker round)
    transactions: int = 0  # batches committed
    rolled_back: int = 0
    fills: int = 0  # fills applied to a core (committed)
    paper_fills: int = 0  # fills the paper broker made (committed)
    orders_placed: int = 0  # order rows written
    orders_cancelled: int = 0  # orders closed as canceled (committed)
    # Orders the exchange (or the grid's own check) refused for good, by the error's kind.
    orders_rejected: dict[str, int] = field(default_factory=dict)
    reconciliations: int = 0  # live bots compared with their exchange's open orders
    reconciliations_incomplete: int = 0  # of those, ended on an exchange error (tried again later)
    adoptions: int = 0  # orders found open at the exchange and taken into a bot's grid
    exchange_calls: int = 0
    work_items: int = 0  # units of work committed (over `transactions` batches)
    duplicates: int = 0  # units of work skipped as already handled (their inbox id was recorded)
    commit_seconds: float = 0.0  # time spent in batch transactions
    # Seconds from a price tick's publication to the commit of the orders it caused.
    tick_to_order: Samples = field(default_factory=_samples())
    # Seconds from taking partitions over to driving their bots (load, reconcile, resume).
    takeovers: Samples = field(default_factory=_samples(TAKEOVER_BUCKETS, 1000))
    # Stages of such paths, for diagnosis: a paper fill committed (with the orders it caused, in one
    # transaction); a live fill's message received from the bus.
    tick_to_paper_fill: Samples = field(default_factory=_samples())
    tick_to_fill_message: Samples = field(default_factory=_samples())
    # How late the event loop woke a task that slept (a stall: a long synchronous step, GC, no CPU).
    loop_lag: Samples = field(default_factory=_samples(LATENCY_BUCKETS, 10_000))
    # How long each full (generation 2) garbage collection held the process.
    gc_full_pause: Samples = field(default_factory=_samples(LATENCY_BUCKETS, 10_000))
    # What `reset()` took out of the counters above, so that the exported totals never go down.
    before_reset: dict[str, float] = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        """Zero every figure the in-process readers see (the bench measures one phase at a time); the
        exported totals and histograms go on counting."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Samples):
                value.clear()
            elif isinstance(value, int | float):
                self.before_reset[f.name] = self.before_reset.get(f.name, 0) + value
                setattr(self, f.name, type(value)())
            elif isinstance(value, dict) and f.name != "before_reset":
                for key, count in value.items():
                    self.before_reset[f"{f.name}:{key}"] = self.before_reset.get(f"{f.name}:{key}", 0) + count
                value.clear()

    def total(self, name: str) -> float:
        """A counter's value since the process started."""
        return float(getattr(self, name)) + self.before_reset.get(name, 0)

    def rejected_totals(self) -> dict[str, float]:
        """Rejected orders by kind since the process started."""
        totals = {
            k.split(":", 1)[1]: v for k, v in self.before_reset.items() if k.startswith("orders_rejected:")
        }
        for kind, count in self.orders_rejected.items():
            totals[kind] = totals.get(kind, 0) + count
        return totals


# Exported counters: (attribute, metric name without _total, help).
_COUNTERS = (
    (
        "ticks",
        "engine_ticks_consumed",
        "Price ticks consumed from the bus (every replica consumes every tick)",
    ),
    (
        "ticks_dropped",
        "engine_ticks_dropped",
        "Price ticks ignored (unreadable, out of order) or whose work failed",
    ),
    ("tick_batches", "engine_tick_batches", "Folded ticks processed (one per ticker worker round)"),
    ("transactions", "engine_transactions", "Batch transactions committed"),
    ("rolled_back", "engine_transactions_rolled_back", "Batch transactions rolled back"),
    ("fills", "engine_fills_committed", "Fills applied to a bot and committed (paper and live)"),
    ("paper_fills", "engine_paper_fills_committed", "Fills the paper broker made, committed"),
    ("orders_placed", "engine_orders_placed", "Order rows written (placed on paper, or to place live)"),
    ("orders_cancelled", "engine_orders_cancelled", "Orders closed as canceled (committed)"),
    ("reconciliations", "engine_reconciliations", "Live bots compared with their exchange's open orders"),
    (
        "reconciliations_incomplete",
        "engine_reconciliations_incomplete",
        "Reconciliations that ended on an exchange error (tried again later)",
    ),
    ("adoptions", "engine_order_adoptions", "Orders found open at the exchange and taken into a grid"),
    ("exchange_calls", "engine_exchange_calls", "Calls made to exchanges"),
    ("work_items", "engine_work_items", "Units of work committed"),
    ("duplicates", "engine_work_duplicates", "Units of work skipped as already handled (inbox)"),
    ("commit_seconds", "engine_batch_seconds", "Seconds spent in batch transactions"),
)
_HISTOGRAMS = (
    ("tick_to_order", "engine_tick_to_order_seconds", "A price tick's publication to the commit of the orders it caused"),
    ("tick_to_paper_fill", "engine_tick_to_paper_fill_seconds", "A price tick's publication to the commit of the paper fills it caused"),
    ("tick_to_fill_message", "engine_tick_to_fill_message_seconds", "A price tick's publication to the receipt of the live fill it led to"),
    ("takeovers", "engine_takeover_seconds", "Loading, reconciling and resuming the bots of partitions taken"),
    ("loop_lag", "engine_event_loop_lag_seconds", "How late the event loop woke a task sleeping 50 ms"),
    ("gc_full_pause", "engine_gc_full_pause_seconds", "How long each full garbage collection took"),
)  # fmt: skip

# Gauges read at scrape time: metric name → (help, reader).
Gauges = Mapping[str, tuple[str, Callable[[], float]]]
# Counters kept elsewhere (the ownership's), read at scrape time: metric name without _total → (help, reader).
Counters = Mapping[str, tuple[str, Callable[[], float]]]
# Rejected orders: labelled by the error's kind (ErrorKind values and "rounding": a bounded set).
REJECTED = "engine_orders_rejected"
GAUGE_NAMES = (
    "engine_bots_driven",
    "engine_partitions_held",
    "engine_partitions_ready",
    "engine_shard_backlog",
    "engine_fills_in_flight",
)
COUNTER_NAMES = ("engine_partitions_gained", "engine_partitions_handed_over", "engine_partitions_lost")


def exported_names() -> set[str]:
    """Every sample name an engine's registry exports (prefixed), for the deploy checks of alerts and dashboards."""
    names = {PREFIX + name + "_total" for _, name, _ in _COUNTERS}
    names |= {PREFIX + name + "_total" for name in (*COUNTER_NAMES, REJECTED)}
    names |= {PREFIX + name for name in GAUGE_NAMES}
    for _, name, _ in _HISTOGRAMS:
        names |= {PREFIX + name + suffix for suffix in ("_bucket", "_count", "_sum")}
    return names


class EngineCollector(Collector):
    """The engine's figures for a prometheus_client registry, read from `Metrics` (and `gauges`) at scrape
    time: the hot paths only bump plain attributes."""

    def __init__(
        self, metrics: Metrics, replica: str, gauges: Gauges | None = None, counters: Counters | None = None
    ) -> None:
        self.metrics = metrics
        self.replica = replica
        self.gauges = dict(gauges or {})
        self.counters = dict(counters or {})

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        """One family per figure (named with the kit's prefix), each labelled with the replica's name."""
        labels = ["replica"]
        for attribute, name, documentation in _COUNTERS:
            counter = CounterMetricFamily(PREFIX + name, documentation, labels=labels)
            counter.add_metric([self.replica], self.metrics.total(attribute))
            yield counter
        for name, (documentation, read) in self.counters.items():
            counter = CounterMetricFamily(PREFIX + name, documentation, labels=labels)
            counter.add_metric([self.replica], float(read()))
            yield counter
        rejected = CounterMetricFamily(
            PREFIX + REJECTED, "Orders refused for good, by the error's kind", labels=[*labels, "reason"]
        )
        for reason, count in sorted(self.metrics.rejected_totals().items()):
            rejected.add_metric([self.replica, reason], count)
        yield rejected
        for attribute, name, documentation in _HISTOGRAMS:
            histogram: Histogram = getattr(self.metrics, attribute).histogram
            family = HistogramMetricFamily(PREFIX + name, documentation, labels=labels)
            family.add_metric([self.replica], histogram.cumulative(), histogram.sum)
            yield family
        for name, (documentation, read) in self.gauges.items():
            gauge = GaugeMetricFamily(PREFIX + name, documentation, labels=labels)
            gauge.add_metric([self.replica], float(read()))
            yield gauge
