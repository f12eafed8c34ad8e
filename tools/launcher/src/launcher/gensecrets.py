"""`make secrets`: write a new .env of fresh random secrets for docker compose; an existing file is kept.

Standard library only, so that it runs with a bare `python3` on a deployment host: `python3
tools/launcher/src/launcher/gensecrets.py [path]`. Every value is hex, safe inside URLs and .env lines.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

# What docker-compose.yml requires (`${NAME:?...}`), with the number of random bytes behind each value.
SECRETS: dict[str, int] = {
    "JWT_SECRET": 32,
    # AES-256-GCM: exactly 32 bytes (hex here; the service also reads base64).
    "ENCRYPTION_KEY": 32,
    # The notifier's own key for channel secrets (bot tokens, webhook secrets): not the one of exchange keys.
    "NOTIFIER_ENCRYPTION_KEY": 32,
    "INTERNAL_KEYS_TOKEN": 32,
    "INTERNAL_BALANCE_TOKEN": 32,
    "INTERNAL_TICKERS_TOKEN": 32,
    "POSTGRES_PASSWORD": 24,
    "RABBITMQ_PASSWORD": 24,
    "REDIS_PASSWORD": 24,
}

# The exchange simulator's URLs inside the compose network (what sim_exchange_env gives for
# http://exchange-sim:8900; a test keeps the two equal).
SIM_ENV: dict[str, str] = {
    "UPBIT_REST_URL": "http://exchange-sim:8900/upbit",
    "UPBIT_WS_URL": "ws://exchange-sim:8900/upbit/websocket/v1",
    "BINANCE_REST_URL": "http://exchange-sim:8900/binance",
    "BINANCE_WS_URL": "ws://exchange-sim:8900/binance",
    "BINANCE_WS_API_URL": "ws://exchange-sim:8900/binance/ws-api/v3",
}


def render(values: dict[str, str], now: datetime) -> str:
    """The text of the .env file for these secret values."""
    lines = [
        f"# gridbot docker compose secrets, written by `make secrets` on {now:%Y-%m-%d %H:%M} UTC.",
        "# Keep this file private (it is git-ignored) and backed up: without ENCRYPTION_KEY the stored exchange",
        "# keys cannot be read, and PostgreSQL/RabbitMQ keep the passwords they were first started with.",
        "COMPOSE_PROJECT_NAME=gridbot",
        *(f"{name}={value}" for name, value in values.items()),
        "",
        "# Optional: GATEWAY_PUBLISH=0.0.0.0:3000 publishes the gateway beyond loopback (put TLS in front).",
        "",
        "# Development against the exchange simulator instead of the real exchanges: uncomment every line",
        "# below (the services refuse plaintext exchange URLs with ENVIRONMENT=production, compose's default).",
        "# COMPOSE_PROFILES=sim",
        "# ENVIRONMENT=development",
        *(f"# {name}={value}" for name, value in SIM_ENV.items()),
        "",
    ]
    return "\n".join(lines)


def fresh_values() -> dict[str, str]:
    """A new random value for every secret compose requires."""
    return {name: secrets.token_hex(size) for name, size in SECRETS.items()}


def write_env(path: Path) -> bool:
    """Create `path` (mode 0600) with fresh secrets; False, untouched, when it already exists."""
    text = render(fresh_values(), datetime.now(UTC))
    try:
        # O_EXCL: never replace a file, not even one that appeared after a check.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return True


def main(argv: list[str]) -> int:
    """Entry point: `gensecrets.py [path]` (default .env); exit 1 when the file exists."""
    path = Path(argv[0] if argv else ".env")
    if not write_env(path):
        print(
            f"{path} already exists: left untouched. New secrets would lock the deployment out of its data"
            " (ENCRYPTION_KEY, database passwords); move the file away first to really start afresh.",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {path} with fresh secrets (mode 0600); `docker compose up` reads it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
