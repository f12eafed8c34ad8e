"""The backtest kernel (gridcore.replay) over the shared month of BTC/USDT 1-minute candles.

The month is the shared file as it is: 41,761 candles, 2024-11-30 23:00 to 2024-12-29 23:00 UTC (29 days
and a minute); "per 30 days" figures scale its time by 43,200 / 41,761 candles.

* one grid: 90,000–108,000 USDT at 0.73 % (25 slots), 100 USDT a slot, Binance's BTCUSDT rules, stopAtMax
  off — the fast `replay` and the plain core (`replay_reference`): ms per month-grid (median and min over
  the runs, CPU ms beside wall ms), the ratio, and that both give the same Replay;
* the search for the next candle that can act, the same queries answered three ways: numpy byte masks +
  memchr (what `replay` uses), the obvious numpy (a vectorised compare of the rest of the month, each
  query), and a hand-written Python loop — µs per query and whole replays with each;
* `figures` of that replay;
* a sweep of `--configs` grids (ranges and steps around the month's prices, stopAtMax on for half) on a
  process pool of `--workers`, then on one process: configurations/s, total seconds, and the CPU seconds
  and share of wall time of each process (the parent; each worker's whole process from its fork; the
  fork server, from /proc).

    uv run python bench/backtest_kernel.py [--runs 21] [--reference-runs 5] [--configs 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np

from common.grid import GridError, MarketRules, plan_grid
from common.testing.shared import shared_file
from gridcore.replay import CandleSeries, ReplaySpec, figures, replay, replay_reference, sweep
from gridcore.replay.candles import IntArray
from gridcore.replay.fast import MaskSearch

D = Decimal
MONTH_CANDLES = 30 * 24 * 60


def load() -> tuple[CandleSeries, MarketRules]:
    """The shared candle file and Binance's BTCUSDT rules from the recorded exchangeInfo."""
    with shared_file("data", "binance_BTCUSDT_1m_2024-12.csv").open(newline="") as handle:
        candles = CandleSeries.from_csv_rows(csv.DictReader(handle))
    info = json.loads(shared_file("wire", "binance_exchangeInfo_symbol_BTCUSDT_ccxt.json").read_text())
    market = {"id": "BTCUSDT", "base": "BTC", "quote": "USDT", "maker": 0.001, "taker": 0.001, "info": info}
    return candles, MarketRules.from_ccxt_market(market)


