"""Upbit: REST under /upbit/v1 and WebSockets under /upbit/websocket/v1 (public) and /v1/private."""
