"""Takeover after SIGKILL, and taking partitions back after a restart, with two engine replicas trading.

Two replicas (engine-1, engine-2; real processes) drive N paper bots over 20 tickers while ticks flow at
market-data's pace (one per ticker per 100 ms) with moves that cross levels, so every partition's bots place
orders all the time. Then, `--kills` times, alternating the victim:

* SIGKILL one replica; takeover = from the kill to the first order or trade committed (its `created_at`,
  the writer's clock just before its commit) by a bot of the killed replica's partitions, which only the
  survivor can have written; and, the honest figure, from the kill to the moment ALL of them are driven
  again: the survivor reports every partition ready (loaded, reconciled, resumed: its
  `gridbot_engine_partitions_ready` gauge, polled every 50 ms) and, read from the rows, the first order or
  trade of the last of the killed replica's partitions to trade again (of those that traded in the 10 s
  before the kill: a market the price left alone may not trade for a minute, takeover or not). Also when the survivor's claim of
  those partitions was seen in `engine_partitions` (detection: the heartbeat goes stale after
  ENGINE_REPLICA_TTL_SECONDS), and what the survivor's `gridbot_engine_takeover_seconds` says its load +
  reconcile + resume took;
* restart it at once under the same ENGINE_ID, as a supervisor would (after the takeover above); handback =
  from the spawn to both replicas holding, loaded, their shares (the restarted one driving all its bots
  again), and to its bots' first order after it claimed them back. The new process's own start
  (interpreter, imports, connections) is inside those figures and reported apart (spawn → /metrics answers).

Where the CPU went from the kill to the survivor's "all ready" (`/proc`: the survivor, the bench, the tick
publisher, PostgreSQL, RabbitMQ, the rest of the shared machine) is printed beside each kill's figures.
`--profile DIR` records the survivor with py-spy over the same window (DIR/kill-<n>-<survivor>.txt,
collapsed stacks) to see where its takeover's time goes.

    uv run python bench/takeover.py [--bots 10000] [--kills 10] [--quick] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench/ goes to the end of the path: bench/engine.py must not shadow the `engine` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import asyncpg  # noqa: E402
from enginekit import (  # noqa: E402
    Market,
    PriceCache,
    TickStream,
    create_database,
    drop_database,
    plain,
    seed,
    send_starts,
)
from enginereplicas import (  # noqa: E402
    Replica,
    Replicas,
    bots_per_replica,
    engine_env,
    merge_delta,
    tick_to_order,
    worst,
)
from prockit import CpuMeter  # noqa: E402

from common.testing.infra import DEFAULT_POSTGRES, DEFAULT_RABBITMQ, DEFAULT_REDIS  # noqa: E402
from trading.models import ENGINE_PARTITIONS  # noqa: E402
from trading.partitions import partition_of  # noqa: E402

FIRST_ACTIVITY = """
SELECT least(
    (SELECT min(created_at) FROM bots.orders WHERE bot_id = ANY($1::uuid[]) AND created_at > $2),
    (SELECT min(created_at) FROM bots.trades WHERE bot_id = ANY($1::uuid[]) AND created_at > $2))
"""
# Per partition (a bot's partition is its id's bits 64-69: byte 7 of the uuid mod 64, as partition_of).
FIRST_ACTIVITY_BY_PARTITION = """
SELECT get_byte(uuid_send(bot_id), 7) % 64 AS partition, min(created_at) AS first FROM (
    SELECT bot_id, created_at FROM bots.orders WHERE bot_id = ANY($1::uuid[]) AND created_at > $2
    UNION ALL
    SELECT bot_id, created_at FROM bots.trades WHERE bot_id = ANY($1::uuid[]) AND created_at > $2) AS a
GROUP BY 1
"""
# Per partition, the longest stretch without an order or trade in the window [$2, $3] (its edges included):
# how long the partition's market leaves it alone anyway, with no takeover in the way.
LONGEST_QUIET_BY_PARTITION = """
SELECT partition, extract(epoch FROM max(gap)) AS longest FROM (
    SELECT partition, coalesce(lead(at) OVER w, $3) - at AS gap FROM (
        SELECT get_byte(uuid_send(bot_id), 7) % 64 AS partition, created_at AS at FROM bots.orders
        WHERE bot_id = ANY($1::uuid[]) AND created_at BETWEEN $2 AND $3
        UNION ALL
        SELECT get_byte(uuid_send(bot_id), 7) % 64, created_at FROM bots.trades
        WHERE bot_id = ANY($1::uuid[]) AND created_at BETWEEN $2 AND $3
        UNION ALL
        SELECT p, $2 FROM unnest($4::int[]) AS p) AS a
    WINDOW w AS (PARTITION BY partition ORDER BY at)) AS b
