"""A user's exchange keys from the credentials service's internal route, held only in memory.

`GET {CREDENTIALS_URL}/internal/credentials/{user_id}/{exchange}` with `Authorization: Bearer
<INTERNAL_KEYS_TOKEN>` answers `{"success": true, "data": {"apiKey", "secretKey"}}`. The keys are never
logged or written anywhere; they live in the ccxt client (and stream) built from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from common import tracing
from common.exchanges import ErrorKind, Exchange, PermanentExchangeError, TransientExchangeError


@dataclass(frozen=True)
class Keys:
    """An API key pair (the secret is excluded from repr)."""

    api_key: str
    secret: str = field(repr=False)


class CredentialsClient:
    """Fetches keys on demand; a missing credential is a permanent error, an outage a transient one."""

    def __init__(
        self, base_url: str, token: str, timeout: float, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            event_hooks=tracing.internal_client_hooks(),  # request id and trace context go along
        )

    async def keys(self, user_id: str, exchange: Exchange) -> Keys:
        """The user's keys for the exchange."""
        path = f"/internal/credentials/{user_id}/{exchange.value}"
        try:
            response = await self._http.get(path, headers={"Authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            raise TransientExchangeError(f"credentials service unreachable: {type(exc).__name__}") from None
        if response.status_code == 404:
            raise PermanentExchangeError(
                "CREDENTIAL_NOT_FOUND: no API keys are stored for this exchange",
                ErrorKind.AUTHENTICATION,
                exchange=exchange.value,
            )
        if response.status_code in (401, 403):
            raise PermanentExchangeError(
                "the credentials service refused the engine's internal token",
                ErrorKind.PERMISSION,
                exchange=exchange.value,
            )
        if response.status_code != 200:
            raise TransientExchangeError(f"credentials service answered {response.status_code}")
        try:
            data = response.json()["data"]
            return Keys(api_key=str(data["apiKey"]), secret=str(data["secretKey"]))
        except (ValueError, KeyError, TypeError):
            raise TransientExchangeError("credentials service answered an unreadable body") from None

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
