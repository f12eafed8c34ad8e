"""The public credential routes (served at their public paths: the gateway forwards them unchanged)."""

from __future__ import annotations

from starlette.responses import Response

from common.errors import ErrorCode
from common.exchanges import parse_exchange
from common.i18n import t
from common.openapi import ExchangeInPath, errors
from common.schemas import MessageOnly, Success
from common.security import CurrentUser
from common.web import ApiRouter, iso_utc, ok
from credentials.deps import DbSession, ReadSession, Service
from credentials.models import Credential
from credentials.schemas import (
    CreateCredentialRequest,
    CreatedData,
    CredentialDetail,
    CredentialList,
    UpdateCredentialRequest,
    UpdatedData,
    ValidateCredentialsRequest,
    ValidateData,
)
from credentials.service import Changes
from credentials.vault import ExchangeKeys, mask_last4

router = ApiRouter(prefix="/api", tags=["credentials"])

# Reads carry account data: no shared cache may keep them.
_NO_STORE = {"Cache-Control": "no-store"}


def _summary(row: Credential) -> dict[str, object]:
    return {
        "_id": str(row.id),
        "exchange": row.exchange,
        "apiKey": mask_last4(row.key_last4),
        "isValid": row.is_valid,
        "lastValidatedAt": iso_utc(row.last_validated_at) if row.last_validated_at else None,
        "createdAt": iso_utc(row.created_at),
    }


def _no_store(response: Response) -> Response:
    response.headers.update(_NO_STORE)
    return response


@router.post(
    "/exchange/validate-credentials",
    response_model=Success[ValidateData],
    tags=["exchange"],
    responses=errors(
        ErrorCode.UNSUPPORTED_EXCHANGE, ErrorCode.INVALID_CREDENTIALS, ErrorCode.EXCHANGE_API_ERROR
    ),
)
async def validate_credentials(
    body: ValidateCredentialsRequest, principal: CurrentUser, service: Service
) -> Response:
    """Check keys against the exchange (fetches the quote balance); stores nothing."""
    exchange = parse_exchange(body.exchange)
    info = await service.validate(exchange, ExchangeKeys(body.api_key, body.secret_key))
    return _no_store(
        ok(
            {"isValid": True, "accountInfo": info.to_wire()},
            t("API 인증 정보가 유효합니다", "API credentials are valid"),
        )
    )


@router.post(
    "/credentials",
    status_code=201,
    response_model=Success[CreatedData],
    responses=errors(
        ErrorCode.UNSUPPORTED_EXCHANGE,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.EXCHANGE_API_ERROR,
        ErrorCode.CREDENTIAL_ALREADY_EXISTS,
    ),
)
async def create_credential(
    body: CreateCredentialRequest, principal: CurrentUser, read: ReadSession, db: DbSession, service: Service
) -> Response:
    """Validate keys against the exchange, then store them encrypted."""
    exchange = parse_exchange(body.exchange)
    saved = await service.create(
        read, db, principal.user_id, exchange, ExchangeKeys(body.api_key, body.secret_key), body.ip_whitelist
    )
    data = {
        "credentialId": str(saved.credential.id),
        "exchange": exchange.value,
        "isValid": saved.credential.is_valid,
        "warnings": saved.warnings,
    }
    return ok(data, t("인증 정보가 저장되었습니다", "Credentials saved"), status_code=201)


@router.get("/credentials", response_model=Success[CredentialList])
async def list_credentials(principal: CurrentUser, read: ReadSession, service: Service) -> Response:
    """The user's credentials, keys masked."""
    rows = await service.list(read, principal.user_id)
    return _no_store(ok({"credentials": [_summary(row) for row in rows]}))


@router.get(
    "/credentials/{exchange}",
    response_model=Success[CredentialDetail],
    responses=errors(ErrorCode.UNSUPPORTED_EXCHANGE, ErrorCode.CREDENTIAL_NOT_FOUND),
)
async def get_credential(
    exchange: ExchangeInPath, principal: CurrentUser, read: ReadSession, service: Service
) -> Response:
    """One credential, key masked, with its IP whitelist."""
    row = await service.get(read, principal.user_id, parse_exchange(exchange))
    return _no_store(ok({**_summary(row), "ipWhitelist": row.ip_whitelist}))


@router.put(
    "/credentials/{exchange}",
    response_model=Success[UpdatedData],
    responses=errors(
        ErrorCode.UNSUPPORTED_EXCHANGE,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.EXCHANGE_API_ERROR,
        ErrorCode.CREDENTIAL_NOT_FOUND,
    ),
)
async def update_credential(
    exchange: ExchangeInPath,
    body: UpdateCredentialRequest,
    principal: CurrentUser,
    read: ReadSession,
    db: DbSession,
    service: Service,
) -> Response:
    """Change keys and/or the whitelist; the result is re-validated before anything is stored."""
    venue = parse_exchange(exchange)
    changes = Changes(
        api_key=body.api_key,
        secret_key=body.secret_key,
        ip_whitelist=body.ip_whitelist,
        ip_whitelist_set="ip_whitelist" in body.model_fields_set,
    )
    saved = await service.update(read, db, principal.user_id, venue, changes)
    data = {
        "exchange": venue.value,
        "isValid": saved.credential.is_valid,
        "updatedAt": iso_utc(saved.credential.updated_at),
        "warnings": saved.warnings,
    }
    return ok(data, t("인증 정보가 업데이트되었습니다", "Credentials updated"))


@router.delete(
    "/credentials/{exchange}",
    response_model=MessageOnly,
    responses=errors(ErrorCode.UNSUPPORTED_EXCHANGE, ErrorCode.CREDENTIAL_NOT_FOUND),
)
async def delete_credential(
    exchange: ExchangeInPath, principal: CurrentUser, db: DbSession, service: Service
) -> Response:
    """Delete the credential; the user's running live bots of that exchange are stopped (bus event)."""
    await service.delete(db, principal.user_id, parse_exchange(exchange))
    return ok(message=t("인증 정보가 삭제되었습니다", "Credentials deleted"))
