"""`python -m engine` as a real process for the crash tests: killed with SIGKILL, restarted as a supervisor would.

A supervisor runs one replica: every process it starts carries the replica's name (ENGINE_ID), as a
container or pod restarted in place does, so a restart takes the dead process's partitions back at once.
`rename=True` starts it under a new name instead (a pod rescheduled elsewhere): the dead name's partitions
then wait for its heartbeat to go stale. A process that exits by itself fails the test with its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from engine_support import INTERNAL_TOKEN

from common.exchanges import sim_exchange_env
from common.testing.infra import free_port
from common.testing.wait import eventually

REPO = Path(__file__).resolve().parents[3]
# The production defaults: a replica silent this long is dead and its partitions are taken over.
REPLICA_TTL_SECONDS = 3.0
# Whatever the test process inherited, an engine under test must not pin its identity or park.
_NOT_INHERITED = ("ENGINE_ID", "TEST_PARK_AT", "TEST_PARK_FILE", "ENGINE_REPLICA_TTL_SECONDS")


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a free loopback port inside this event loop; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def engine_env(
    *,
    database_url: str,
    redis_url: str,
    rabbitmq_url: str,
    namespace: str,
    sim_url: str,
    credentials_url: str,
    **extra: str,
) -> dict[str, str]:
    """The environment of an engine process on the test's database, bus, cache, simulator and credentials."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        {
            **sim_exchange_env(sim_url),
            "ENVIRONMENT": "test",
            "LOG_JSON": "false",
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CACHE_NAMESPACE": namespace,
            "RABBITMQ_URL": rabbitmq_url,
            "BUS_NAMESPACE": namespace,
            "CREDENTIALS_URL": credentials_url,
            "INTERNAL_KEYS_TOKEN": INTERNAL_TOKEN,
            "ENGINE_REPLICA_TTL_SECONDS": str(REPLICA_TTL_SECONDS),
            "EXCHANGE_TIMEOUT_SECONDS": "3",
            "OUTBOX_POLL_SECONDS": "0.2",
            **extra,
        }
    )
    return env


class EngineSupervisor:
    """Runs `python -m engine`, one process at a time, each with a log of its own."""

    def __init__(self, env: Mapping[str, str], logs: Path, replica: str = "engine-a") -> None:
        self.env = dict(env)
        self.logs = logs
        self.replica = replica
        self.names = 0
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.log: Path | None = None
        self.spawned = 0
        self.kills = 0
        self._http = httpx.AsyncClient(timeout=2)

    async def spawn(self, *, rename: bool = False, **extra: str) -> None:
        """Start one new engine process (the last one must have ended), with `extra` in its environment."""
        assert self.process is None or self.process.returncode is not None, "an engine is still running"
        if rename:
            self.names += 1
        self.spawned += 1
        self.port = free_port()
        self.log = self.logs / f"{self.replica}-{self.spawned}.log"
        env = {**self.env, "PORT": str(self.port), "ENGINE_ID": self.engine_id, **extra}
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "engine", cwd=REPO, env=env, stdout=log, stderr=log
            )

    @property
    def engine_id(self) -> str:
        """The replica name the processes run under."""
        return self.replica if not self.names else f"{self.replica}-{self.names}"

    async def signal(self, number: int) -> None:
        """Send a signal to the running process (SIGSTOP, SIGCONT, SIGTERM)."""
        assert self.process is not None and self.process.returncode is None
        self.process.send_signal(number)

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind (a process that already ended is only reaped)."""
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1
        await self.process.wait()

    async def ready(self) -> bool:
        """True once the running process answers /health/ready with 200."""
        if self.process is None or self.process.returncode is not None:
            return False
        try:
            response = await self._http.get(f"http://127.0.0.1:{self.port}/health/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def tail(self, chars: int = 4000) -> str:
        """The end of the current process's log (for failure messages)."""
        return self.log.read_text(errors="replace")[-chars:] if self.log is not None else ""

    async def _running(self) -> bool:
        if await self.ready():
            return True
        assert self.process is not None
        assert self.process.returncode is None, f"engine exited ({self.process.returncode}):\n{self.tail()}"
        return False

    async def run_until_ready(self, timeout: float = 60, *, rename: bool = False, **extra: str) -> None:  # noqa: ASYNC109
        """Start the engine (when none runs) and wait until it is ready; it must never exit meanwhile."""
        if self.process is None or self.process.returncode is not None:
            await self.spawn(rename=rename, **extra)
        await eventually(
            self._running, timeout=timeout, interval=0.1, message="the engine never became ready"
        )

    async def close(self) -> None:
        """Never leave an engine running after the test."""
        await self.kill()
        await self._http.aclose()
