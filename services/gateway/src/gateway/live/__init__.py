"""Live updates: the WebSocket `GET /api/ws` fed from the bus (user events, bot lifecycle, price ticks)."""

from __future__ import annotations

from typing import Any

from gateway.settings import Settings

# Client messages are tiny ({"type": "ping"}); anything larger is refused by the server outright.
MAX_CLIENT_MESSAGE_BYTES = 4096


def uvicorn_ws_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's WebSocket options for the gateway (protocol ping/pong, message cap)."""
    return {
        # Explicit, so a missing implementation fails at start-up instead of refusing every upgrade.
        "ws": "websockets-sansio",
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        "ws_max_size": MAX_CLIENT_MESSAGE_BYTES,
        # No permessage-deflate, even when the browser offers it: our frames are small JSON, where
        # compressing each one took over a quarter of the socket writer's time, and a compressor per
        # socket is memory that grows with the connections.
        "ws_per_message_deflate": False,
    }
