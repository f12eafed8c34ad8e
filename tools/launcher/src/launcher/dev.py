"""`make dev`: every service its own process over the real RabbitMQ, PostgreSQL and Redis on this machine."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO
from urllib.parse import urlsplit

import httpx

from launcher.topology import (
    DEV_DATABASE,
    DEV_POSTGRES_ADMIN,
    SERVICES,
    ServiceSpec,
    fresh_tokens,
    service_env,
)


class StackError(RuntimeError):
    """A service failed to migrate or to start."""


@dataclass
class Stack:
    """A set of service processes started in order, each waited for until /health answers."""

    database_url: str
    redis_url: str
    rabbitmq_url: str
    ports: Mapping[str, int]
    log_dir: Path | None = None
    environment: str = "development"
    cache_namespace: str = "gridbot"
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Internal route tokens, fresh for every stack: each process is handed only the ones its spec names.
    tokens: Mapping[str, str] = field(default_factory=fresh_tokens)
    services: Sequence[ServiceSpec] = SERVICES
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def env_for(self, spec: ServiceSpec, port: int | None = None) -> dict[str, str]:
        """The full environment of one service process."""
        # Our own settings come from the topology, not from whatever the caller's shell exported (an
        # exported internal token would otherwise reach processes that must not hold it).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith(("DATABASE_", "SERVICES", "SIM_", "INTERNAL_"))
        }
        env.update(
            service_env(
                spec,
                database_url=self.database_url,
                redis_url=self.redis_url,
                rabbitmq_url=self.rabbitmq_url,
                ports=dict(self.ports),
                tokens=self.tokens,
                environment=self.environment,
                cache_namespace=self.cache_namespace,
            )
        )
        env.update(self.extra_env.get(spec.name, {}))
        if port is not None:
            env[f"{spec.env_prefix}PORT"] = str(port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def migrate(self) -> None:
        """Apply every service's migrations (the compose prestart step), in order."""
        for spec in self.services:
            cmd = spec.migrate_command
            if cmd is None:
                continue
            done = subprocess.run(  # noqa: S603 - our own fixed command
                [sys.executable, *cmd[1:]], env=self.env_for(spec), capture_output=True, timeout=120
            )
            if done.returncode != 0:
                raise StackError(f"{spec.name} migrations failed:\n{done.stderr.decode(errors='replace')}")

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start every service in order, each ready before the next one starts."""
        for spec in self.services:
            self._spawn(spec)
            self._wait_ready(spec, ready_timeout)

    def start_replica(self, name: str, port: int, ready_timeout: float = 30.0) -> str:
        """Start one more process of a service on another port (e.g. a second gateway); returns its key."""
        spec = next(s for s in self.services if s.name == name)
        key = f"{name}@{port}"
        self._spawn(spec, key, port)
        self._wait_ready(spec, ready_timeout, key, port)
        return key

    def restart(self, name: str, ready_timeout: float = 30.0) -> None:
        """Start a service whose process has exited again: same name, port and environment."""
        if self.processes[name].poll() is None:
            raise StackError(f"{name} is still running")
        spec = next(s for s in self.services if s.name == name)
        self._spawn(spec)
        self._wait_ready(spec, ready_timeout)

    def _spawn(self, spec: ServiceSpec, key: str | None = None, port: int | None = None) -> None:
        key = key or spec.name
        cmd = [sys.executable, *spec.command[1:]]
        env = self.env_for(spec, port)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = (self.log_dir / f"{key}.log").open("ab")
            self._logs.append(log)
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        else:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
            threading.Thread(target=_prefix_lines, args=(key, proc), daemon=True).start()
        self.processes[key] = proc

    def _wait_ready(
        self, spec: ServiceSpec, timeout: float, key: str | None = None, port: int | None = None
    ) -> None:
        key = key or spec.name
        url = f"http://127.0.0.1:{port or self.ports[spec.name]}{spec.health_path}"
        wait_healthy(url, self.processes[key], timeout, describe=lambda: key + self._tail(key))

    def _tail(self, key: str) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{key}.log"
        return "\n" + path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def crashed(self) -> list[str]:
        """Names of services whose process has exited."""
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process (reverse order), then SIGKILL what is left."""
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0, describe: Callable[[], str] = str
) -> None:
    """Poll `url` until it answers 200; fail early if the process exits, with `describe()` in the error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"exited with {proc.returncode} while starting: {describe()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise StackError(f"{url} not ready within {timeout}s: {describe()}")


def _prefix_lines(name: str, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        sys.stdout.write(f"{name:>8} | {raw.decode(errors='replace')}")
        sys.stdout.flush()


async def ensure_database(admin_url: str, name: str) -> None:
    """Create the dev database if it does not exist yet."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def main() -> None:
    """Run the dev topology until Ctrl-C; any service dying stops the rest."""
    admin = os.environ.get("POSTGRES_ADMIN_URL", DEV_POSTGRES_ADMIN)
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        asyncio.run(ensure_database(admin, DEV_DATABASE))
        parts = urlsplit(admin)
        database_url = parts._replace(scheme="postgresql+asyncpg", path=f"/{DEV_DATABASE}").geturl()
    stack = Stack(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        rabbitmq_url=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        ports={s.name: s.port for s in SERVICES},
    )
    stopping = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        stack.migrate()
        stack.start()
        print(
            f"gridbot dev: gateway on http://localhost:{stack.ports['gateway']}  (Ctrl-C stops)",
            flush=True,
        )
        while not stopping.wait(0.5):
            dead = stack.crashed()
            if dead:
                print(f"gridbot dev: {', '.join(dead)} exited; stopping", file=sys.stderr, flush=True)
                code = 1
                break
    except StackError as exc:
        print(f"gridbot dev: {exc}", file=sys.stderr, flush=True)
        stack.stop()
        sys.exit(1)
    stack.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
