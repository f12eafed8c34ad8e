"""The routing table (path prefix -> service, longest prefix by segments); public paths."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

API_PREFIX = "/api"
# The routes' name for paths the gateway serves itself (GET /api/admin/system).
GATEWAY_SERVICE = "gateway"
ADMIN_PREFIX = "/api/admin"


class RouteTable:
    """Resolves a request path to the service serving it (services serve the public paths)."""

    def __init__(self, routes: Mapping[str, str], available: Iterable[str]) -> None:
        self._routes = dict(routes)
        self._available = frozenset(available)

    def service_for(self, path: str) -> str | None:
        """The service owning `path`; None when no prefix matches or the service is not deployed."""
        service = self._match(path)
        return service if service in self._available else None

    def _match(self, path: str) -> str | None:
        # Walk the prefixes from the longest, cutting at each "/": a dict lookup per segment,
        # and "/api/authx" can never match "/api/auth".
        candidate = path.rstrip("/") or "/"
        routes = self._routes
        while candidate:
            service = routes.get(candidate)
            if service is not None:
                return service
            cut = candidate.rfind("/")
            if cut <= 0:
                return routes.get("/")
            candidate = candidate[:cut]
        return None

    def routed_to(self, path: str, service: str) -> bool:
        """True when the gateway sends `path` to `service` (picks a service's public paths)."""
        return self._match(path) == service


ONE_SEGMENT = "/*"


class PublicPaths:
    """The (method, path) pairs reachable without a token; an entry without a method allows all.

    An entry ending in `/*` matches its parent path plus exactly one non-empty segment (a secret carried in
    the URL, e.g. a TradingView signal token), never a deeper path nor the parent itself.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        pairs: set[tuple[str, str]] = set()
        any_method: set[str] = set()
        for entry in entries:
            method, _, path = entry.rpartition(" ")
            if method:
                pairs.add((method.upper(), path))
            else:
                any_method.add(path)
        self._pairs = frozenset(pairs)
        self._any = frozenset(any_method)

    def is_public(self, method: str, path: str) -> bool:
        """True when the request needs no token (exact path match, trailing slash ignored)."""
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        if (method, path) in self._pairs or path in self._any:
            return True
        parent, _, segment = path.rpartition("/")
        if not segment or not parent:
            return False
        pattern = parent + ONE_SEGMENT
        return (method, pattern) in self._pairs or pattern in self._any


def is_api_path(path: str) -> bool:
    """True for /api and everything below it (the proxied space)."""
    return path.startswith("/api/") or path == API_PREFIX


def has_dot_segment(path: str) -> bool:
    """True for paths with "." or ".." segments, which an upstream could resolve otherwise."""
    if "/." not in path:
        return False
    return any(segment in (".", "..") for segment in path.split("/"))


def is_admin_path(path: str) -> bool:
    """True for /api/admin and everything below it: administrators only, whatever the path."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
