"""The OpenAPI document every service serves: its real error answers, bearer security and examples.

FastAPI documents a 422 `HTTPValidationError` that no route of ours ever answers. `install_openapi` rewrites
each operation's responses once, when the document is first asked for: the error envelope of API.md under
each status an operation can answer, listing the codes it can carry (`x-error-codes`) with an example body
per code. A route declares its own domain codes with `responses=errors(...)`; the codes every route of a
kind can answer (validation, token, rate limit, outage) are added here, so no route lists them by hand.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Path

from common.errors import ERRORS, ErrorCode, error_body
from common.exchanges.ids import Exchange
from common.security.deps import BEARER_DESCRIPTION, BEARER_SCHEME

__all__ = [
    "BEARER_SCHEME",
    "EXCHANGE_IDS",
    "ExchangeInPath",
    "bearer_scheme",
    "complete",
    "errors",
    "install_openapi",
    "one_of",
]

ENVELOPE = "ErrorEnvelope"
CODES_KEY = "x-error-codes"
_ENVELOPE_REF = {"$ref": f"#/components/schemas/{ENVELOPE}"}

# Every route of a kind can answer these; a route never has to declare them.
ALWAYS = (ErrorCode.RATE_LIMIT_EXCEEDED, ErrorCode.INTERNAL_SERVER_ERROR, ErrorCode.SERVICE_UNAVAILABLE)
WITH_INPUT = (ErrorCode.VALIDATION_ERROR,)
WITH_BODY = (ErrorCode.PAYLOAD_TOO_LARGE,)
# A path parameter such as ".." makes the path one the gateway does not route.
WITH_PATH_PARAMETER = (ErrorCode.NOT_FOUND,)
WITH_TOKEN = (ErrorCode.UNAUTHORIZED, ErrorCode.INVALID_TOKEN)

_EXAMPLE_DETAILS: dict[ErrorCode, dict[str, Any]] = {
    ErrorCode.VALIDATION_ERROR: {"fields": [{"field": "orderAmount", "reason": "must be a number"}]},
    ErrorCode.SERVICE_UNAVAILABLE: {"service": "bots"},
    ErrorCode.EXCHANGE_API_ERROR: {"exchange": "upbit"},
    ErrorCode.UNSUPPORTED_EXCHANGE: {"exchange": "kraken"},
    ErrorCode.TICKER_NOT_FOUND: {"exchange": "upbit", "ticker": "KRW-XYZ"},
    ErrorCode.INVALID_PRICE_RANGE: {"reason": "0 < lowerPrice < upperPrice is required"},
}

_INT_HEADER = {"schema": {"type": "integer", "minimum": 0}}
_REQUEST_ID_HEADER = {
    "description": "The request's id (echoed when the client sent one), to follow it through the logs.",
    "required": True,
    "schema": {"type": "string"},
}
_RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "required": True, **_INT_HEADER},
    "X-RateLimit-Limit": {"description": "Requests allowed per window.", "required": True, **_INT_HEADER},
    "X-RateLimit-Remaining": {
        "description": "Requests left in this window.",
        "required": True,
        **_INT_HEADER,
    },
    "X-RateLimit-Reset": {
        "description": "When the window resets (epoch seconds).",
        "required": True,
        **_INT_HEADER,
    },
}

_BUSY_RETRY_HEADER = {
    "description": "Only when the gateway refused the request because the service already had its cap of "
    "requests in flight (it never reached the service): seconds to wait before trying again.",
    "required": False,
    **_INT_HEADER,
}


def one_of(*values: str) -> dict[str, Any]:
    """The JSON schema of a string that must be one of `values` (for parameters a handler checks itself)."""
    return {"type": "string", "enum": list(values)}


EXCHANGE_IDS = tuple(exchange.value for exchange in Exchange)
# The handler answers any other id with UNSUPPORTED_EXCHANGE; the document names the ones that exist.
ExchangeInPath = Annotated[str, Path(json_schema_extra=one_of(*EXCHANGE_IDS))]


def errors(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: the domain error codes it can answer (the common ones are added for it)."""
    by_status: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry = by_status.setdefault(ERRORS[code].status, {"description": "", CODES_KEY: []})
        entry[CODES_KEY].append(code.value)
    return by_status


def envelope_schema() -> dict[str, Any]:
    """The JSON schema of the error envelope (`{"success": false, "error": {code, message, details}}`)."""
    return {
        "title": ENVELOPE,
        "description": "Every error of every route. `code` is one of the codes listed with each response.",
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "const": False},
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string", "enum": [code.value for code in ErrorCode]},
                    "message": {
                        "type": "string",
                        "description": "Korean by default; English with `Accept-Language: en`.",
                    },
                    "details": {
                        "type": "object",
                        "description": "VALIDATION_ERROR: `fields`, one `{field, reason}` per bad field.",
                    },
                },
            },
        },
    }


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` document real error answers and bearer security."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI caches its document (and rebuilds it when routes change): complete each one once.
        document = generate()
        if ENVELOPE not in document.get("components", {}).get("schemas", {}):
            complete(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite every operation of `document`: its error responses and security; FastAPI's 422 goes."""
    for item in (document.get("paths") or {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                _complete_operation(operation)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas[ENVELOPE] = envelope_schema()
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = bearer_scheme()
    return document


def bearer_scheme() -> dict[str, Any]:
    """The security scheme of the access token."""
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": BEARER_DESCRIPTION,
    }


def _complete_operation(operation: dict[str, Any]) -> None:
    # FastAPI writes the scheme of `common.security.CurrentUser` into every route that depends on it.
    secured = any(BEARER_SCHEME in requirement for requirement in operation.get("security") or [])
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    codes: list[ErrorCode] = []
    for status in list(responses):
        declared = responses[status].get(CODES_KEY)
        if declared is not None:
            codes.extend(ErrorCode(code) for code in declared)
            del responses[status]
    parameters = operation.get("parameters") or []
    codes.extend(ALWAYS)
    if parameters or "requestBody" in operation:
        codes.extend(WITH_INPUT)
    if "requestBody" in operation:
        codes.extend(WITH_BODY)
    if any(p.get("in") == "path" for p in parameters):
        codes.extend(WITH_PATH_PARAMETER)
    if secured:
        codes.extend(WITH_TOKEN)
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):  # unique, first declaration order
        by_status.setdefault(ERRORS[code].status, []).append(code)
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-ID"] = dict(_REQUEST_ID_HEADER)
    for code_status in sorted(by_status):
        responses[str(code_status)] = error_response_doc(by_status[code_status])
    operation["security"] = [{BEARER_SCHEME: []}] if secured else []


def error_response_doc(codes: list[ErrorCode]) -> dict[str, Any]:
    """One status's response object: the envelope, its codes and an example body per code."""
    names = [code.value for code in codes]
    headers: dict[str, Any] = {"X-Request-ID": dict(_REQUEST_ID_HEADER)}
    if ErrorCode.RATE_LIMIT_EXCEEDED in codes:
        headers.update(_RATE_LIMIT_HEADERS)
    if ErrorCode.SERVICE_UNAVAILABLE in codes:
        headers["Retry-After"] = _BUSY_RETRY_HEADER
    return {
        "description": "; ".join(f"`{code.value}`: {ERRORS[code].en}" for code in codes),
        "headers": headers,
        "content": {
            "application/json": {
                "schema": _ENVELOPE_REF,
                "examples": {
                    code.value: {
                        "summary": ERRORS[code].en,
                        "value": error_body(code, "ko", _EXAMPLE_DETAILS.get(code)),
                    }
                    for code in codes
                },
            }
        },
        CODES_KEY: names,
    }
