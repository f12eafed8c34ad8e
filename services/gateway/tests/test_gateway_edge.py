"""The edge: CORS for FRONTEND_URL only, helmet-style security headers, HSTS behind TLS, request ids."""

from __future__ import annotations

import pytest

from gateway.testing import FRONTEND, Tokens, Upstream, bearer, gateway, make_settings

PREFLIGHT = {
    "Origin": FRONTEND,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_preflight_from_the_frontend_is_answered_by_the_gateway(auth_up: Upstream) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.options("/api/auth/login", headers=PREFLIGHT)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.headers["vary"] == "Origin"
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert auth_up.calls == []


async def test_preflight_from_another_origin_gets_no_cors_headers(auth_up: Upstream) -> None:
    headers = {**PREFLIGHT, "Origin": "https://evil.example"}
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.options("/api/auth/login", headers=headers)
    assert not [h for h in response.headers if h.startswith("access-control-")]
    assert auth_up.calls == []


async def test_cors_headers_on_responses_for_the_frontend_only(auth_up: Upstream, tokens: Tokens) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        ours = await client.get("/api/auth/me", headers={"Origin": FRONTEND, **bearer(tokens.access())})
        theirs = await client.get("/api/auth/me", headers={"Origin": "http://localhost:3010"})
        error = await client.get("/api/auth/me", headers={"Origin": FRONTEND})
    assert ours.headers["access-control-allow-origin"] == FRONTEND
    assert ours.headers["access-control-allow-credentials"] == "true"
    assert "X-RateLimit-Remaining" in ours.headers["access-control-expose-headers"]
    assert "Origin" in ours.headers["vary"]
    assert "access-control-allow-origin" not in theirs.headers
    # Errors carry CORS headers too, or the browser would hide the envelope from the frontend.
    assert error.status_code == 401
    assert error.headers["access-control-allow-origin"] == FRONTEND


async def test_frontend_url_is_configurable(auth_up: Upstream) -> None:
    settings = make_settings(frontend_url="https://app.example.com/")
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        custom = await client.options(
            "/api/auth/login", headers={**PREFLIGHT, "Origin": "https://app.example.com"}
        )
        default = await client.options("/api/auth/login", headers=PREFLIGHT)
    assert custom.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in default.headers


@pytest.mark.parametrize("path", ["/api/auth/me", "/api/nope", "/health", "/missing"])
async def test_security_headers_on_every_response(auth_up: Upstream, path: str) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-dns-prefetch-control"] == "off"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "strict-transport-security" not in headers
    assert "server" not in headers
    assert "x-powered-by" not in headers


async def test_hsts_only_behind_tls(auth_up: Upstream) -> None:
    settings = make_settings(trusted_proxies=["10.0.0.1"])
    tls = {"X-Forwarded-Proto": "https"}
    async with gateway(settings, client_addr=("10.0.0.1", 1)) as via_proxy:
        trusted = await via_proxy.get("/health", headers=tls)
        plain = await via_proxy.get("/health")
    async with gateway(settings, client_addr=("203.0.113.5", 1)) as direct:
        spoofed = await direct.get("/health", headers=tls)
    assert trusted.headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in plain.headers
    assert "strict-transport-security" not in spoofed.headers


async def test_request_id_is_echoed_forwarded_and_minted(auth_up: Upstream, tokens: Tokens) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        echoed = await client.get(
            "/api/auth/me", headers={"X-Request-ID": "trace-123", **bearer(tokens.access())}
        )
        minted = await client.get("/api/auth/me", headers=bearer(tokens.access()))
        hostile = await client.get(
            "/api/auth/me", headers={"X-Request-ID": "bad id<script>", **bearer(tokens.access())}
        )
    assert echoed.headers["x-request-id"] == "trace-123"
    assert auth_up.calls[0]["headers"]["x-request-id"] == "trace-123"
    minted_id = minted.headers["x-request-id"]
    assert len(minted_id) >= 16
    # The service sees the gateway's id, so one request can be followed through both logs.
    assert auth_up.calls[1]["headers"]["x-request-id"] == minted_id
    assert hostile.headers["x-request-id"] != "bad id<script>"
    assert auth_up.calls[2]["headers"]["x-request-id"] == hostile.headers["x-request-id"]
    # Exactly one X-Request-ID, even though the upstream answered with its own copy.
    assert len(echoed.headers.get_list("x-request-id")) == 1
