"""Credential lifecycle messages on the durable topic exchange `credentials` (published by credentials).

Routing keys: `credential.deleted` (the user deleted their keys for an exchange) and
`credential.invalidated` (a periodic re-validation found the stored keys rejected by the exchange).
The bots service consumes both: it stops (deleted) or puts into `error` (invalidated) that user's running
live bots of that exchange. Messages are relayed from the credentials service's outbox, at least once:
a consumer deduplicates by the envelope's `message_id`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from common.exchanges.ids import Exchange

CREDENTIALS_EXCHANGE = "credentials"
"""The durable topic exchange carrying credential lifecycle events."""


class CredentialEventType(StrEnum):
    """Routing keys of credential lifecycle messages."""

    DELETED = "credential.deleted"
    INVALIDATED = "credential.invalidated"


class CredentialEventReason(StrEnum):
    """Why the event happened (the bots service puts it into a bot's errorMessage)."""

    DELETED_BY_USER = "deleted_by_user"
    REJECTED_BY_EXCHANGE = "rejected_by_exchange"


class CredentialEvent(BaseModel):
    """A user's credential for one exchange is gone or no longer works; their live bots there must halt."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=64)
    exchange: Exchange
    reason: str = Field(min_length=1, max_length=100)
    credential_id: str | None = Field(default=None, max_length=64)
