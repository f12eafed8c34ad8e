"""One trace across processes: `make dev`'s services with `OTEL_TRACES_EXPORTER=console`; the request that
creates (and so starts) a paper bot leaves one trace id in the gateway's, the bots service's and the engine's
log lines (HTTP proxy → bots → outbox → RabbitMQ → engine), with the request id carried along too."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.testing.infra import free_port, scratch_database
from common.testing.sweep import sweep_namespaces
from common.testing.wait import eventually
from launcher.dev import Stack
from launcher.testing import System, body, clients, grid_around, move, random_client_ip, register, sim_price
from launcher.topology import SERVICES

pytestmark = pytest.mark.e2e

STARTUP_SECONDS = 120.0
TRUSTED = json.dumps(["127.0.0.1"])
# The processes a paper bot's creation goes through (no backtests).
NEEDED = {"exchange-sim", "auth", "credentials", "bots", "engine", "market-data", "gateway"}


@pytest.fixture(scope="module")
def traced_stack(
    postgres_admin_url: str, redis_url: str, rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The dev topology (one engine) with tracing on, each process's output in a log file of its own."""
    namespace = f"tr{uuid.uuid4().hex[:8]}"
    services = [s for s in SERVICES if s.name in NEEDED]
    tracing_env = {"OTEL_TRACES_EXPORTER": "console"}
    with scratch_database(postgres_admin_url) as database_url:
        stack = Stack(
            database_url=database_url,
            redis_url=redis_url,
            rabbitmq_url=rabbitmq_url,
            ports={s.name: free_port() for s in SERVICES},  # every service has an address, started or not
            log_dir=tmp_path_factory.mktemp("traced-logs"),
            cache_namespace=namespace,
            bus_namespace=namespace,
            extra_env={s.name: tracing_env for s in services}
            | {"gateway": {**tracing_env, "TRUSTED_PROXIES": TRUSTED}},
            services=services,
            engine_replicas=1,
            restart_policy=None,
        )
        try:
            stack.migrate()
            stack.start(ready_timeout=STARTUP_SECONDS)
            yield stack
        finally:
            stack.stop()
            sweep_namespaces(rabbitmq_url, [namespace])


def log_lines(log_dir: Path, key: str) -> list[dict[str, Any]]:
    """The JSON log lines of one process (its stdout also holds the console exporter's spans: skipped)."""
    lines = []
    for raw in (log_dir / f"{key}.log").read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and "msg" in entry and "service" in entry:
            lines.append(entry)
    return lines


@pytest.mark.timeout(STARTUP_SECONDS * 8, func_only=False)
async def test_creating_a_paper_bot_is_one_trace_in_the_gateway_bots_and_engine_logs(
    traced_stack: Stack,
) -> None:
    system = System(
        f"http://127.0.0.1:{traced_stack.port('gateway')}",
        f"http://127.0.0.1:{traced_stack.port('exchange-sim')}",
    )
    request_id = f"trace-e2e-{uuid.uuid4().hex[:8]}"
    async with clients(system, random_client_ip()) as (api, sim):
        auth = await register(api)
        price = await sim_price(sim, "upbit", "KRW-ETH")
        await move(sim, "upbit", "KRW-ETH", price)
        spec = grid_around("upbit", "KRW-ETH", price, "0.05", 1, 10000, mode="paper")
        r = await api.post("/api/bots", headers={**auth, "x-request-id": request_id}, json=spec)
        bot = body(r)
        assert r.status_code == 201 and bot["status"] == "running"
    bot_id = bot["botId"]
    log_dir = traced_stack.log_dir
    assert log_dir is not None

    def mine(key: str) -> list[dict[str, Any]]:
        return [line for line in log_lines(log_dir, key) if line.get("request_id") == request_id]

    def engine_lines() -> list[dict[str, Any]]:
        return [line for line in mine("engine-1") if bot_id in line["msg"]]

    await eventually(
        lambda: bool(engine_lines()),
        timeout=30,
        interval=0.2,
        message=f"the engine logged nothing under {request_id}",
    )
    engine = engine_lines()

    gateway, bots = mine("gateway"), mine("bots-1") + mine("bots-2")  # whichever replica the gateway chose
    assert gateway and bots, (gateway, bots)
    trace_ids = {line.get("trace_id") for line in gateway + bots + engine}
    assert len(trace_ids) == 1 and None not in trace_ids, trace_ids
    assert any(line["msg"].startswith("POST /api/bots") for line in gateway)
    assert any(line["msg"].startswith("POST /api/bots") for line in bots)
    assert any("bot.start" in line["msg"] for line in engine)
    # Three processes, each its own spans (the span ids differ), one trace.
    assert len({line["span_id"] for line in (gateway[0], bots[0], engine[0])}) == 3
