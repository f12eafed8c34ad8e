"""Channels at rest and in use: public fields stored plain, the secret sealed (common.crypto, as exchange keys
are), and what a sender needs once the secret is opened."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from common.crypto import KeyRing, aad
from notifier.models import Channel
from notifier.schemas import (
    ChannelIn,
    ChannelRead,
    DiscordChannelIn,
    SlackChannelIn,
    TelegramChannelIn,
    WebhookChannelIn,
)

PURPOSE = "gridbot.notifier.channel"


def associated_data(user_id: uuid.UUID, channel_id: uuid.UUID, kind: str) -> bytes:
    """AAD binding a sealed secret to its owner, its channel and the channel's kind."""
    return aad(PURPOSE, str(user_id), str(channel_id), kind)


@dataclass(frozen=True, slots=True)
class OpenChannel:
    """A channel ready to send on; repr never shows the secret."""

    id: uuid.UUID
    type: str
    url: str | None  # a webhook's target
    secret: str | None  # the webhook's signing secret, or the apprise URL of another kind

    def __repr__(self) -> str:
        return f"OpenChannel(id={self.id}, type={self.type!r}, secret={'****' if self.secret else None})"

    @property
    def apprise_url(self) -> str | None:
        """The apprise URL of a Telegram, Slack or Discord channel (None for a webhook)."""
        return None if self.type == "webhook" else self.secret


def new_row(ring: KeyRing, user_id: uuid.UUID, position: int, channel: ChannelIn) -> Channel:
    """A channel row for a requested channel: its secret sealed under the current key."""
    channel_id = uuid.uuid4()
    config: dict[str, str] = {}
    secret: str | None
    if isinstance(channel, WebhookChannelIn):
        config["url"] = channel.url
        secret = channel.secret
    elif isinstance(channel, TelegramChannelIn):
        config["chatId"] = channel.chat_id
        secret = f"tgram://{channel.bot_token}/{channel.chat_id}"
    else:
        assert isinstance(channel, SlackChannelIn | DiscordChannelIn)
        # apprise reads Slack's and Discord's own hook URLs; the URL is the secret (it carries the token).
        secret = channel.webhook_url
    sealed = ring.seal(secret, associated_data(user_id, channel_id, channel.type)) if secret else None
    return Channel(
        id=channel_id, user_id=user_id, position=position, type=channel.type, config=config, secret=sealed
    )


def open_row(ring: KeyRing, row: Channel) -> OpenChannel:
    """The stored channel with its secret opened (DecryptionError when it is not this row's)."""
    secret = ring.open(row.secret, associated_data(row.user_id, row.id, row.type)) if row.secret else None
    return OpenChannel(row.id, row.type, row.config.get("url"), secret)


def view(row: Channel) -> ChannelRead:
    """What reads show of a channel."""
    return ChannelRead(
        channel_id=row.id,
        type=row.type,  # type: ignore[arg-type]
        url=row.config.get("url"),
        chat_id=row.config.get("chatId"),
        has_secret=row.secret is not None,
    )
