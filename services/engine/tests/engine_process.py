"""`python -m engine` as a real process for the crash tests: killed with SIGKILL, restarted as a supervisor would.

The supervisor gives the process no ENGINE_ID (its default identity, `<hostname>-<pid>`, changes with every
process), so a restart is refused while the dead process's lease runs: it restarts the engine until one runs,
and every process that exited on the way must have been refused for that reason and no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
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
# Short, so a restart waits seconds (not the production 30) for the dead lease; longer than an engine
# usually takes to start, so a supervisor restarting at once usually meets the refusal first.
LEASE_SECONDS = 8.0
REFUSED = "LeaseConflictError"
# Whatever the test process inherited, an engine under test must not pin its identity or park.
_NOT_INHERITED = ("ENGINE_ID", "TEST_PARK_AT", "TEST_PARK_FILE", "LEASE_SECONDS")


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
            "LEASE_SECONDS": str(LEASE_SECONDS),
            "EXCHANGE_TIMEOUT_SECONDS": "3",
            "OUTBOX_POLL_SECONDS": "0.2",
            **extra,
        }
    )
    return env


class EngineSupervisor:
    """Runs `python -m engine`, one process at a time, each with a log of its own."""

    def __init__(self, env: Mapping[str, str], logs: Path) -> None:
        self.env = dict(env)
        self.logs = logs
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.log: Path | None = None
        self.spawned = 0
        self.kills = 0
        self.refusals = 0
        self._http = httpx.AsyncClient(timeout=2)

    @property
    def engine_id(self) -> str:
        """The running process's default identity (engine_states.owner while it holds the lease)."""
        assert self.process is not None
        return f"{socket.gethostname()[:40]}-{self.process.pid}"

    async def spawn(self, **extra: str) -> None:
        """Start one new engine process (the last one must have ended), with `extra` in its environment."""
        assert self.process is None or self.process.returncode is not None, "an engine is still running"
        self.spawned += 1
        self.port = free_port()
        self.log = self.logs / f"engine-{self.spawned}.log"
        env = {**self.env, "PORT": str(self.port), **extra}
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "engine", cwd=REPO, env=env, stdout=log, stderr=log
            )

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

    async def _running_or_restarted(self, extra: Mapping[str, str]) -> bool:
        if await self.ready():
            return True
        assert self.process is not None
        if self.process.returncode is None:
            return False
        # It ended by itself: only a refusal for the dead engine's live lease is a reason to try again.
        assert REFUSED in self.tail(), (
            f"engine exited ({self.process.returncode}) not refused:\n{self.tail()}"
        )
        self.refusals += 1
        await self.spawn(**extra)
        return False

    async def run_until_ready(self, timeout: float = 60, **extra: str) -> None:  # noqa: ASYNC109
        """Start the engine, restarting it each time it is refused, until one process is ready."""
        if self.process is None or self.process.returncode is not None:
            await self.spawn(**extra)
        await eventually(
            lambda: self._running_or_restarted(extra),
            timeout=timeout,
            interval=0.2,
            message="the engine never became ready",
        )

    async def close(self) -> None:
        """Never leave an engine running after the test."""
        await self.kill()
        await self._http.aclose()
