"""Request and response bodies of the notification routes (camelCase on the wire; secrets only ever in)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from common.contracts.public import Id, Pagination, PublicModel, Time, absent
from common.schemas import ExactNumber, RequestModel

EventName = Literal["bot_status", "trade", "error", "profit_target"]
EVENT_NAMES: tuple[EventName, ...] = ("bot_status", "trade", "error", "profit_target")
# Trades are opt-in: everything else is on when a user's settings leave `events` out.
DEFAULT_EVENTS: tuple[EventName, ...] = ("bot_status", "error", "profit_target")
MAX_CHANNELS = 10
PERCENT_MAX = Decimal(1_000_000)
_PERCENT = ExactNumber()


def _percent(value: Any) -> Decimal | None:
    if value is None:
        return None
    result = _PERCENT.validate(value)
    if not 0 < result < PERCENT_MAX:
        raise PydanticCustomError("percent_range", f"must be above 0 and below {PERCENT_MAX}")
    return result


Percent = Annotated[
    Decimal | None,
    PlainValidator(_percent),
    WithJsonSchema({"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1_000_000}),
]
_PORT = r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
_HOST = r"(([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+\.?|\[[0-9A-Fa-f:.]+\])"
# An http(s) URL with a host and no credentials (the SSRF guard then checks where the host leads).
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        pattern=rf"^https?://{_HOST}{_PORT}([/?#][\x21-\x7e]*)?$",
        examples=["https://example.com/gridbot"],
    ),
]
Secret = Annotated[str, Field(min_length=8, max_length=256, pattern=r"^[\x21-\x7e]+$")]


class WebhookChannelIn(RequestModel):
    """A JSON POST signed `X-Gridbot-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`."""

    type: Literal["webhook"]
    url: Url
    secret: Secret | None = None


class TelegramChannelIn(RequestModel):
    """A Telegram bot's messages to a chat (through apprise)."""

    type: Literal["telegram"]
    bot_token: Annotated[str, Field(pattern=r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,80}$")]
    chat_id: Annotated[str, Field(pattern=r"^(-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64})$")]


class SlackChannelIn(RequestModel):
    """A Slack incoming webhook (`https://hooks.slack.com/services/...`, through apprise)."""

    type: Literal["slack"]
    webhook_url: Annotated[
        str,
        Field(
            max_length=512,
            pattern=r"^https://hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+$",
        ),
    ]


class DiscordChannelIn(RequestModel):
    """A Discord webhook (`https://discord.com/api/webhooks/<id>/<token>`, through apprise)."""

    type: Literal["discord"]
    webhook_url: Annotated[
        str,
        Field(
            max_length=512,
            pattern=r"^https://(discord|discordapp)\.com/api/webhooks/[0-9]{1,30}/[A-Za-z0-9_-]{1,200}$",
        ),
    ]


ChannelIn = Annotated[
    WebhookChannelIn | TelegramChannelIn | SlackChannelIn | DiscordChannelIn, Field(discriminator="type")
]


class UpdateSettingsRequest(RequestModel):
    """PUT /notifications/settings: the whole settings, replacing the previous ones (secrets sent again)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channels": [
                        {
                            "type": "webhook",
                            "url": "https://example.com/gridbot",
                            "secret": "a-long-random-secret",
                        },
                        {
                            "type": "telegram",
                            "botToken": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
                            "chatId": "-1001234567890",
                        },
                    ],
                    "events": ["bot_status", "trade", "error", "profit_target"],
                    "profitTargetPercent": 10,
                }
            ]
        }
    )

    channels: list[ChannelIn] = Field(max_length=MAX_CHANNELS)
    events: list[EventName] = Field(default_factory=lambda: list(DEFAULT_EVENTS), max_length=len(EVENT_NAMES))
    profit_target_percent: Percent = None


class ChannelRead(PublicModel):
    """A channel as reads show it: its kind and public fields; whether it holds a secret, never the secret."""

    channel_id: Id
    type: Literal["webhook", "telegram", "slack", "discord"]
    url: str | None = Field(default=None, exclude_if=absent)
    chat_id: str | None = Field(default=None, exclude_if=absent)
    has_secret: bool


class SettingsRead(PublicModel):
    """`data` of GET and PUT /notifications/settings."""

    channels: list[ChannelRead]
    events: list[EventName]
    profit_target_percent: Annotated[Decimal | None, WithJsonSchema({"type": ["number", "null"]})] = None


class DeliveryRead(PublicModel):
    """One delivery: what it carried to which channel, and how it went."""

    delivery_id: Id
    channel_id: Id
    channel_type: str
    event: str
    status: Literal["pending", "succeeded", "failed", "dead"]
    attempts: int
    last_error: str | None = Field(default=None, exclude_if=absent)
    next_attempt_at: Time | None = Field(default=None, exclude_if=absent)
    created_at: Time
    delivered_at: Time | None = Field(default=None, exclude_if=absent)


class DeliveryList(PublicModel):
    """`data` of GET /notifications/deliveries (newest first)."""

    deliveries: list[DeliveryRead]
    pagination: Pagination


class TestQueued(PublicModel):
    """`data` of POST /notifications/test: one delivery per channel."""

    deliveries: list[DeliveryRead]
