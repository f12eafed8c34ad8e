"""The trading side of the operators' view (GET /api/admin/system, assembled by the gateway): the engine
replicas, the partitions and running bots each drives, and what waits in the queues and their dead letters."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.bus import Bus
from common.contracts import queues
from common.dbtypes import utc_now
from common.web import iso_utc
from trading.models import Bot, BotStatus, EnginePartition, EngineReplica
from trading.partitions import partition_of


async def engine_view(session: AsyncSession, now: datetime | None = None) -> tuple[dict[str, Any], list[str]]:
    """The replicas with their partitions and running bots; and the replica processes' own queue names."""
    now = now or utc_now()
    replicas = (
        (await session.execute(select(EngineReplica).order_by(EngineReplica.replica_id))).scalars().all()
    )
    owners = dict(
        (await session.execute(select(EnginePartition.partition, EnginePartition.owner))).tuples().all()
    )
    running = (
        await session.execute(
            select(Bot.id).where(
                Bot.deleted_at.is_(None),
                (Bot.status == BotStatus.RUNNING.value) | Bot.stop_command_id.is_not(None),
            )
        )
    ).scalars()
    bots_by_owner: Counter[str | None] = Counter(owners.get(partition_of(bot_id)) for bot_id in running)
    partitions_by_owner: Counter[str | None] = Counter(owners.values())
    view = {
        "replicas": [
            {
                "replicaId": replica.replica_id,
                "startedAt": iso_utc(replica.started_at),
                "heartbeatAt": iso_utc(replica.heartbeat_at),
                "heartbeatAgeSeconds": round((now - replica.heartbeat_at).total_seconds(), 1),
                "stopping": replica.stopping,
                "partitions": partitions_by_owner[replica.replica_id],
                "bots": bots_by_owner[replica.replica_id],
            }
            for replica in replicas
        ],
        "unownedPartitions": partitions_by_owner[None],
        "botsWithoutReplica": sum(n for owner, n in bots_by_owner.items() if owner is None),
        "runningBots": sum(bots_by_owner.values()),
    }
    own = [
        queues.engine_replica_queue(queue, replica.replica_id, replica.incarnation)
        for replica in replicas
        for queue in queues.ENGINE_QUEUES
    ]
    return view, own


async def queue_view(bus: Bus, names: list[str]) -> dict[str, Any]:
    """Messages waiting and dead-lettered per queue (null: the queue does not exist)."""
    depths = await bus.depths(names)
    return {
        name: None if depth is None else {"messages": depth.messages, "deadLetters": depth.dead_letters}
        for name, depth in depths.items()
    }


async def system_view(session: AsyncSession, bus: Bus) -> dict[str, Any]:
    """`{"engine": …, "queues": …}`."""
    engine, own = await engine_view(session)
    return {"engine": engine, "queues": await queue_view(bus, [*queues.SHARED_QUEUES, *own])}
