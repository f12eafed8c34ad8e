"""The sockets' cost measured in pairs on one stack: `bench/api_load.py --ws-paired N`.

Two separate runs (one without sockets, one with) differ in more than the sockets: each starts its own stack,
and this machine's pace drifts by more than the difference sought (runs alone ranged 14–20 ms p99 in one hour).
Here one stack, one set of users and one polling schedule serve both conditions: after the warm-up, 2N phases
alternate without and with every user's `/api/ws` open, ordered off, on, on, off, off, on, … (or the mirror
image, `--first-on`) so that a steady drift weighs on both alike. The market's own activity is not steady (the
simulator replays real candles: some phases see more fills than others, and more work in every service), so
many short phases beat a few long ones, and a run in each order (same seed, same replay) pools best. A phase
opens (or closes) the sockets, leaves `SETTLE_SECONDS` for the handshakes (or the unbinds) to pass, then
measures. The requests scheduled in the measured parts of the phases are pooled
by condition; the change from off to on is the sockets' share of the figures. Not a benchmark by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

from dashboard import Sockets, User, price_bursts, start_polling
from loadkit import Recorder, summary
from prockit import CpuMeter, CpuSlices, write_timeline

from launcher.dev import Stack

# Seconds after the sockets open or close that no condition counts: the handshakes (a token check, a
# binding on the bus and a bots lookup each) or the unbinds are the switch's cost, not the steady state's.
# 100 sockets open in well under a second, and their bots lookups are done within another.
SETTLE_SECONDS = 3.0
# A condition's processes' CPU shares are printed for these, and for any process above this share.
NAMED = ("gateway", "bench client", "bench sockets")
SHOWN_SHARE = 0.05


def order(pairs: int, first_on: bool = False) -> list[bool]:
    """Whether the sockets are open in each phase: off, on, on, off, off, on, … (2·pairs phases), or the
    mirror image (on, off, off, on, …) when `first_on`."""
    return [((k % 4) in (1, 2)) != first_on for k in range(2 * pairs)]


@dataclass
class Phase:
    """One measured part of a phase: its condition, its window (loop time) and its processes' CPU."""

    on: bool
    start: float
    end: float
    cpu: dict[str, Any] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    prices: list[float] = field(default_factory=list)
    closed: dict[str, int] = field(default_factory=dict)  # sockets the server closed, by code and reason


async def _until(when: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, when - loop.time()))


async def measure_paired(
    args: argparse.Namespace, stack: Stack, users: list[User], database: str
) -> dict[str, Any]:
    """Warm-up, then the alternating phases: latencies pooled by condition, pair by pair, and CPU shares."""
    port = stack.port("gateway")
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    plan = order(args.ws_paired, args.first_on)
    first = start + args.warmup
    step = SETTLE_SECONDS + args.phase
    end = first + len(plan) * step
    rec = Recorder(first, end)
    rec.timeline = []
    rng = random.Random(args.seed)
    pollers = start_polling(users, port, start, end, args.rate, rng, rec)
    names = {popen.pid: key for key, popen in stack.processes.items()} | {os.getpid(): "bench client"}
    phases: list[Phase] = []
    late: list[float] = []
    await _until(first)
    # --timeline: every request and each process's CPU in 50-ms slices over all the phases (the sockets'
    # process is not among them: a new one opens with each phase).
    slices = CpuSlices(CpuMeter(database), dict(names)) if args.timeline else None
    if slices is not None:
        slices.start()
    for k, on in enumerate(plan):
        boundary = first + k * step
        phase = Phase(on, boundary + SETTLE_SECONDS, boundary + step)
        sockets = await Sockets.open(port, users, args.sockets_nice) if on else None
        if sockets is not None:
            names[sockets.pid] = "bench sockets"
            await sockets.window(phase.start, phase.end)
        # Opening 100 sockets must fit in the settle time, else the phase would measure the handshakes.
        late.append(max(0.0, loop.time() - phase.start))
        await _until(phase.start)
        meter = CpuMeter(database)
        await asyncio.to_thread(meter.start)
        await _until(phase.end)
        phase.cpu = await asyncio.to_thread(meter.read, names)
        if sockets is not None:
            counted = await sockets.stop()
            phase.events, phase.prices, phase.closed = counted["events"], counted["prices"], counted["closed"]
        phases.append(phase)
    await asyncio.gather(*pollers)
    if slices is not None:
        cut = await asyncio.to_thread(slices.stop)
        windows = [{"on": p.on, "start": round(p.start, 4), "end": round(p.end, 4)} for p in phases]
        write_timeline(args.timeline, rec.timeline, cut, windows)
    return {"phases": phases, "timeline": rec.timeline, "errors": dict(rec.errors), "late_s": max(late)}


def _pooled(
    phases: list[Phase], timeline: list[tuple[float, float, str]], on: bool
) -> dict[str, list[float]]:
    """Latencies (s) by route and `overall` of the requests scheduled in the measured parts of one condition."""
    windows = [(p.start, p.end) for p in phases if p.on is on]
    found: dict[str, list[float]] = {"overall": []}
    for scheduled, latency, route in timeline:
        if any(a <= scheduled < b for a, b in windows):
            found.setdefault(route, []).append(latency)
            found["overall"].append(latency)
    return found


def _change(before: float, after: float) -> str:
    return f"{(after - before) / before:+.0%}" if before else "n/a"


