"""GET /health/ready's probing: clients of its own (never the request pools), one probe shared, kept briefly.

A load balancer, an orchestrator and a dashboard all poll readiness; each call fanned out to every
service on the pools user requests wait for, unthrottled. Now every probe goes through a small client per
target (two connections at most), concurrent callers await the one probe in flight, and its answer is
reused for HEALTH_CACHE_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx

Check = Callable[[], Awaitable[bool]]
# Per probed process: a probe in flight, and one spare for a probe that outlives its caller's timeout.
PROBE_CONNECTIONS = 2


async def run_checks(checks: Mapping[str, Check], limit_seconds: float) -> dict[str, str]:
    """Every check concurrently, each bounded by `limit_seconds`: "ok" or "down" per name."""

    async def one(check: Check) -> str:
        try:
            async with asyncio.timeout(limit_seconds):
                return "ok" if await check() else "down"
        except Exception:  # a failing check is an answer, not a crash
            return "down"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))


class Probes:
    """A small HTTP client per probed process (routed services and READINESS_CHECKS alike)."""

    def __init__(
        self,
        targets: Mapping[str, Sequence[str]],
        transports: Mapping[str, httpx.AsyncBaseTransport],
        timeout_seconds: float,
        connect_timeout_seconds: float,
    ) -> None:
        self._targets = dict(targets)
        self._clients: dict[str, httpx.AsyncClient] = {}
        for name in self._targets:
            # In-process services (embedded mode, tests) have no pool to protect: their transport is used.
            self._clients[name] = httpx.AsyncClient(
                transport=transports.get(name),
                limits=httpx.Limits(max_connections=PROBE_CONNECTIONS, max_keepalive_connections=1),
                timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
                follow_redirects=False,
                trust_env=False,
            )

    def checks(self) -> dict[str, Check]:
        """One check per target: ready when its /health/ready answers 200 (a replicated one: any replica's)."""
        return {name: self._check(name) for name in self._targets}

    def _check(self, name: str) -> Check:
        client, urls = self._clients[name], [url + "/health/ready" for url in self._targets[name]]

        async def one(url: str) -> bool:
            try:
                return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False  # a replica down: another one may serve

        async def check() -> bool:
            # The gateway sends requests to whichever replica answers, so one ready replica is a ready service.
            return any(await asyncio.gather(*(one(url) for url in urls)))

        return check

    async def aclose(self) -> None:
        """Close every probe client (transports handed in are closed by their owner)."""
        for client in self._clients.values():
            await client.aclose()


class Readiness:
    """The readiness report: one probe at a time whoever asks, reused for `ttl_seconds`."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        limit_seconds: float,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = dict(checks)
        self._limit = limit_seconds
        self._ttl = ttl_seconds
        self._clock = clock
        self._report: dict[str, str] | None = None
        self._taken_at = 0.0
        self._probe: asyncio.Task[dict[str, str]] | None = None

    async def report(self) -> dict[str, str]:
        """ "ok" or "down" per name: the last probe's when it is fresh, else the probe in flight's."""
        if self._report is not None and self._clock() - self._taken_at < self._ttl:
            return self._report
        if self._probe is None:
            self._probe = asyncio.create_task(self._run())
        # Shielded: a caller that gives up (client gone) must not cancel the probe others await.
        return await asyncio.shield(self._probe)

    async def _run(self) -> dict[str, str]:
        try:
            report = await run_checks(self._checks, self._limit)
            self._report, self._taken_at = report, self._clock()
            return report
        finally:
            self._probe = None

    async def aclose(self) -> None:
        """Cancel a probe still in flight (at shutdown)."""
        probe = self._probe
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
