"""Jobs survive their workers: a worker SIGKILLed mid-run leaves the job to another, which stores the result
once; a worker that lost its claim can no longer write."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from backtest_support import finished, grid_body, post
from fastapi import FastAPI
from sqlalchemy import select

from backtest.models import OUTBOX, Backtest
from backtest.runner import JobRunner, SupersededError
from backtest.settings import Settings
from common.testing.infra import free_port
from common.testing.service import User, exact_json
from common.testing.wait import eventually

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `python -m backtest.worker` process on the test's database, bus and simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_PARK")}
    env.update(
        ENVIRONMENT="test",
        LOG_JSON="false",
        HOST="127.0.0.1",
        PORT=str(free_port()),
        DATABASE_URL=settings.database_url.get_secret_value(),
        REDIS_URL=settings.redis_url.get_secret_value(),
        CACHE_NAMESPACE=settings.cache_namespace,
        RABBITMQ_URL=settings.rabbitmq_url.get_secret_value(),
        BUS_NAMESPACE=settings.bus_namespace,
        JWT_SECRET=settings.jwt_secret.get_secret_value(),
        UPBIT_REST_URL=settings.upbit_rest_url,
        BINANCE_REST_URL=settings.binance_rest_url,
        **extra,
    )
    return env


@contextlib.asynccontextmanager
async def worker_process(
    settings: Settings, log: Path, **extra: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real worker process; killed at the end if it still runs."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "backtest.worker", env=worker_env(settings, **extra), stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_worker_killed_before_storing_its_result_leaves_the_job_to_another(
    client: httpx.AsyncClient, user: User, app: FastAPI, settings: Settings, tmp_path: Path
) -> None:
    parked = tmp_path / "parked"
    log = tmp_path / "workers.log"
    backtest_id = exact_json(await post(client, user, grid_body()))["data"]["backtestId"]
    async with worker_process(
        settings, log, TEST_PARK_AT="before_result", TEST_PARK_FILE=str(parked)
    ) as first:
        try:
            await eventually(parked.exists, timeout=60, interval=0.1)
        except AssertionError:
            raise AssertionError(f"the worker never parked: {log.read_text()}") from None
        assert parked.read_text().split() == ["before_result", backtest_id]
        first.send_signal(signal.SIGKILL)
        await first.wait()
    shown = exact_json(await client.get(f"/api/backtests/{backtest_id}", headers=user.auth))["data"]
    assert shown["status"] == "running" and "result" not in shown
    async with worker_process(settings, log):
        done = await finished(client, user, backtest_id, within=90)
    assert done["status"] == "done", (done, log.read_text())
    async with app.state.session_factory() as session:
        row = (
            await session.execute(select(Backtest).where(Backtest.id == uuid.UUID(backtest_id)))
        ).scalar_one()
        assert row.attempts == 2
        finals = (await session.execute(select(OUTBOX.c.payload))).scalars().all()
    settled = [
        event
        for payload in finals
        for event in payload.get("events", [])
        if event["backtestId"] == backtest_id and event["status"] in ("done", "failed")
    ]
    assert settled == [{"type": "backtest", "backtestId": backtest_id, "status": "done", "progress": 100}]


async def test_a_worker_whose_claim_was_superseded_can_no_longer_write(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    backtest_id = uuid.UUID(exact_json(await post(client, user, grid_body()))["data"]["backtestId"])
    runner = _runner(app)
    first = await runner._claim(backtest_id)
    second = await runner._claim(backtest_id)
    assert first is not None and second is not None and (first[1], second[1]) == (1, 2)
    with pytest.raises(SupersededError):
        await runner._progress(first[0], first[1], 10)
    await runner._progress(second[0], second[1], 10)
    await runner._finish(first[0], first[1], {"never": "stored"})
    async with app.state.session_factory() as session:
        row = (await session.execute(select(Backtest).where(Backtest.id == backtest_id))).scalar_one()
    assert (row.status, row.progress, row.result) == ("running", 10, None)


async def test_a_job_claimed_too_often_fails_instead_of_running_again(
    client: httpx.AsyncClient, user: User, app: FastAPI, settings: Settings
) -> None:
    backtest_id = uuid.UUID(exact_json(await post(client, user, grid_body()))["data"]["backtestId"])
    runner = _runner(app)
    for _ in range(settings.max_attempts):
        assert await runner._claim(backtest_id) is not None
    await runner.run(backtest_id)
    shown = exact_json(await client.get(f"/api/backtests/{backtest_id}", headers=user.auth))["data"]
    assert shown["status"] == "failed" and shown["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "attempts" in shown["error"]["message"]


def _runner(app: FastAPI) -> JobRunner:
    state: Any = app.state
    from backtest.candles import CandleStore

    return JobRunner(
        session_factory=state.session_factory,
        store=CandleStore(state.session_factory, state.catalog, lambda: 0),
        bus=state.bus,
        relay=state.relay,
        worker_id="test",
        max_attempts=state.settings.max_attempts,
        progress_step=5,
    )
