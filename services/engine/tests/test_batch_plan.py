"""The batch statement finds the rows it updates by their keys, whatever the tables' statistics say (PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from engine.persistence.batch import BATCH_SQL, KEYED_PLANS
from engine.persistence.reads import changed_asks_query
from engine.runtime import EngineRuntime

UPDATED = {"orders", "grid_levels", "bots", "engine_states"}


def _positional(sql: str) -> tuple[str, int]:
    """`sql` with its `:name` parameters as `$n` (one number per name), and how many there are."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    return re.sub(r"(?<!:):(\w+)", number, sql), len(numbers)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def test_the_engines_connections_plan_by_key(engine: EngineRuntime) -> None:
    """The generic plan a cached statement keeps looks each updated row up through its key.

    The test database's tables were never analyzed and hold a few hundred rows: without the engine's planner
    settings, this plan joins the batch's arrays to `orders` and `bots` by a hash over a sequential scan of
    the whole table, for every batch, for as long as the connection lives.
    """
    sql, count = _positional(BATCH_SQL)
    assert engine.db is not None
    async with engine.db.connect() as connection:
        raw: Any = (await connection.get_raw_connection()).driver_connection
        settings = {name: await raw.fetchval(f"SHOW {name}") for name in KEYED_PLANS}
        assert settings == KEYED_PLANS
        async with raw.transaction():
            await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await raw.execute(f"PREPARE keyed_batch AS {sql}")
            try:
                document = await raw.fetchval(
                    f"EXPLAIN (FORMAT JSON) EXECUTE keyed_batch({', '.join(['NULL'] * count)})"
                )
            finally:
                await raw.execute("DEALLOCATE keyed_batch")
    # The engine's connections decode JSON themselves (its json_deserializer); a plain one gives the text.
    plans = orjson.loads(document) if isinstance(document, str) else document
    nodes = list(_nodes(plans[0]["Plan"]))
    scans = {(node["Node Type"], node["Relation Name"]) for node in nodes if "Relation Name" in node}
    assert {relation for kind, relation in scans if kind == "Index Scan"} == UPDATED
    assert not {relation for kind, relation in scans if kind == "Seq Scan"}
    assert not [node["Node Type"] for node in nodes if node["Node Type"] in ("Hash Join", "Merge Join")]


async def test_the_resume_sweep_reads_the_bots_changed_lately_through_their_index(
    engine: EngineRuntime,
) -> None:
    """Every replica runs the sweep every few seconds: it reads the last minute's rows, not the whole table."""
    compiled = changed_asks_query(datetime.now(UTC)).compile(dialect=PGDialect_asyncpg())
    assert engine.db is not None
    async with engine.db.connect() as connection:
        raw: Any = (await connection.get_raw_connection()).driver_connection
        document = await raw.fetchval(f"EXPLAIN (FORMAT JSON) {compiled}", datetime.now(UTC))
    plans = orjson.loads(document) if isinstance(document, str) else document
    nodes = list(_nodes(plans[0]["Plan"]))
    assert {node.get("Index Name") for node in nodes} & {"ix_bots_updated_at"}
    assert not [node for node in nodes if node["Node Type"] == "Seq Scan"]
