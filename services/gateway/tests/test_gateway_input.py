"""What the gateway refuses before it counts, authenticates or forwards anything: two callers in one request,
dirty URLs; and what it never answers: a redirect to an address of ours."""

from __future__ import annotations

import httpx
import pytest

from gateway.testing import Tokens, Upstream, bearer, gateway, make_settings


def refusal(response: httpx.Response) -> list[dict[str, str]]:
    body = response.json()
    assert (response.status_code, body["error"]["code"]) == (400, "VALIDATION_ERROR"), response.text
    fields: list[dict[str, str]] = body["error"]["details"]["fields"]
    return fields


async def test_two_authorization_headers_are_refused_and_count_for_nobody(
    bots_up: Upstream, tokens: Tokens
) -> None:
    alice, bob = tokens.access("alice"), tokens.access("bob")
    async with gateway(make_settings(), {"bots": bots_up.transport()}) as client:
        twice = [
            (b"authorization", f"Bearer {alice}".encode()),
            (b"authorization", f"Bearer {bob}".encode()),
        ]
        response = await client.get("/api/bots", headers=twice)
        assert refusal(response) == [{"field": "authorization", "reason": "duplicated header"}]
        assert bots_up.calls == []
        # Neither user's bucket was charged for it.
        for token in (alice, bob):
            served = await client.get("/api/bots", headers=bearer(token))
            assert served.status_code == 200
            assert served.headers["x-ratelimit-remaining"] == "99"
    # What reached the service names exactly one caller.
    assert [
        [value for name, value in call["header_list"] if name == "authorization"] for call in bots_up.calls
    ] == [[f"Bearer {alice}"], [f"Bearer {bob}"]]


async def test_an_unauthenticated_route_refuses_two_tokens_too(auth_up: Upstream) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        headers = [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")]
        response = await client.post("/api/auth/login", headers=headers, json={})
    assert refusal(response)[0]["field"] == "authorization"
    assert auth_up.calls == []


async def test_x_forwarded_for_from_a_trusted_proxy_may_come_as_several_lines(
    bots_up: Upstream, tokens: Tokens
) -> None:
    settings = make_settings(trusted_proxies=["203.0.113.0/24"])
    async with gateway(settings, {"bots": bots_up.transport()}) as client:
        headers = [
            (b"authorization", f"Bearer {tokens.access()}".encode()),
            (b"x-forwarded-for", b"198.51.100.1"),
            (b"x-forwarded-for", b"198.51.100.2"),
        ]
        response = await client.get("/api/bots", headers=headers)
    assert response.status_code == 200
    [call] = bots_up.calls
    assert call["headers"]["x-real-ip"] == "198.51.100.2"


@pytest.mark.parametrize("url", ["/api/bots?status=%00", "/api/bots/%FF", "/api/bots?exchange=" + "x" * 9000])
async def test_dirty_urls_never_reach_a_service(bots_up: Upstream, tokens: Tokens, url: str) -> None:
    async with gateway(make_settings(), {"bots": bots_up.transport()}) as client:
        response = await client.get(url, headers=bearer(tokens.access()))
    assert refusal(response)
    assert bots_up.calls == []


@pytest.mark.parametrize("path", ["/health/", "/api-docs/", "/health/ready/"])
async def test_the_gateways_own_paths_never_redirect(path: str) -> None:
    async with gateway(make_settings()) as client:
        response = await client.get(path)
    assert response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"
    assert "location" not in response.headers


async def test_405_from_the_gateways_own_routes_names_their_methods() -> None:
    async with gateway(make_settings()) as client:
        response = await client.post("/health")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
