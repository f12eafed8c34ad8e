"""Placeholders only on loopback in development, one token per internal route, encrypted exchange URLs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from common.crypto import EncryptionSettings
from common.exchanges.settings import DEFAULT_URLS, ExchangeSettings, sim_exchange_env
from common.settings import (
    DEV_ENCRYPTION_KEY,
    DEV_JWT_SECRET,
    BalanceTokenSettings,
    JwtSettings,
    KeysTokenSettings,
    TickersTokenSettings,
    is_loopback_host,
)

STRONG = "Zq4v8N2rL0pX7mT3wY6sB1cF5hJ9dK2eQ"
OTHER = "Pm3x7V1sK9qT2wY5bN8cF4hJ6dL0rG2aE"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("gridbot.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5"])
@pytest.mark.parametrize("environment", ["development", "test"])
def test_placeholders_are_refused_off_loopback_in_development(host: str, environment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JwtSettings(environment=environment, host=host, jwt_secret=DEV_JWT_SECRET)
    assert f"HOST={host} is not a loopback address" in str(caught.value)
    assert "jwt_secret" in str(caught.value) and DEV_JWT_SECRET not in str(caught.value)
    with pytest.raises(ValidationError, match="ENCRYPTION_KEY is the development placeholder"):
        EncryptionSettings(environment=environment, host=host, encryption_key=DEV_ENCRYPTION_KEY)
    assert JwtSettings(environment=environment, host=host, jwt_secret=STRONG).host == host


def test_placeholders_are_accepted_on_loopback_in_development_only() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert JwtSettings(environment="development", host=host, jwt_secret=DEV_JWT_SECRET).host == host
    with pytest.raises(ValidationError, match=r"ENVIRONMENT=production\): jwt_secret"):
        JwtSettings(environment="production", host="127.0.0.1", jwt_secret=DEV_JWT_SECRET)


class Credentials(KeysTokenSettings, BalanceTokenSettings):
    """The credentials service's pair: its two routes."""


class Bots(BalanceTokenSettings, TickersTokenSettings):
    """The bots service's pair: one route it calls, one it serves."""


def test_every_route_has_its_own_development_token() -> None:
    tokens = {
        KeysTokenSettings().internal_keys_token.get_secret_value(),
        BalanceTokenSettings().internal_balance_token.get_secret_value(),
        TickersTokenSettings().internal_tickers_token.get_secret_value(),
    }
    assert len(tokens) == 3


@pytest.mark.parametrize(("cls", "a", "b"), [(Credentials, "keys", "balance"), (Bots, "balance", "tickers")])
def test_equal_tokens_for_different_routes_are_refused_outside_development(cls: type, a: str, b: str) -> None:
    same = {f"internal_{a}_token": STRONG, f"internal_{b}_token": STRONG}
    with pytest.raises(ValidationError, match="must differ") as caught:
        cls(environment="production", **same)
    assert STRONG not in str(caught.value)
    with pytest.raises(ValidationError, match="must differ"):
        cls(environment="development", host="0.0.0.0", **same)
    assert cls(environment="development", **same).environment == "development"
    apart = {f"internal_{a}_token": STRONG, f"internal_{b}_token": OTHER}
    assert cls(environment="production", **apart).environment == "production"


def test_production_refuses_plaintext_exchange_urls() -> None:
    assert ExchangeSettings(environment="production").upbit_rest_url == DEFAULT_URLS["upbit_rest_url"]
    sim = {key.lower(): value for key, value in sim_exchange_env("http://exchange-sim:8900").items()}
    with pytest.raises(ValidationError) as caught:
        ExchangeSettings(environment="production", **sim)
    for name in DEFAULT_URLS:
        assert name.upper() in str(caught.value)
    for name, plain in (
        ("binance_rest_url", "http://api.binance.com"),
        ("upbit_ws_url", "ws://api.upbit.com"),
    ):
        with pytest.raises(ValidationError, match=name.upper()):
            ExchangeSettings(environment="production", **{name: plain})
    # A wss URL where https is expected (or the other way round) is a mistake too.
    with pytest.raises(ValidationError, match="BINANCE_WS_URL must be wss://"):
        ExchangeSettings(environment="production", binance_ws_url="https://stream.binance.com:9443")
    assert ExchangeSettings(environment="development", host="0.0.0.0", **sim).binance_ws_url.startswith(
        "ws://"
    )


@pytest.mark.parametrize(("env_file", "read"), [(None, True), ("", False)])
def test_gridbot_env_file_keeps_a_dotenv_out_of_the_test_suite(
    tmp_path: Path, env_file: str | None, read: bool
) -> None:
    # `make secrets` writes the deployment's .env into the repository root, which is the cwd of most runs.
    (tmp_path / ".env").write_text(f"JWT_SECRET={STRONG}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDBOT_ENV_FILE", "JWT_SECRET")}
    if env_file is not None:
        env["GRIDBOT_ENV_FILE"] = env_file
    code = "from common.settings import JwtSettings; print(JwtSettings().jwt_secret.get_secret_value())"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert (done.stdout.strip() == STRONG) is read


def test_tracing_and_sentry_settings_reach_the_sdks_environment_and_empty_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from common.web import configure_observability

    dotenv = tmp_path / ".env"
    dotenv.write_text("OTEL_SERVICE_NAME=from-dotenv\nSENTRY_RELEASE=r1\n")
    # As compose passes variables .env leaves out: set, empty (the SDK would send spans to "/v1/traces").
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    monkeypatch.setenv("SENTRY_DSN", " ")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)  # restored (absent) after the test
    monkeypatch.delenv("SENTRY_RELEASE", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)  # tracing stays off
    settings = JwtSettings(_env_file=dotenv)  # type: ignore[call-arg]
    assert settings.sentry_dsn is None  # no Sentry, and not a placeholder secret either
    observed = settings.observability_env()
    assert observed["OTEL_SERVICE_NAME"] == "from-dotenv" and observed["OTEL_EXPORTER_OTLP_ENDPOINT"] is None
    configure_observability("test", settings)
    assert os.environ["OTEL_SERVICE_NAME"] == "from-dotenv"
    assert os.environ["SENTRY_RELEASE"] == "r1"
    assert os.environ["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ and "SENTRY_DSN" not in os.environ


def test_a_sentry_dsn_is_masked_and_not_judged_as_a_secret_of_ours() -> None:
    settings = JwtSettings(environment="production", jwt_secret=STRONG, sentry_dsn="https://k@o1.ingest.io/2")
    assert settings.sentry_dsn is not None and "k@o1" not in repr(settings)
    assert settings.observability_env()["SENTRY_DSN"] == "https://k@o1.ingest.io/2"
