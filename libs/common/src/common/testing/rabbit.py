"""Faults of the bus made by the broker itself (tests and benches): close one connection by its name.

RabbitMQ's own CLI closes the connection, as a node restart or an operator would, without touching anyone
else's: the connection is found by the name its client gave it (`connection_name` client property), never by
closing all of them, since the broker is shared.
"""

from __future__ import annotations

import asyncio


async def _run(tool: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        tool, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{tool} {args[0]} failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


async def connection_pids(rabbitmqctl: str, connection_name: str) -> list[str]:
    """The broker's ids of the open connections that carry this client-given name."""
    # Table output: "<pid>\t<client properties>"; the JSON formatter renders pids unusably.
    listing = await _run(
        rabbitmqctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"
    )
    marker = f'{{"connection_name","{connection_name}"}}'
    return [line.split("\t", 1)[0] for line in listing.splitlines() if marker in line]


async def close_connection(rabbitmqctl: str, connection_name: str, reason: str = "closed by a test") -> None:
    """Have the broker close the one connection with this name (it must be open, and only one)."""
    pids = await connection_pids(rabbitmqctl, connection_name)
    if len(pids) != 1:
        raise AssertionError(f"expected one broker connection named {connection_name}, found {len(pids)}")
    await _run(rabbitmqctl, "close_connection", pids[0], reason)