def _shares(phases: list[Phase], on: bool) -> dict[str, float]:
    """Mean CPU share (1.00 = one core) by process over one condition's measured parts."""
    chosen = [p.cpu for p in phases if p.on is on]
    seconds = sum(c["seconds"] for c in chosen)
    spent: dict[str, float] = {}
    for c in chosen:
        for name, cpu in c["cpu_s"].items():
            spent[name] = spent.get(name, 0.0) + cpu
    return {name: cpu / seconds for name, cpu in spent.items()}


def _busy(phases: list[Phase], on: bool) -> float:
    """The machine's busy share of all its cores over one condition's measured parts."""
    chosen = [p.cpu for p in phases if p.on is on]
    busy: float = sum(c["machine_busy_share"] * c["seconds"] for c in chosen)
    seconds: float = sum(c["seconds"] for c in chosen)
    return busy / seconds


def paired_report(result: dict[str, Any]) -> list[str]:
    """The paired figures as text: pooled by condition, per route, pair by pair, CPU by condition."""
    paired: dict[str, Any] = result["paired"]
    phases: list[Phase] = paired["phases"]
    timeline = paired["timeline"]
    seconds = sum(p.end - p.start for p in phases if not p.on)
    off, on = _pooled(phases, timeline, False), _pooled(phases, timeline, True)
    lines = [
        f"api_load --ws-paired: {result['users']} users x {result['rate_per_user']:g} req/s (offered "
        f"{result['offered_rps']:g} req/s) on one stack, {len(phases)} phases after a {result['warmup_s']:g} s "
        f"warm-up: sockets {', '.join('on' if p.on else 'off' for p in phases[:4])}, …, each measured "
        f"{phases[0].end - phases[0].start:g} s after "
        f"{SETTLE_SECONDS:g} s to settle (the sockets opened at most {paired['late_s']:.1f} s late into it)",
        "",
        f"{'route':<42} {'samples off/on':>15} {'p50 ms off/on':>15} {'p90 ms off/on':>15} "
        f"{'p99 ms off/on':>15} {'p99 change':>10}",
    ]
    for route in [*sorted(set(off) - {"overall"}), "overall"]:
        a = summary(off.get(route, []), seconds, 0)
        b = summary(on.get(route, []), seconds, 0)
        if route == "overall":
            lines.append("-" * 117)
        lines.append(
            f"{route:<42} {a['samples']:>7}/{b['samples']:<7} {a['p50_ms']:>7}/{b['p50_ms']:<7} "
            f"{a['p90_ms']:>7}/{b['p90_ms']:<7} {a['p99_ms']:>7}/{b['p99_ms']:<7} "
            f"{_change(a['p99_ms'], b['p99_ms']):>10}"
        )
    a, b = summary(off["overall"], seconds, 0), summary(on["overall"], seconds, 0)
    lines.append(
        f"overall change with the sockets: p50 {_change(a['p50_ms'], b['p50_ms'])}, "
        f"p90 {_change(a['p90_ms'], b['p90_ms'])}, p99 {_change(a['p99_ms'], b['p99_ms'])}"
    )
    pairs = []
    ratios = []
    for k in range(0, len(phases), 2):
        two = phases[k : k + 2]
        p99 = {p.on: summary(_pooled([p], timeline, p.on)["overall"], 1, 0)["p99_ms"] for p in two}
        pairs.append(f"{p99[False]}/{p99[True]} ({_change(p99[False], p99[True])})")
        if p99[False]:
            ratios.append(p99[True] / p99[False])
    lines.append(f"p99 ms off/on, pair by pair: {'; '.join(pairs)}")
    if ratios:
        # One spiky 12-s phase moves the pooled p99 of a run; the pairs' median change is what most pairs saw.
        lines.append(
            f"the pairs' median p99 change: {statistics.median(ratios) - 1:+.0%} ({len(ratios)} pairs)"
        )
    events: dict[str, int] = {}
    prices: list[float] = []
    for p in phases:
        prices += p.prices
        for kind, n in p.events.items():
            events[kind] = events.get(kind, 0) + n
    bursts = price_bursts(prices)
    closed = sum(sum(p.closed.values()) for p in phases)
    lines.append(
        f"socket events received in the measured parts: {sum(events.values())} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(events.items()))}); prices in the same 10 ms: "
        f"busiest {bursts['max']}, p99 {bursts['p99']}; closed by the server: {closed or 'none'}"
    )
    lines.append(
        f"CPU share by condition (1.00 = one core), off → on; the machine {_busy(phases, False):.0%} → "
        f"{_busy(phases, True):.0%} busy over all its cores:"
    )
    cpu_off, cpu_on = _shares(phases, False), _shares(phases, True)
    shown = [
        name
        for name in sorted(set(cpu_off) | set(cpu_on), key=lambda n: -cpu_on.get(n, 0.0))
        if name in NAMED or max(cpu_off.get(name, 0), cpu_on.get(name, 0)) >= SHOWN_SHARE
    ]
    lines.append(
        "  "
        + "  ".join(f"{name} {cpu_off.get(name, 0.0):.3f} → {cpu_on.get(name, 0.0):.3f}" for name in shown)
    )
    errors = paired["errors"]
    lines.append(
        "errors: none"
        if not errors
        else "errors: " + ", ".join(f"{r} {c}: {n}" for (r, c), n in errors.items())
    )
    return lines
