"""One OpenAPI document for the whole public API, merged from every upstream's /openapi.json."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from common.openapi import BEARER_SCHEME, bearer_scheme
from common.web import dumps
from gateway.proxy import Upstream, Upstreams
from gateway.routing import GATEWAY_SERVICE, PublicPaths, RouteTable

log = logging.getLogger(__name__)

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# An incomplete document is kept only briefly, so that a service coming back shows up soon.
_INCOMPLETE_TTL_SECONDS = 2.0


def merge_documents(
    documents: dict[str, dict[str, Any]],
    unavailable: list[str],
    routes: RouteTable,
    public: PublicPaths,
    *,
    title: str = "gridbot API",
    version: str = "0.1.0",
) -> dict[str, Any]:
    """Merge per-service documents: public paths as-is, components shared or prefixed."""
    renames = _conflict_renames(documents)
    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    conflicts: list[str] = []
    for service in sorted(documents):
        doc = _rename_refs(documents[service], renames.get(service, {}))
        for path, item in (doc.get("paths") or {}).items():
            # Only what the gateway actually routes to this service is public (no internal routes).
            if not routes.routed_to(path, service):
                continue
            merged = paths.setdefault(path, {})
            for key, operation in item.items():
                if key in merged:
                    conflicts.append(f"{key.upper()} {path} ({service})")
                    continue
                if key in _HTTP_METHODS and isinstance(operation, dict):
                    operation = _secure(operation, key, path, public)
                merged[key] = operation
        for section, entries in (doc.get("components") or {}).items():
            if isinstance(entries, dict):
                target = components.setdefault(section, {})
                for name, value in entries.items():
                    target.setdefault(name, value)
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = bearer_scheme()
    merged_doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Every public route of the gridbot backend, served by the gateway. Every error is the "
                'envelope `{"success": false, "error": {"code", "message", "details"}}`; each response '
                "lists the codes it can carry (`x-error-codes`). Routes need the bearer access token "
                "except register, login, refresh and the TradingView signal URL (its token is its secret)."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": components,
        "x-unavailable-services": sorted(unavailable),
    }
    if conflicts:
        merged_doc["x-path-conflicts"] = conflicts
    return merged_doc


def _secure(operation: dict[str, Any], method: str, path: str, public: PublicPaths) -> dict[str, Any]:
    # The gateway decides which routes need a token; the document says what the gateway enforces.
    operation = dict(operation)
    operation["security"] = [] if public.is_public(method.upper(), path) else [{BEARER_SCHEME: []}]
    return operation


def _conflict_renames(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per service, the refs to rename: a name two services define differently gets prefixed."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for service, doc in documents.items():
        for section, entries in (doc.get("components") or {}).items():
            if isinstance(entries, dict):
                for name, value in entries.items():
                    seen.setdefault((section, name), {})[service] = value
    renames: dict[str, dict[str, str]] = {}
    for (section, name), versions in seen.items():
        distinct = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in versions.values()}
        if len(distinct) > 1:
            for service in versions:
                old = f"#/components/{section}/{name}"
                renames.setdefault(service, {})[old] = f"#/components/{section}/{_prefixed(service, name)}"
    return renames


def _prefixed(service: str, name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in service)
    return f"{safe}_{name}"


def _rename_refs(doc: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """A copy of `doc` with conflicting components renamed and every $ref to them rewritten."""
    if not renames:
        return doc
    renamed: dict[str, Any] = _rewrite(copy.deepcopy(doc), renames)
    for section, entries in (renamed.get("components") or {}).items():
        if isinstance(entries, dict):
            prefix = f"#/components/{section}/"
            renamed["components"][section] = {
                renames.get(prefix + name, prefix + name).removeprefix(prefix): value
                for name, value in entries.items()
            }
    return renamed


def _rewrite(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in renames:
            node["$ref"] = renames[ref]
        for value in node.values():
            _rewrite(value, renames)
    elif isinstance(node, list):
        for value in node:
            _rewrite(value, renames)
    return node


class MergedOpenApi:
    """Fetches upstream documents concurrently; caches the merged JSON briefly (single flight)."""

    def __init__(
        self,
        upstreams: Upstreams,
        routes: RouteTable,
        public: PublicPaths,
        *,
        ttl_seconds: float,
        timeout_seconds: float,
        local: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstreams = upstreams
        # The document of the routes the gateway serves itself (merged as the service "gateway").
        self._local = local
        self._routes = routes
        self._public = public
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._cached: tuple[bytes, float] | None = None
        self._lock = asyncio.Lock()

    async def json(self) -> bytes:
        """The merged document as JSON bytes."""
        cached = self._cached
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        async with self._lock:
            cached = self._cached
            if cached is not None and self._clock() < cached[1]:
                return cached[0]
            body, complete = await self._build()
            ttl = self._ttl if complete else min(self._ttl, _INCOMPLETE_TTL_SECONDS)
            self._cached = (body, self._clock() + ttl)
            return body

    async def _build(self) -> tuple[bytes, bool]:
        upstreams = list(self._upstreams)
        results = await asyncio.gather(*(self._fetch(u) for u in upstreams))
        documents = {u.name: doc for u, doc in zip(upstreams, results, strict=True) if doc is not None}
        if self._local is not None:
            documents[GATEWAY_SERVICE] = self._local
        unavailable = [u.name for u, doc in zip(upstreams, results, strict=True) if doc is None]
        merged = merge_documents(documents, unavailable, self._routes, self._public)
        return dumps(merged), not unavailable

    async def _fetch(self, upstream: Upstream) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self._timeout):
                response = await upstream.client.get(upstream.base_url + "/openapi.json")
            if response.status_code != 200:
                return None
            doc = response.json()
        except Exception as exc:
            log.warning("openapi of %s unavailable: %r", upstream.name, exc)
            return None
        return doc if isinstance(doc, dict) else None
