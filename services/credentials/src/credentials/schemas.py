"""Request and response bodies of the credentials routes (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from common.openapi import EXCHANGE_IDS, one_of
from common.schemas import RequestModel, ResponseModel
from credentials.models import IP_WHITELIST_LENGTH
from credentials.whitelist import WhitelistError, normalise_whitelist

KEY_MIN = 8
KEY_MAX = 512


def _whitelist(value: str | None) -> str | None:
    try:
        stored = normalise_whitelist(value)
    except WhitelistError as exc:
        raise PydanticCustomError("whitelist", str(exc)) from None
    # The canonical form can be longer than what was sent (", " between entries): bound what is stored.
    if stored is not None and len(stored) > IP_WHITELIST_LENGTH:
        raise PydanticCustomError(
            "whitelist_length",
            f"at most {IP_WHITELIST_LENGTH} characters once normalised ({len(stored)})",
        )
    return stored


# Exchange keys are printable ASCII without spaces (Upbit and Binance issue alphanumeric ones); anything
# else is refused before it is ever sent anywhere. Validation messages never quote the value.
Key = Annotated[str, Field(min_length=KEY_MIN, max_length=KEY_MAX, pattern=r"^[\x21-\x7e]+$")]
ExchangeId = Annotated[str, Field(min_length=1, max_length=32), WithJsonSchema(one_of(*EXCHANGE_IDS))]
Whitelist = Annotated[str | None, Field(max_length=IP_WHITELIST_LENGTH), AfterValidator(_whitelist)]


class ValidateCredentialsRequest(RequestModel):
    """POST /exchange/validate-credentials."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"exchange": "upbit", "apiKey": "your-access-key", "secretKey": "your-secret-key"}]
        }
    )

    exchange: ExchangeId
    api_key: Key
    secret_key: Key


class CreateCredentialRequest(RequestModel):
    """POST /credentials."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "exchange": "upbit",
                    "apiKey": "your-access-key",
                    "secretKey": "your-secret-key",
                    "ipWhitelist": "203.0.113.7",
                }
            ]
        }
    )

    exchange: ExchangeId
    api_key: Key
    secret_key: Key
    ip_whitelist: Whitelist = None


class UpdateCredentialRequest(RequestModel):
    """PUT /credentials/:exchange: any of the fields; `ipWhitelist: null` or "" clears the whitelist."""

    model_config = ConfigDict(
        json_schema_extra={"minProperties": 1, "examples": [{"ipWhitelist": "203.0.113.7, 198.51.100.0/24"}]}
    )

    api_key: Key | None = None
    secret_key: Key | None = None
    ip_whitelist: Whitelist = None

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("at least one of apiKey, secretKey, ipWhitelist is required")
        return self


class AccountInfoData(ResponseModel):
    """`accountInfo`: the quote currency (KRW on Upbit, USDT on Binance)."""

    currency: str
    balance: float
    locked: float
    avg_buy_price: float


class ValidateData(ResponseModel):
    """`data` of POST /exchange/validate-credentials."""

    is_valid: bool
    account_info: AccountInfoData


class CreatedData(ResponseModel):
    """`data` of POST /credentials."""

    credential_id: str
    exchange: str
    is_valid: bool
    warnings: list[str]


class CredentialSummary(ResponseModel):
    """One credential in GET /credentials (the key masked, the secret never shown)."""

    id: str = Field(alias="_id")
    exchange: str
    api_key: str = Field(examples=["****_****_****-ab12"])
    is_valid: bool
    last_validated_at: str | None
    created_at: str


class CredentialDetail(CredentialSummary):
    """GET /credentials/:exchange."""

    ip_whitelist: str | None


class CredentialList(ResponseModel):
    """`data` of GET /credentials."""

    credentials: list[CredentialSummary]


class UpdatedData(ResponseModel):
    """`data` of PUT /credentials/:exchange."""

    exchange: str
    is_valid: bool
    updated_at: str
    warnings: list[str]


def dump(model: ResponseModel) -> dict[str, Any]:
    """A response model as its wire dict."""
    return model.model_dump(by_alias=True)