GROUP BY 1
"""
AFTER_READY_S = 5.0
OWNED = "SELECT partition FROM bots.engine_partitions WHERE owner = $1 ORDER BY partition"
CLAIMED = "SELECT count(*) FROM bots.engine_partitions WHERE partition = ANY($1::int[]) AND owner = $2"
CLAIMED_AT = (
    "SELECT max(updated_at) FROM bots.engine_partitions WHERE partition = ANY($1::int[]) AND owner = $2"
)


async def poll(probe: Any, within: float, what: str, interval: float = 0.05) -> Any:
    """The first truthy result of `probe()` (polled), or TimeoutError naming `what`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = await probe()
        if result:
            return result
        await asyncio.sleep(interval)
    raise TimeoutError(what)


class Takeover:
    """What a kill is measured with besides the rows: a CPU meter, the tick publisher's pid, a profiler."""

    def __init__(self, database: str, publisher: int | None, profile: Path | None) -> None:
        self.database = database
        self.publisher = publisher
        self.profile = profile
        self.kills = 0

    def names(self, group: Replicas) -> dict[int, str]:
        """Pid → name of the processes the CPU meter names."""
        names = {os.getpid(): "bench", **{r.pid: r.name for r in group.all if r.alive}}
        if self.publisher is not None:
            names[self.publisher] = "tick publisher"
        return names

    async def profiler(self, survivor: Replica) -> asyncio.subprocess.Process | None:
        """py-spy recording the survivor (until interrupted), when --profile asked for it."""
        if self.profile is None:
            return None
        spy = shutil.which("py-spy") or str(Path.home() / ".local/bin/py-spy")
        self.kills += 1
        out = self.profile / f"kill-{self.kills}-{survivor.name}.txt"
        return await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(survivor.pid), "--format", "raw", "--rate", "200",
            "--output", str(out), "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip


async def stop_profiler(spy: asyncio.subprocess.Process | None) -> None:
    """Stop py-spy; it writes its file on SIGINT."""
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(spy.wait(), 30)
    except TimeoutError:
        spy.kill()
        await spy.wait()


