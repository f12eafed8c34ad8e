"""The engine's batch statement as the orders table grows under a plan cached while it was small.

Two connections, as an engine holds them: one plain, one with the engine's planner settings
(`engine.persistence.batch.KEYED_PLANS`). Each runs the batch statement (one fill's order update, every
other part empty) until PostgreSQL settles on its generic plan while `orders` holds a few hundred rows and
has no statistics (never analyzed; autovacuum is off on these machines, and a young table has none yet).
Then `orders` grows and each connection runs `--samples` batches (BEGIN, the statement, COMMIT) at each
size, alternately. Prints per size and connection: samples, median and p99 of a batch's wall time, and the
CPU of its PostgreSQL backend and of this process per batch (/proc), on a scratch database.

    uv run python bench/batch_plan.py [--sizes 1000,10000,100000] [--samples 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

# bench/ goes to the end of the path: bench/engine.py must not shadow the engine package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from loadkit import percentile  # noqa: E402
from prockit import proc_cpu  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from common.db import create_engine  # noqa: E402
from common.testing.infra import DEFAULT_POSTGRES, scratch_database  # noqa: E402
from engine.persistence.batch import BATCH_SQL, KEYED_PLANS, PARTS  # noqa: E402
from trading.migrate import upgrade  # noqa: E402
from trading.models import SCHEMA  # noqa: E402

_BATCH = text(BATCH_SQL)
_SEED_ORDERS = 300
# PostgreSQL plans a prepared statement afresh for its first five executions, then may keep a generic plan.
_SETTLE = 12

_BOT = """
INSERT INTO bots.bots (id, user_id, exchange, ticker, mode, grid_type, lower_price, upper_price,
    price_change_percent, grid_count, order_amount, investment_amount, stop_at_max, status, market_rules,
    config_version, created_at, updated_at, triggered)
VALUES (:id, :user, 'binance', 'BTC/USDT', 'paper', 'geometric', 90000, 110000, 1, 20, 10, 200, false,
    'running', '{}', 1, now(), now(), true)
"""
_ORDERS = """
INSERT INTO bots.orders (id, bot_id, exchange, client_order_id, slot, side, price, quantity,
    filled_quantity, status, created_at, updated_at)
SELECT gen_random_uuid(), :bot, 'binance', 'bench-' || n, n % 20, 'buy', 100000, 0.0001, 0, 'open', now(), now()
  FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n
RETURNING id
"""


def _params(order_id: uuid.UUID) -> dict[str, Any]:
    """The batch's arrays for one fill's order update (every other part empty)."""
    rows: dict[str, list[dict[str, Any]]] = {part.name: [] for part in PARTS}
    rows["u"].append(
        {
            "id": order_id,
            "status": "filled",
            "filled_quantity": Decimal("0.0001"),
            "exchange_order_id": None,
            "updated_at": datetime.now(UTC),
        }
    )
    params: dict[str, Any] = {}
    for part in PARTS:
        params.update(part.arrays(rows[part.name]))
    return params


async def _batch(connection: AsyncConnection, order_id: uuid.UUID) -> None:
    async with connection.begin():
        await connection.execute(_BATCH, _params(order_id))


async def _backend(connection: AsyncConnection) -> int:
    pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await connection.rollback()  # the SELECT began a transaction; each batch begins its own
    return pid


async def _plans(connection: AsyncConnection) -> str:
    """How PostgreSQL planned this connection's batch statement so far: generic and custom plans."""
    row = (
        await connection.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE 'WITH o AS%' ORDER BY prepare_time DESC LIMIT 1"
            )
        )
    ).one()
    await connection.rollback()
    return f"{row.generic_plans}g/{row.custom_plans}c"


async def run(url: str, sizes: list[int], samples: int) -> list[str]:
    """Seed, settle both connections' plans, then time batches at each size; the report's lines."""
    setup = create_engine(url, schemas=[SCHEMA], pool_size=1)
    plain = create_engine(url, schemas=[SCHEMA], pool_size=1)
    keyed = create_engine(url, schemas=[SCHEMA], pool_size=1, server_settings=KEYED_PLANS)
    bot = uuid.uuid4()
    lines = [
        f"batch_plan: one fill's order update in the engine's batch statement; {samples} batches per cell"
    ]
    try:
        async with setup.begin() as connection:
            await connection.execute(text(_BOT), {"id": bot, "user": uuid.uuid4()})
            result = await connection.execute(text(_ORDERS), {"bot": bot, "first": 1, "last": _SEED_ORDERS})
            orders: list[uuid.UUID] = list(result.scalars())
        async with plain.connect() as a, keyed.connect() as b:
            connections = {"plain": a, "KEYED_PLANS": b}
            backends = {name: await _backend(c) for name, c in connections.items()}
            for connection in connections.values():
                for _ in range(_SETTLE):
                    await _batch(connection, random.choice(orders))
            lines.append(f"plans settled with {len(orders)} orders (never analyzed)")
            lines.append(
                f"{'orders':>8} {'connection':<12} {'samples':>7} {'p50 ms':>8} {'p99 ms':>8} "
                f"{'server CPU ms/batch':>19} {'client CPU ms/batch':>19} {'plans':>12}"
            )
            for size in sizes:
                if size > len(orders):
                    async with setup.begin() as connection:
                        result = await connection.execute(
                            text(_ORDERS), {"bot": bot, "first": len(orders) + 1, "last": size}
                        )
                        orders += list(result.scalars())
                walls: dict[str, list[float]] = {name: [] for name in connections}
                cpu = {name: 0.0 for name in connections}
                client = {name: 0.0 for name in connections}
                for _ in range(samples):
                    for name, connection in connections.items():
                        order = random.choice(orders)
                        server, own, began = (
                            proc_cpu(backends[name]),
                            time.process_time(),
                            time.perf_counter(),
                        )
                        await _batch(connection, order)
                        walls[name].append((time.perf_counter() - began) * 1000)
                        cpu[name] += proc_cpu(backends[name]) - server
                        client[name] += time.process_time() - own
                for name in connections:
                    walls[name].sort()
                    lines.append(
                        f"{size:>8} {name:<12} {len(walls[name]):>7} {percentile(walls[name], 0.5):>8.2f} "
                        f"{percentile(walls[name], 0.99):>8.2f} {1000 * cpu[name] / samples:>19.2f} "
                        f"{1000 * client[name] / samples:>19.2f} {await _plans(connections[name]):>12}"
                    )
    finally:
        for engine in (setup, plain, keyed):
            await engine.dispose()
    return lines


def main() -> None:
    """Parse the arguments, run on a scratch database, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="orders in the table, in rising order")
    parser.add_argument("--samples", type=int, default=1000, help="batches per size and connection")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.samples < 1 or sizes != sorted(sizes) or sizes[0] < _SEED_ORDERS:
        parser.error(f"--samples ≥ 1, --sizes rising and ≥ {_SEED_ORDERS}")
    with scratch_database(os.environ.get("POSTGRES_ADMIN_URL", DEFAULT_POSTGRES)) as url:
        upgrade(url)
        for line in asyncio.run(run(url, sizes, args.samples)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
