"""Counts of the exchange requests the simulator received, by venue, method, path and API key (for tests)."""

from __future__ import annotations

from collections import Counter

import jwt

from exchange_sim.markets import Venue


def request_api_key(venue: Venue, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The API key a request presents (Binance X-MBX-APIKEY, Upbit's JWT access_key), unverified."""
    for name, value in headers:
        lowered = name.lower()
        if venue == "binance" and lowered == b"x-mbx-apikey":
            return value.decode("latin-1")
        if venue == "upbit" and lowered == b"authorization":
            text = value.decode("latin-1")
            if not text.lower().startswith("bearer "):
                return None
            try:
                claims = jwt.decode(text[len("Bearer ") :].strip(), options={"verify_signature": False})
            except jwt.PyJWTError:
                return None
            access_key = claims.get("access_key")
            return access_key if isinstance(access_key, str) else None
    return None


class RequestCounter:
    """Every HTTP request to a venue, counted as it arrives (a faulted one too: the exchange saw it)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[Venue, str, str, str | None]] = Counter()

    def add(self, venue: Venue, method: str, path: str, api_key: str | None = None) -> None:
        """Count one request (path relative to the venue, e.g. /api/v3/account; the key it presented)."""
        self._counts[(venue, method, path, api_key)] += 1

    def view(
        self, venue: Venue | None = None, path_prefix: str | None = None, api_key: str | None = None
    ) -> dict[str, object]:
        """{"total": n, "requests": {"binance GET /api/v3/account": n, …}}, optionally filtered."""
        rows: Counter[str] = Counter()
        for (v, method, path, key), count in sorted(self._counts.items(), key=lambda item: item[0][:3]):
            if venue is not None and v != venue:
                continue
            if path_prefix is not None and not path.startswith(path_prefix):
                continue
            if api_key is not None and key != api_key:
                continue
            rows[f"{v} {method} {path}"] += count
        return {"total": sum(rows.values()), "requests": dict(sorted(rows.items()))}

    def clear(self) -> None:
        """Start counting from zero."""
        self._counts.clear()