async def kill_once(
    conn: asyncpg.Pool,
    group: Replicas,
    victim: Replica,
    bots: dict[int, list[uuid.UUID]],
    settled_at: datetime,
    takeover: Takeover,
) -> dict[str, Any]:
    """SIGKILL `victim`, time the survivor's takeover, restart the victim, time it taking its share back
    (`settled_at`: since when the victim has driven its share without a break)."""
    survivor = next(r for r in group.all if r is not victim)
    parts = [int(p) for p in await conn.fetchval(f"SELECT array({OWNED})", victim.name)]
    ids = [b for p in parts for b in bots.get(p, [])]
    with_bots = {p for p in parts if bots.get(p)}
    # The survivor's tick→order over the same span before the kill, against the span after "all ready".
    steady_from = await survivor.scrape()
    await asyncio.sleep(AFTER_READY_S)
    before = await survivor.scrape()
    all_bots = [b for p in sorted(bots) for b in bots[p]]
    # Partitions whose bots placed or traded nothing in the 10 s before the kill: their market was quiet,
    # so their first order after the takeover says little about the takeover.
    recent = await conn.fetch(FIRST_ACTIVITY_BY_PARTITION, ids, datetime.now(UTC) - timedelta(seconds=10))
    quiet_before = sorted(with_bots - {int(r["partition"]) for r in recent})
    killed_at = datetime.now(UTC)
    # How long each partition went without an order in the (up to) 60 s before the kill, since the last
    # handback: a first order after the takeover later than `ready` + this says the partition was not
    # driven (its ticks missing), one within it is the market's own quiet.
    window = max(killed_at - timedelta(seconds=60), settled_at)
    stretches = await conn.fetch(LONGEST_QUIET_BY_PARTITION, ids, window, killed_at, sorted(with_bots))
    quiet_for = {int(r["partition"]): float(r["longest"]) for r in stretches}
    names = takeover.names(group)
    spy = await takeover.profiler(survivor)
    meter = CpuMeter(takeover.database)
    meter.start()
    victim.kill()
    assert victim.process is not None
    await victim.process.wait()
    # Only what was committed after the victim is gone is the survivor's: a commit of the victim's in flight
    # at the kill is stamped after `killed_at` (its clock is read just before the commit) and used to show
    # as a takeover in 0.0 s.
    dead_at = datetime.now(UTC)

    async def claimed_by_survivor() -> float | None:
        count = await conn.fetchval(CLAIMED, parts, survivor.name)
        return time.time() if count == len(parts) else None

    async def first_activity(since: datetime) -> datetime | None:
        value: datetime | None = await conn.fetchval(FIRST_ACTIVITY, ids, since)
        return value

    cpu: dict[str, Any] = {}
    later: list[asyncio.Task[dict[str, float]]] = []

    async def after_ready(page: dict[str, float]) -> dict[str, float]:
        await asyncio.sleep(AFTER_READY_S)
        return tick_to_order([await survivor.scrape()], [page])

    async def all_ready() -> float | None:
        # Two replicas: the survivor holds every partition once it took the victim's over.
        page = await survivor.scrape()
        if page.get("gridbot_engine_partitions_ready") != ENGINE_PARTITIONS:
            return None
        at = time.time()
        later.append(asyncio.create_task(after_ready(page)))
        cpu.update(meter.read(names))
        await stop_profiler(spy)
        return at

    firsts: dict[int, datetime] = {}

    async def every_partition_traded() -> datetime | None:
        rows = await conn.fetch(FIRST_ACTIVITY_BY_PARTITION, ids, dead_at)
        firsts.update({int(r["partition"]): r["first"] for r in rows})
        # Only the partitions that traded before the kill: a quiet market's next order says nothing of
        # the takeover (it may come a minute later either way).
        active = with_bots - set(quiet_before)
        return max((firsts[p] for p in active), default=killed_at) if active <= set(firsts) else None

    async def every_partition_traded_or_none() -> datetime | None:
        # A market the walk left alone for a minute is the market's quiet, not a failed takeover (the
        # survivor's gauge says whether it was driven): reported as missing, and the run goes on.
        try:
            traded: datetime = await poll(every_partition_traded, 60, "", 0.1)
        except TimeoutError:
            return None
        return traded

    claimed, first, ready, last = await asyncio.gather(
        poll(claimed_by_survivor, 60, "the survivor never claimed the partitions"),
        poll(lambda: first_activity(dead_at), 60, "no bot of the killed replica traded again"),
        poll(all_ready, 60, "the survivor never had every partition ready"),
        every_partition_traded_or_none(),
    )
    after = await survivor.scrape()
    result: dict[str, Any] = {
        "victim": victim.name,
        "bots": len(ids),
        "partitions": len(parts),
        "partitions_with_bots": len(with_bots),
        "takeover_s": round((first - killed_at).total_seconds(), 2),
        "all_ready_s": round(ready - killed_at.timestamp(), 2),
        **({} if last is None else {"all_traded_s": round((last - killed_at).total_seconds(), 2)}),
        "active_never_traded_within_60s": sorted(with_bots - set(quiet_before) - set(firsts)),
        "claimed_s": round(claimed - killed_at.timestamp(), 2),
        "first_order_by_partition_s": {
            p: round((at - killed_at).total_seconds(), 1)
            for p, at in sorted(firsts.items(), key=lambda x: x[1])
        },
        "quiet_before_kill": quiet_before,
        # Active partitions whose first order after the kill came later than the survivor's "all ready"
        # plus the longest stretch the partition went without one in the minute before the kill:
        # {partition: [first order s, longest quiet stretch before s]}.
        "late_beyond_own_quiet": {
            p: [round((at - killed_at).total_seconds(), 1), round(quiet_for.get(p, 0.0), 1)]
            for p, at in sorted(firsts.items())
            if p not in quiet_before
            and (at - killed_at).total_seconds() > ready - killed_at.timestamp() + quiet_for.get(p, 0.0)
        },
        "quiet_window_s": round((killed_at - window).total_seconds(), 1),
        "longest_quiet_before_kill_s": {
            p: round(quiet_for[p], 1) for p in sorted(with_bots - set(quiet_before)) if p in quiet_for
        },
        "survivor_load_s": round(
            after["gridbot_engine_takeover_seconds_sum"]
            - before.get("gridbot_engine_takeover_seconds_sum", 0),
            2,
        ),
        # What a shorter TTL would have to survive: the survivor's worst event-loop stall (a 50 ms sleeper
        # waking late) and full collection while it took over; a heartbeat waits for both.
        "survivor_loop_lag_worst_bucket_ms": worst_ms(after, before, "gridbot_engine_event_loop_lag_seconds"),
        "survivor_gc_full_worst_bucket_ms": worst_ms(after, before, "gridbot_engine_gc_full_pause_seconds"),
        # The survivor's tick→order in the AFTER_READY_S after "all ready" (each bot taken over pays its
        # first event's load there when held dormant) and in as long before the kill.
        "survivor_tick_to_order_after_ready": await later[0],
        "survivor_tick_to_order_before_kill": tick_to_order([before], [steady_from]),
        # From the kill to "all ready": the survivor's share of a core, and where the machine's CPU went.
        "survivor_cpu_share": round(cpu["cpu_s"].get(survivor.name, 0.0) / cpu["seconds"], 2),
        "cpu_until_ready": cpu,
    }

    spawned_at = time.time()
    await victim.spawn()
    answering = await poll(lambda: _answers(victim), 60, "the restarted replica never answered", 0.02)
    result["restart_answering_s"] = round(answering - spawned_at, 2)
    try:
        await group.wait_split(all_bots, within=120)
    except TimeoutError as exc:
        # Reported, not raised: the replicas' own logs say why (see `warnings`).
        result["handback_error"] = str(exc)
        return result
    result["handback_s"] = round(time.time() - spawned_at, 2)
    back = [int(p) for p in await conn.fetchval(f"SELECT array({OWNED})", victim.name)]
    reclaimed: datetime = await conn.fetchval(CLAIMED_AT, back, victim.name)
    back_ids = [b for p in back for b in bots.get(p, [])]

    async def first_activity_back() -> datetime | None:
        value: datetime | None = await conn.fetchval(FIRST_ACTIVITY, back_ids, reclaimed)
        return value

    again = await poll(first_activity_back, 60, "the restarted replica's bots never traded")
    result["restart_first_order_s"] = round(again.timestamp() - spawned_at, 2)
    return result


