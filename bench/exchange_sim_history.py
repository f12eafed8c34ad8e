"""Exchange simulator start-up with a long history: time to ready and memory, then a backtest's fetch.

Starts `python -m exchange_sim` as its own process (paused replay) once per sample and history length,
measures the time from spawn until /_sim/health answers, the process's CPU time and resident memory (RSS,
and its peak) at that point, then pages the whole BTCUSDT 1-minute history through /api/v3/klines (1000 a
page, as a backtest does) and measures that too.

    uv run python bench/exchange_sim_history.py [--samples 3] [--history 1440,41761] [--port PORT]

History lengths above the candle file's are clamped by the simulator to the whole file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from common.testing.infra import free_port

MINUTE_MS = 60_000


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB: resident now, and its peak."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def one_run(history: int, port: int) -> dict[str, float]:
    """Start a simulator, wait for it, page its history; the figures of that run."""
    env = {
        **os.environ,
        "SIM_PORT": str(port),
        "SIM_HISTORY_MINUTES": str(history),
        "SIM_REPLAY_SPEED": "0",
        "SIM_LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "exchange_sim"], env=env)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the simulator exited with {proc.returncode}")
                try:
                    if http.get("/_sim/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
            ready = time.perf_counter() - started
            cpu_ready = cpu_seconds(proc.pid)
            rss_ready, _ = memory_mib(proc.pid)
            # (A simulator from before historyMinutes was reported: the history asked for.)
            minutes = http.get("/_sim/replay").json().get("historyMinutes", history)
            fetch_started = time.perf_counter()
            since, candles, pages = 0, 0, 0
            while True:
                params = {"symbol": "BTCUSDT", "interval": "1m", "startTime": since, "limit": 1000}
                page = http.get("/binance/api/v3/klines", params=params).json()
                if not page:
                    break
                pages += 1
                candles += len(page)
                since = page[-1][0] + MINUTE_MS
            fetch = time.perf_counter() - fetch_started
            assert candles == minutes, (candles, minutes)
            rss_after, peak = memory_mib(proc.pid)
            return {
                "history": minutes,
                "ready_s": ready,
                "cpu_ready_s": cpu_ready,
                "rss_ready_mib": rss_ready,
                "fetch_s": fetch,
                "pages": pages,
                "rss_after_fetch_mib": rss_after,
                "peak_rss_mib": peak,
                "cpu_total_s": cpu_seconds(proc.pid),
            }
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    """Run the samples and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--history", default="1440,41761", help="comma-separated SIM_HISTORY_MINUTES values")
    parser.add_argument("--port", type=int, default=0, help="the simulator's port (default: a free one)")
    args = parser.parse_args()
    port = args.port or free_port()
    print(
        f"exchange simulator start-up and history fetch ({args.samples} samples each, {os.cpu_count()} CPUs)"
    )
    for history in (int(h) for h in args.history.split(",")):
        runs = [one_run(history, port) for _ in range(args.samples)]

        def figure(key: str, runs: list[dict[str, float]] = runs) -> str:
            values = [run[key] for run in runs]
            return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"

        ready_share = statistics.median(r["cpu_ready_s"] / r["ready_s"] for r in runs)
        print(
            f"\nSIM_HISTORY_MINUTES={history}: {int(runs[0]['history'])} minutes of history per market, 8 markets"
        )
        print(f"  ready (spawn -> /_sim/health 200) s: {figure('ready_s')}; CPU share {ready_share:.0%}")
        print(f"  RSS at ready MiB:                   {figure('rss_ready_mib')}")
        print(
            f"  fetch whole BTCUSDT history s:       {figure('fetch_s')} ({int(runs[0]['pages'])} klines pages)"
        )
        print(
            f"  RSS after the fetch MiB:            {figure('rss_after_fetch_mib')}; peak {figure('peak_rss_mib')}"
        )


if __name__ == "__main__":
    main()
