"""Settings from the environment: JSON maps, comma lists, validation, no placeholder secrets in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.clientip import TrustedProxies
from gateway.settings import DEFAULT_ROUTES, Settings


def test_defaults() -> None:
    settings = Settings(environment="test")
    assert settings.port == 3000
    assert settings.routes == DEFAULT_ROUTES
    assert settings.services == {"auth": ["http://127.0.0.1:3001"]}
    assert settings.public_paths == [
        "POST /api/auth/register",
        "POST /api/auth/login",
        "POST /api/auth/refresh",
        "POST /api/signals/tradingview/*",
    ]
    assert (settings.rate_limit_auth, settings.rate_limit_bot_create, settings.rate_limit_default) == (
        "5/minute",
        "10/hour",
        "100/minute",
    )
    assert settings.trusted_proxies == []
    assert settings.frontend_url == "http://localhost:3009"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8080")
    # A service's replicas as a list; one URL alone is a list of one.
    monkeypatch.setenv(
        "SERVICES", '{"auth": "http://auth:3001/", "bots": ["http://bots-1:3004", "http://bots-2:3004/"]}'
    )
    monkeypatch.setenv("ROUTES", '{"/api/auth/": "auth", "/api/bots": "bots"}')
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 172.16.0.1")
    monkeypatch.setenv("PUBLIC_PATHS", '["POST /api/auth/login"]')
    monkeypatch.setenv("RATE_LIMIT_DEFAULT", "50/minute")
    monkeypatch.setenv("UPSTREAM_TIMEOUT_SECONDS", "3.5")
    monkeypatch.setenv("FRONTEND_URL", "HTTPS://App.Example.com/")
    settings = Settings(environment="test")
    assert settings.port == 8080
    assert settings.services == {
        "auth": ["http://auth:3001"],
        "bots": ["http://bots-1:3004", "http://bots-2:3004"],
    }
    assert settings.routes == {"/api/auth": "auth", "/api/bots": "bots"}
    assert settings.trusted_proxies == ["10.0.0.0/8", "172.16.0.1"]
    assert settings.public_paths == ["POST /api/auth/login"]
    assert settings.rate_limit_default == "50/minute"
    assert settings.upstream_timeout_seconds == 3.5
    assert settings.frontend_url == "https://app.example.com"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("services", {"auth": "ftp://auth"}),
        ("services", {"bots": ["http://bots-1:3003", "ftp://bots-2"]}),
        ("services", {"bots": []}),
        ("routes", {"api/auth": "auth"}),
        ("trusted_proxies", ["not-an-ip"]),
        ("public_paths", ["FETCH /api/x"]),
        ("public_paths", ["POST /api/x/*/y"]),
        ("public_paths", ["POST /api/x*"]),
        ("rate_limit_signals", "lots"),
        ("frontend_url", "localhost:3009"),
        ("rate_limit_default", "often"),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({"environment": "test", field: value})


def test_readiness_checks_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "READINESS_CHECKS", '{"engine": "http://127.0.0.1:3004/", "engine-2": "http://e2:3004"}'
    )
    monkeypatch.setenv("HEALTH_CACHE_SECONDS", "2.5")
    settings = Settings(environment="test")
    assert settings.readiness_checks == {"engine": "http://127.0.0.1:3004", "engine-2": "http://e2:3004"}
    assert settings.health_cache_seconds == 2.5
    for bad in ({"engine": "engine:3004"}, {"auth": "http://127.0.0.1:3001"}):
        with pytest.raises(ValidationError, match=r"(?i)readiness"):
            Settings(environment="test", readiness_checks=bad)


def test_placeholder_jwt_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="jwt_secret"):
        Settings(environment="production")
    strong = Settings(environment="production", jwt_secret="k" * 48)
    assert strong.jwt_secret.get_secret_value() == "k" * 48


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.1", "1.1.1.1", "203.0.113.1"),
        ("10.0.0.5", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.5", "9.9.9.9, 1.1.1.1, 10.0.0.7", "1.1.1.1"),
        ("10.0.0.5", "10.0.0.8, 10.0.0.7", "10.0.0.8"),
        ("10.0.0.5", "1.1.1.1, garbage", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
        ("::ffff:10.0.0.5", "2001:db8::1", "2001:db8::1"),
        (None, "1.1.1.1", "unknown"),
    ],
)
def test_client_ip_rules(peer: str | None, forwarded: str | None, client: str) -> None:
    settings = Settings(environment="test", trusted_proxies=["10.0.0.0/8"])
    assert TrustedProxies(settings.trusted_networks()).client_ip(peer, forwarded) == client
