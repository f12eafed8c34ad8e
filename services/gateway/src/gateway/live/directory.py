"""Which bots a user has: asked of the bots service with the user's own token, as the user could."""

from __future__ import annotations

import logging

import httpx

from common.exchanges.ids import Exchange

log = logging.getLogger(__name__)

Pair = tuple[Exchange, str]
BOTS_PATH = "/api/bots"


class BotsDirectory:
    """`GET /api/bots` on the bots service: bot id -> (exchange, ticker)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + BOTS_PATH

    async def bots(self, token: str) -> dict[str, Pair] | None:
        """The user's bots, or None when the bots service cannot tell (the bus still keeps us current)."""
        try:
            response = await self._client.get(self._url, headers={"authorization": f"Bearer {token}"})
            if response.status_code != 200:
                log.warning("bots lookup for a live socket answered %d", response.status_code)
                return None
            rows = response.json()["data"]["bots"]
            found: dict[str, Pair] = {}
            for row in rows:
                try:
                    found[str(row["_id"])] = (Exchange(row["exchange"]), str(row["ticker"]))
                except (KeyError, TypeError, ValueError):
                    continue
            return found
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            log.warning("bots lookup for a live socket failed: %s", type(exc).__name__)
            return None
