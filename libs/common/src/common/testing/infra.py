"""Locate the real PostgreSQL, Redis and RabbitMQ for tests; fail (CI) or skip (laptop) when absent.

`unavailable` is the one way a test gives up for want of something outside it (a server, a shared file,
a host tool): under CI=true that is a failure, so a run never passes by silently not testing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from common.netports import free_port as free_port  # re-exported: the tests' and benches' import

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


def in_ci() -> bool:
    """CI=true: a missing server is a failure, never a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str, default_port: int, timeout: float = 2.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout):
            return True
    except OSError:
        return False


def _docker_available() -> bool:
    return shutil.which("docker") is not None and os.path.exists("/var/run/docker.sock")


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere: what the test needs is not here."""
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def missing(what: str, url: str) -> NoReturn:
    """A server that does not answer: fail under CI, skip elsewhere."""
    unavailable(f"{what} does not answer at {url} (see ../shared/SERVICES.md to start it)")


def host_tool(name: str) -> str:
    """The path of a command-line tool the test drives (e.g. rabbitmqctl); unavailable when not installed."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed on this host (it comes with the server's packages)")
    return path


@contextmanager
def server_url(what: str, env: str, default: str, port: int, image: str) -> Iterator[str]:
    """Environment first, loopback default, testcontainers where Docker exists."""
    url = os.environ.get(env, default)
    if _reachable(url, port):
        yield url
        return
    if not in_ci() and _docker_available():  # pragma: no cover - only where Docker runs
        from testcontainers.core.container import DockerContainer

        with DockerContainer(image).with_exposed_ports(port) as c:
            host, mapped = c.get_container_host_ip(), c.get_exposed_port(port)
            parts = urlsplit(url)
            netloc = parts.netloc.rsplit("@", 1)
            creds = netloc[0] + "@" if len(netloc) == 2 else ""
            yield parts._replace(netloc=f"{creds}{host}:{mapped}").geturl()
            return
    missing(what, url)


def run_id() -> str:
    """A short id unique to this test process (xdist worker), used to isolate data."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    return f"{worker}_{uuid.uuid4().hex[:10]}"


async def _create_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test run, dropped afterwards; yields an asyncpg SQLAlchemy URL."""
    name = f"gridbot_test_{run_id()}".lower()
    asyncio.run(_create_database(admin_url, name))
    try:
        parts = urlsplit(admin_url)
        yield parts._replace(scheme="postgresql+asyncpg", path=f"/{name}").geturl()
    finally:
        asyncio.run(_drop_database(admin_url, name))
