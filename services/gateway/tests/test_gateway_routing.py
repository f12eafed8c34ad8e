"""Routing: longest prefix on segment boundaries, unknown routes and methods as envelopes."""

from __future__ import annotations

import httpx
import pytest

from common.web import create_app as create_service_app
from gateway.routing import PublicPaths, RouteTable
from gateway.testing import Tokens, Upstream, bearer, gateway, make_settings

ROUTES = {
    "/api/auth": "auth",
    "/api/exchange": "market-data",
    "/api/exchange/validate-credentials": "credentials",
    "/api/bots": "bots",
}


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/auth", "auth"),
        ("/api/auth/", "auth"),
        ("/api/auth/login", "auth"),
        ("/api/authx", None),
        ("/api/auth-admin/x", None),
        ("/api/exchange/validate-credentials", "credentials"),
        ("/api/exchange/validate-credentials/extra", "credentials"),
        ("/api/exchange/validate-credentialsX", "market-data"),
        ("/api/exchange/price/upbit/KRW-BTC", "market-data"),
        ("/api", None),
        ("/api/unknown", None),
        ("/health", None),
    ],
)
def test_longest_prefix_on_segment_boundaries(path: str, service: str | None) -> None:
    table = RouteTable(ROUTES, available=["auth", "market-data", "credentials", "bots"])
    assert table.service_for(path) == service


def test_route_to_a_service_without_url_is_unknown() -> None:
    table = RouteTable(ROUTES, available=["auth"])
    assert table.service_for("/api/bots/1") is None
    assert table.routed_to("/api/bots/1", "bots")


def test_public_paths_match_method_and_exact_path() -> None:
    public = PublicPaths(["POST /api/auth/login", "/api/open"])
    assert public.is_public("POST", "/api/auth/login")
    assert public.is_public("POST", "/api/auth/login/")
    assert not public.is_public("GET", "/api/auth/login")
    assert not public.is_public("POST", "/api/auth/login/x")
    assert public.is_public("DELETE", "/api/open")


def test_a_star_segment_is_one_segment_exactly() -> None:
    public = PublicPaths(["POST /api/signals/tradingview/*"])
    assert public.is_public("POST", "/api/signals/tradingview/3q2-7wPu_x")
    assert public.is_public("POST", "/api/signals/tradingview/3q2-7wPu_x/")
    # The OpenAPI document's template is one segment too.
    assert public.is_public("POST", "/api/signals/tradingview/{token}")
    assert not public.is_public("GET", "/api/signals/tradingview/abc")
    assert not public.is_public("POST", "/api/signals/tradingview")
    assert not public.is_public("POST", "/api/signals/tradingview/")
    assert not public.is_public("POST", "/api/signals/tradingview/abc/def")
    assert not public.is_public("POST", "/api/signals/tradingviewx/abc")
    assert not public.is_public("POST", "/api/signals/*")


async def test_a_signal_reaches_the_bots_service_without_a_token_and_nothing_else_does(
    bots_up: Upstream,
) -> None:
    async with gateway(make_settings(), {"bots": bots_up.transport()}) as client:
        signal = await client.post("/api/signals/tradingview/abc123", content=b"stop")
        deeper = await client.post("/api/signals/tradingview/abc/123", content=b"stop")
        other = await client.post("/api/bots/42/stop")
    assert signal.status_code == 200, signal.text
    assert signal.json()["path"] == "/api/signals/tradingview/abc123"
    assert (deeper.status_code, deeper.json()["error"]["code"]) == (401, "UNAUTHORIZED")
    assert (other.status_code, other.json()["error"]["code"]) == (401, "UNAUTHORIZED")
    assert len(bots_up.calls) == 1


async def test_requests_reach_the_service_owning_the_longest_prefix(
    auth_up: Upstream, bots_up: Upstream, tokens: Tokens
) -> None:
    market = Upstream("market-data")
    creds = Upstream("credentials")
    transports = {
        "auth": auth_up.transport(),
        "bots": bots_up.transport(),
        "market-data": market.transport(),
        "credentials": creds.transport(),
    }
    async with gateway(make_settings(), transports) as client:
        headers = bearer(tokens.access())
        cases = {
            "/api/exchange/validate-credentials": "credentials",
            "/api/exchange/tickers/upbit": "market-data",
            "/api/bots/42/trades": "bots",
            "/api/auth/me": "auth",
        }
        for path, service in cases.items():
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["service"] == service
            # The path travels unchanged: services serve the public paths themselves.
            assert response.json()["path"] == path


async def test_unknown_route_is_a_404_envelope_without_touching_upstreams(
    auth_up: Upstream, tokens: Tokens
) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        for path in ("/api/nope", "/api/authx/me", "/api", "/nowhere"):
            response = await client.get(path, headers=bearer(tokens.access()))
            assert response.status_code == 404, path
            assert response.json() == {
                "success": False,
                "error": {"code": "NOT_FOUND", "message": "요청한 경로를 찾을 수 없습니다", "details": {}},
            }
    assert auth_up.calls == []


async def test_route_whose_service_is_not_deployed_is_404(tokens: Tokens) -> None:
    # The default routing table knows /api/bots, but no URL for "bots" is configured.
    async with gateway(make_settings()) as client:
        response = await client.get("/api/bots", headers=bearer(tokens.access()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_dot_segments_are_refused(auth_up: Upstream, tokens: Tokens) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.get("/api/auth/%2e%2e/bots", headers=bearer(tokens.access()))
    assert response.status_code == 404
    assert auth_up.calls == []


async def test_wrong_method_is_a_405_envelope(tokens: Tokens) -> None:
    service = create_service_app(title="auth")

    @service.get("/api/auth/me")
    async def me() -> dict[str, str]:
        return {"ok": "yes"}

    transports = {"auth": httpx.ASGITransport(service)}
    async with gateway(make_settings(), transports) as client:
        own = await client.post("/health", headers={"Accept-Language": "en"})
        # A proxied route answers with its service's own 405 envelope, passed through unchanged.
        proxied = await client.delete("/api/auth/me", headers=bearer(tokens.access()))
        allowed = await client.get("/api/auth/me", headers=bearer(tokens.access()))
    assert own.status_code == 405
    assert own.json()["error"] == {
        "code": "METHOD_NOT_ALLOWED",
        "message": "Method not allowed",
        "details": {},
    }
    assert proxied.status_code == 405
    assert proxied.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert allowed.json() == {"ok": "yes"}


async def test_unknown_route_message_follows_accept_language() -> None:
    async with gateway(make_settings()) as client:
        response = await client.get("/api/nope", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.json()["error"]["message"] == "Route not found"
