"""Delete the RabbitMQ queues and exchanges a test run declared under its namespaces, when the run ends.

Each test declares durable quorum queues under a namespace of its own and never uses those names again.
RabbitMQ keeps every quorum queue's Raft machinery alive until the queue is deleted, so a broker that serves
run after run slows down and finally stops answering (seen on a shared machine after a day of runs). Only the
names under this run's namespaces are deleted: other runs sharing the broker keep theirs.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import warnings
from collections.abc import Collection

import aio_pika


def _listed(tool: str, what: str) -> list[str]:
    # rabbitmqctl lists every name in one call; AMQP cannot list.
    out = subprocess.run(  # noqa: S603 - a fixed argument list naming the local rabbitmqctl
        [tool, "-q", what, "name", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def ours(names: Collection[str], namespaces: Collection[str]) -> list[str]:
    """The names that lie under one of `namespaces` (`<namespace>.<name>`)."""
    prefixes = tuple(f"{ns}." for ns in namespaces if ns)
    return sorted(n for n in names if prefixes and n.startswith(prefixes))


async def _delete(url: str, queues: list[str], exchanges: list[str]) -> None:
    async with asyncio.timeout(120):
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)
        finally:
            await connection.close()


def sweep_namespaces(url: str, namespaces: Collection[str]) -> int:
    """Delete every queue and exchange under `namespaces`; returns how many names went (hygiene, never fails)."""
    tool = shutil.which("rabbitmqctl")
    if not namespaces or tool is None:
        return 0
    try:
        queues = ours(_listed(tool, "list_queues"), namespaces)
        exchanges = ours(_listed(tool, "list_exchanges"), namespaces)
        asyncio.run(_delete(url, queues, exchanges))
    except (OSError, subprocess.SubprocessError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        warnings.warn(f"RabbitMQ names of this run not deleted: {exc!r}", stacklevel=1)
        return 0
    return len(queues) + len(exchanges)
