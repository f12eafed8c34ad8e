"""Many grids over the same candles: `replay` + `figures` per spec, spread over a process pool.

The candles go to each worker once (the pool's initializer), as their integer columns (a month is about
1.3 MB pickled); the specs go in chunks, the figures come back in the specs' order. The workers start from
a fork server, so, as with any spawn or forkserver pool, the calling program's main module must be
importable without side effects (the `if __name__ == "__main__":` idiom).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from gridcore.replay.candles import CandleSeries
from gridcore.replay.fast import replay
from gridcore.replay.figures import BacktestFigures, figures
from gridcore.replay.reference import Progress
from gridcore.replay.types import ReplaySpec

# Specs per task at most: enough that a task's pickling and scheduling cost little beside its replays
# (~25 ms each), few enough that the last tasks of the workers end close together.
CHUNK = 8

_candles: CandleSeries | None = None


def _init(candles: CandleSeries | None) -> None:
    global _candles
    _candles = candles


def _run(specs: Sequence[ReplaySpec]) -> tuple[int, float, float, list[BacktestFigures]]:
    """(pid, CPU seconds of this chunk, of the whole process so far, the chunk's figures)."""
    assert _candles is not None
    started = time.process_time()
    out = [figures(spec, _candles, replay(spec, _candles)) for spec in specs]
    now = time.process_time()
    return os.getpid(), now - started, now, out


def sweep(
    specs: Sequence[ReplaySpec],
    candles: CandleSeries,
    workers: int | None = None,
    *,
    progress: Progress | None = None,
    usage: dict[int, float] | None = None,
) -> list[BacktestFigures]:
    """The figures of every spec's replay over the candles, in the specs' order.

    `workers`: processes (default: one per CPU; 1 runs here, without a pool). `progress(percent)` is called
    as chunks complete. `usage`, when given, receives pid → CPU seconds: a pool worker's whole process
    (from its fork, start-up included) as of its last chunk; this process's, the CPU of its chunks only.
    """
    count = len(specs)
    workers = max(1, min(workers or os.cpu_count() or 1, count))
    # At least four chunks per worker, so a small sweep is spread too and the workers end together.
    size = max(1, min(CHUNK, -(-count // (4 * workers))))
    chunks = [specs[i : i + size] for i in range(0, count, size)]
    results: list[list[BacktestFigures]] = [[] for _ in chunks]
    done = 0

    def record(
        index: int, pid: int, chunk_cpu: float, process_cpu: float, out: list[BacktestFigures]
    ) -> None:
        nonlocal done
        results[index] = out
        if usage is not None:
            if pid == os.getpid():
                usage[pid] = usage.get(pid, 0.0) + chunk_cpu
            else:
                usage[pid] = max(usage.get(pid, 0.0), process_cpu)
        done += len(out)
        if progress is not None:
            progress(done * 100 // count)

    if workers == 1:
        _init(candles)
        try:
            for index, chunk in enumerate(chunks):
                record(index, *_run(chunk))
        finally:
            _init(None)
    else:
        # forkserver: safe in a process with threads (an asyncio worker's), and cheaper than spawn.
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has imported the kernel (numpy included) once.
        context.set_forkserver_preload(["gridcore.replay.sweep"])
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(candles,)) as pool:
            futures = {pool.submit(_run, chunk): index for index, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                record(futures[future], *future.result())
    return [figure for chunk in results for figure in chunk]
