"""The end-of-run sweep deletes exactly this run's RabbitMQ names, on the real broker."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import aio_pika
import pytest

from common.testing.infra import host_tool
from common.testing.sweep import _listed, ours, sweep_namespaces


def test_ours_keeps_only_names_under_the_namespaces() -> None:
    names = ["ta.engine.fills", "ta.engine.fills.dlq", "tab.engine.fills", "tb.x", "gridbot.x", "ta"]
    assert ours(names, ["ta", "tb"]) == ["ta.engine.fills", "ta.engine.fills.dlq", "tb.x"]
    assert ours(names, []) == []


async def _declare(url: str, names: list[str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
            await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


def test_the_sweep_deletes_this_runs_quorum_queues_and_exchanges_only(rabbitmq_url: str) -> None:
    tool = host_tool("rabbitmqctl")
    assert shutil.which(tool)
    mine, other = f"sw{uuid.uuid4().hex[:10]}", f"sw{uuid.uuid4().hex[:10]}"
    asyncio.run(_declare(rabbitmq_url, [f"{mine}.a", f"{mine}.b.dlq", f"{other}.a"]))
    try:
        assert sweep_namespaces(rabbitmq_url, [mine]) == 4
        queues, exchanges = _listed(tool, "list_queues"), _listed(tool, "list_exchanges")
        assert ours(queues, [mine]) == [] and ours(exchanges, [mine]) == []
        assert ours(queues, [other]) == [f"{other}.a"]
    finally:
        sweep_namespaces(rabbitmq_url, [other])
    assert ours(_listed(tool, "list_queues"), [other]) == []


@pytest.mark.parametrize("namespaces", [[], [""]])
def test_nothing_named_nothing_deleted(rabbitmq_url: str, namespaces: list[str]) -> None:
    assert sweep_namespaces(rabbitmq_url, namespaces) == 0