def worst_ms(after: dict[str, float], before: dict[str, float], name: str) -> float | None:
    """The upper bound (ms) of the highest bucket a histogram counted between two scrapes; None if none."""
    bound = worst(merge_delta([after], [before], name))
    return None if math.isnan(bound) else round(bound * 1000, 1)


def warnings(replica: Replica, lines: int = 8) -> list[str]:
    """The last warnings of a replica's current log."""
    found = [
        line[:240] for line in replica.tail(200_000).splitlines() if " WARNING " in line or " ERROR " in line
    ]
    return found[-lines:]


async def _answers(replica: Replica) -> float | None:
    return time.time() if await replica.scrape() else None


def spread(values: list[float], unit: str = " s") -> str:
    """p50 / max of a list."""
    return f"p50 {statistics.median(values):.2f}{unit}, max {max(values):.2f}{unit}"


async def main(args: argparse.Namespace, logs: Path) -> None:
    """Two replicas, bots, ticks flowing; the kills; the figures."""
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    url = await create_database(args.postgres)
    prices = PriceCache(args.redis, namespace)
    await prices.start()
    group = Replicas(engine_env(url, args.redis, args.rabbitmq, namespace), logs, 2)
    profile = Path(args.profile) if args.profile else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    stream: TickStream | None = None
    try:
        await group.start()
        await group.wait_split()
        rng = random.Random(args.bots)
        seeded = await seed(url, args.bots, rng)
        by_partition: dict[int, list[uuid.UUID]] = {}
        for bot in seeded:
            by_partition.setdefault(partition_of(bot.id), []).append(bot.id)
        await send_starts(args.rabbitmq, namespace, seeded)
        await group.wait_split(b.id for b in seeded)
        print(
            "bots per replica:",
            json.dumps(bots_per_replica((b.id for b in seeded), group.shares)),
            "partitions:",
            json.dumps({name: len(parts) for name, parts in group.shares.items()}),
            flush=True,
        )
        await group.wait_quiet(url)
        stream = TickStream(args.rabbitmq, namespace, Market(rng))
        stream.start(200, args.latency_move * 1000 / args.bots)
        takeover = Takeover(url.rsplit("/", 1)[1], stream.process.pid, profile)
        # A pool: the takeover's figures are polled side by side.
        conn = await asyncpg.create_pool(plain(url), min_size=1, max_size=4)
        results = []
        # Since when each replica has driven, without a break, the share it holds: the start, or its restart
        # (the survivor of a kill keeps driving its own partitions through it).
        settled_at = dict.fromkeys((r.name for r in group.all), datetime.now(UTC))
        try:
            for n in range(args.kills):
                await asyncio.sleep(args.pause)
                victim = group.all[n % 2]
                result = await kill_once(conn, group, victim, by_partition, settled_at[victim.name], takeover)
                settled_at[victim.name] = datetime.now(UTC)
                result["load_average_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps(result), flush=True)
                results.append(result)
                if "handback_error" in result:
                    for replica in group.all:
                        print(f"{replica.name}'s last warnings:", *warnings(replica), sep="\n  ", flush=True)
                    break
        finally:
            await conn.close()
        print(
            f"{len(results)} SIGKILLs, {args.bots} bots on 2 replicas, each victim restarted after the takeover:"
        )
        for key, label in (
            ("takeover_s", "kill → first order/trade of its bots (survivor)"),
            ("all_ready_s", "kill → ALL its partitions ready (survivor)"),
            ("all_traded_s", "kill → the last of its active partitions trades"),
            ("claimed_s", "kill → survivor's claim seen"),
            ("survivor_load_s", "survivor's load + reconcile + resume"),
            ("survivor_cpu_share", "survivor's CPU share, kill → all ready"),
            ("restart_answering_s", "restart → process answers /metrics"),
            ("handback_s", "restart → partitions back, loaded"),
            ("restart_first_order_s", "restart → first order of its bots (restarted)"),
        ):
            values = [r[key] for r in results if key in r]
            unit = " s" if key.endswith("_s") else ""
            shown = spread(values, unit) if values else "-"
            print(f"  {label:<48} {shown} ({len(values)} of {len(results)})")
        for key, label in (
            (
                "survivor_tick_to_order_before_kill",
                f"survivor's tick→order, {AFTER_READY_S:.0f} s before the kill",
            ),
            (
                "survivor_tick_to_order_after_ready",
                f"survivor's tick→order, {AFTER_READY_S:.0f} s after all ready",
            ),
        ):
            figures = [r[key] for r in results if key in r]
            if figures:
                p50s = ", ".join(f"{f['p50_ms']}/{f['p99_ms']} ({f['samples']:.0f})" for f in figures)
                print(f"  {label:<48} p50/p99 ms (samples) per kill: {p50s}")
        busy = [r["cpu_until_ready"]["machine_busy_share"] for r in results if "cpu_until_ready" in r]
        if busy:
            print(
                f"  {'machine busy, kill → all ready':<48} {spread(busy, '')} ({len(busy)} of {len(results)})"
            )
    finally:
        if stream is not None:
            await stream.stop()
        await group.stop()
        await prices.stop()
        await drop_database(args.postgres, url)


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bots", type=int, default=10000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of steady trading before each kill")
    parser.add_argument("--latency-move", type=float, default=0.0005, help="tick move σ at 1,000 bots")
    parser.add_argument("--quick", action="store_true", help="2,000 bots, 5 kills")
    parser.add_argument("--profile", default=None, help="directory for py-spy profiles of each survivor")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--rabbitmq", default=os.environ.get("BENCH_RABBITMQ_URL", DEFAULT_RABBITMQ))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument(
        "--logs", default=None, help="directory for the engines' logs (default: a temporary one)"
    )
    args = parser.parse_args()
    if args.quick:
        args.bots, args.kills = 2000, 5
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as scratch:
        logs = Path(args.logs or scratch)
        logs.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(args, logs))


if __name__ == "__main__":
    cli()
