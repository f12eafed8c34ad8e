"""Binance spot: REST under /binance/api/v3, market streams under /binance/ws and /binance/stream, WS API."""
