"""Counts of the exchange requests the simulator received, by venue, method and path (for tests)."""

from __future__ import annotations

from collections import Counter

from exchange_sim.markets import Venue


class RequestCounter:
    """Every HTTP request to a venue, counted as it arrives (a faulted one too: the exchange saw it)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[Venue, str, str]] = Counter()

    def add(self, venue: Venue, method: str, path: str) -> None:
        """Count one request (path relative to the venue, e.g. /api/v3/account)."""
        self._counts[(venue, method, path)] += 1

    def view(self, venue: Venue | None = None, path_prefix: str | None = None) -> dict[str, object]:
        """{"total": n, "requests": {"binance GET /api/v3/account": n, …}}, optionally filtered."""
        rows = {
            f"{v} {method} {path}": count
            for (v, method, path), count in sorted(self._counts.items())
            if (venue is None or v == venue) and (path_prefix is None or path.startswith(path_prefix))
        }
        return {"total": sum(rows.values()), "requests": rows}

    def clear(self) -> None:
        """Start counting from zero."""
        self._counts.clear()
