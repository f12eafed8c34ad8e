"""The system's queues by name: each consumer subscribes under these names, and the operators' view
(GET /admin/system) counts what waits in them and in their dead-letter queues (`<name>.dlq`)."""

from __future__ import annotations

BACKTEST_JOBS = "backtest.jobs"
BOTS_CREDENTIAL_EVENTS = "bots.credential-events"
MARKET_DATA_BOT_LIFECYCLE = "market-data.bot-lifecycle"
NOTIFIER_EVENTS = "notifier.events"
NOTIFIER_CREDENTIAL_EVENTS = "notifier.credential-events"
# One of each per engine replica process (engine_replica_queue): a replica's commands, fills, key changes, ticks.
ENGINE_COMMANDS = "engine.commands"
ENGINE_FILLS = "engine.fills"
ENGINE_CREDENTIAL_EVENTS = "engine.credential-events"
ENGINE_TICKS = "engine.ticks"

SHARED_QUEUES = (
    BACKTEST_JOBS,
    BOTS_CREDENTIAL_EVENTS,
    MARKET_DATA_BOT_LIFECYCLE,
    NOTIFIER_EVENTS,
    NOTIFIER_CREDENTIAL_EVENTS,
)
"""The durable queues every deployment has, one per consuming service."""

ENGINE_QUEUES = (ENGINE_COMMANDS, ENGINE_FILLS, ENGINE_CREDENTIAL_EVENTS, ENGINE_TICKS)


def engine_replica_queue(queue: str, replica_id: str, incarnation: str) -> str:
    """An engine replica process's own queue: `<queue>.<replica>.<first 8 of its incarnation>`."""
    return f"{queue}.{replica_id}.{incarnation[:8]}"
