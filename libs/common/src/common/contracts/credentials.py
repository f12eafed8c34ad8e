"""Credential lifecycle messages on the durable topic exchange `credentials` (published by credentials).

Routing keys: `credential.updated` (the user replaced their keys for an exchange), `credential.deleted`
(the user deleted them) and `credential.invalidated` (a periodic re-validation found the stored keys
rejected by the exchange). The engine consumes `updated` and `deleted`: it drops the client and private
stream it built from the old keys, and stops that user's live bots of that exchange (`deleted`, or
`updated` to another account's keys) after cancelling their orders with the old keys. The bots service
consumes `invalidated`: it puts those bots into `error`. Messages are relayed from the credentials
service's outbox after the change committed, at least once: a consumer deduplicates by the envelope's
`message_id`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from common.exchanges.ids import Exchange

CREDENTIALS_EXCHANGE = "credentials"
"""The durable topic exchange carrying credential lifecycle events."""


class CredentialEventType(StrEnum):
    """Routing keys of credential lifecycle messages."""

    UPDATED = "credential.updated"
    DELETED = "credential.deleted"
    INVALIDATED = "credential.invalidated"


class CredentialEventReason(StrEnum):
    """Why the event happened."""

    UPDATED_BY_USER = "updated_by_user"
    DELETED_BY_USER = "deleted_by_user"
    REJECTED_BY_EXCHANGE = "rejected_by_exchange"


class CredentialEvent(BaseModel):
    """A user's credential for one exchange changed, is gone or no longer works."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=64)
    exchange: Exchange
    reason: str = Field(min_length=1, max_length=100)
    credential_id: str | None = Field(default=None, max_length=64)