def timed(run: Callable[[], object], runs: int) -> dict[str, float]:
    """Median and min of wall and CPU milliseconds over `runs` runs."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return {
        "median_ms": statistics.median(wall),
        "min_ms": min(wall),
        "cpu_median_ms": statistics.median(cpu),
        "runs": runs,
    }


# --- the search, three ways ------------------------------------------------------------------------------


class Recorder:
    """MaskSearch that also keeps every query, to answer them again with the other searches."""

    queries: ClassVar[list[tuple[int, int, int]]] = []

    def __init__(self, low: IntArray, high: IntArray) -> None:
        self._inner = MaskSearch(low, high)

    def first(self, start: int, below: int, above: int) -> int:
        Recorder.queries.append((start, below, above))
        return self._inner.first(start, below, above)


class NumpySearch:
    """The obvious numpy: compare the rest of the month with both thresholds, take the first hit."""

    def __init__(self, low: IntArray, high: IntArray) -> None:
        self._low, self._high = low, high

    def first(self, start: int, below: int, above: int) -> int:
        hits = np.flatnonzero((self._low[start:] <= below) | (self._high[start:] >= above))
        return int(hits[0]) + start if len(hits) else -1


class LoopSearch:
    """A hand-written Python loop over the candles as lists."""

    def __init__(self, low: IntArray, high: IntArray) -> None:
        self._low, self._high = low.tolist(), high.tolist()

    def first(self, start: int, below: int, above: int) -> int:
        low, high = self._low, self._high
        for index in range(start, len(low)):
            if low[index] <= below or high[index] >= above:
                return index
        return -1


SEARCHES: dict[str, Any] = {"masks+memchr": MaskSearch, "numpy": NumpySearch, "python loop": LoopSearch}


def searches(spec: ReplaySpec, candles: CandleSeries, runs: int) -> dict[str, Any]:
    """µs per query of each search on one replay's queries, and whole replays with each."""
    Recorder.queries = []
    expected = replay(spec, candles, search=Recorder)
    queries = list(Recorder.queries)
    low, high = candles.units()[2], candles.units()[1]
    out: dict[str, Any] = {"queries": len(queries)}
    for name, factory in SEARCHES.items():

        def answer(factory: Any = factory) -> None:
            finder = factory(low, high)  # built inside: the masks' and lists' cost is part of it
            for query in queries:
                finder.first(*query)

        assert replay(spec, candles, search=factory) == expected
        per_month = timed(answer, runs)

        def whole_replay(factory: Any = factory) -> None:
            replay(spec, candles, search=factory)

        whole = timed(whole_replay, max(3, runs // 3))
        out[name] = {
            "us_per_query": round(per_month["median_ms"] * 1000 / max(1, len(queries)), 2),
            "search_ms_per_month": round(per_month["median_ms"], 2),
            "replay_median_ms": round(whole["median_ms"], 1),
            "runs": per_month["runs"],
            "replay_runs": whole["runs"],
        }
    return out


# --- the sweep ---------------------------------------------------------------------------------------------


def configurations(rules: MarketRules, count: int, seed: int = 13) -> list[ReplaySpec]:
    """Grids around the month's prices (90,500–108,400): lower 84k–96k, upper 100k–114k, steps 0.3–2 %."""
    rng = random.Random(seed)
    specs: list[ReplaySpec] = []
    while len(specs) < count:
        lower = D(rng.randrange(84_000, 96_001, 250))
        upper = D(rng.randrange(100_000, 114_001, 250))
        pct = D(rng.randrange(30, 201)) / 100
        try:
            plan = plan_grid(lower, upper, pct, D(100), rules)
        except GridError:
            continue
        specs.append(ReplaySpec(plan.levels, upper, D(100), len(specs) % 2 == 1, rules))
    return specs


def run_sweep(specs: list[ReplaySpec], candles: CandleSeries, workers: int) -> dict[str, Any]:
    """One sweep: wall seconds, configurations/s, and where the CPU went."""
    usage: dict[int, float] = {}
    server_before = forkserver_cpu()
    started, started_cpu = time.perf_counter(), time.process_time()
    results = sweep(specs, candles, workers=workers, usage=usage)
    wall = time.perf_counter() - started
    cpu = {"parent (this process)": time.process_time() - started_cpu}
    if workers > 1:
        # Forkserver workers are the server's children, not ours (getrusage(RUSAGE_CHILDREN) sees none):
        # each reports its own process CPU; the server's own (its import of the kernel) is read from /proc.
        cpu.update({f"worker {pid}": seconds for pid, seconds in sorted(usage.items())})
        cpu["forkserver"] = forkserver_cpu() - server_before
    return {
        "workers": workers,
        "configs": len(results),
        "seconds": round(wall, 2),
        "configs_per_s": round(len(results) / wall, 1),
        "cpu_s": {name: round(seconds, 2) for name, seconds in cpu.items()},
        "cpu_share_of_wall": {name: f"{seconds / wall:.0%}" for name, seconds in cpu.items()},
        "sell_trades_total": sum(f.sell_trades for f in results),
        "best_total_return_percent": str(max(f.total_return_percent for f in results)),
    }


def forkserver_cpu() -> float:
    """CPU seconds of multiprocessing's fork server so far (0 before it starts)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # no public accessor
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    """Run the phases and print their figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=21, help="timed runs of the fast replay")
    parser.add_argument("--reference-runs", type=int, default=5, help="timed runs of the reference")
    parser.add_argument("--configs", type=int, default=1000, help="grids in the sweep")
    parser.add_argument("--workers", type=int, default=2, help="processes of the sweep's pool")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}  CPUs: {os.cpu_count()}", flush=True)

    candles, rules = load()
    scale = MONTH_CANDLES / len(candles)
    plan = plan_grid(D(90_000), D(108_000), D("0.73"), D(100), rules)
    spec = ReplaySpec(plan.levels, D(108_000), D(100), False, rules)
    fast = replay(spec, candles)
    reference = replay_reference(spec, candles)
    fast_t = timed(lambda: replay(spec, candles), args.runs)
    reference_t = timed(lambda: replay_reference(spec, candles), args.reference_runs)
    figures_t = timed(lambda: figures(spec, candles, fast), args.runs)
    result = figures(spec, candles, fast)
    print(
        json.dumps(
            {
                "candles": len(candles),
                "slots": spec.grid_count,
                "trades": len(fast.trades),
                "candles_visited_by_fast_path": fast.visited,
                "same_replay": fast == reference,
                "fast_ms_per_month_grid": {k: round(v, 2) for k, v in fast_t.items()},
                "fast_ms_per_30_days": round(fast_t["median_ms"] * scale, 2),
                "reference_ms_per_month_grid": {k: round(v, 1) for k, v in reference_t.items()},
                "reference_ms_per_30_days": round(reference_t["median_ms"] * scale, 1),
                "reference_over_fast": round(reference_t["median_ms"] / fast_t["median_ms"], 1),
                "figures_ms": {k: round(v, 2) for k, v in figures_t.items()},
                "realised_profit": str(result.realised_profit),
                "total_return_percent": str(result.total_return_percent),
                "max_drawdown_percent": str(result.max_drawdown_percent),
            },
            indent=1,
        ),
        flush=True,
    )
    print(json.dumps({"search": searches(spec, candles, args.runs)}, indent=1), flush=True)

    specs = configurations(rules, args.configs)
    counts = sorted(s.grid_count for s in specs)
    print(
        f"sweep: {len(specs)} grids, slots min/median/max {counts[0]}/{counts[len(counts) // 2]}/{counts[-1]}",
        flush=True,
    )
    for workers in dict.fromkeys((args.workers, 1)):
        print(json.dumps(run_sweep(specs, candles, workers), indent=1), flush=True)


if __name__ == "__main__":
    main()
