"""Error codes of the public contract (API.md), their HTTP status and ko/en messages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every error code a client can see, exactly as API.md names them."""

    UNAUTHORIZED = "UNAUTHORIZED"
    INVALID_TOKEN = "INVALID_TOKEN"
    FORBIDDEN = "FORBIDDEN"
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    BOT_NOT_FOUND = "BOT_NOT_FOUND"
    BACKTEST_NOT_FOUND = "BACKTEST_NOT_FOUND"
    CREDENTIAL_NOT_FOUND = "CREDENTIAL_NOT_FOUND"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INVALID_PRICE_RANGE = "INVALID_PRICE_RANGE"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    EXCHANGE_API_ERROR = "EXCHANGE_API_ERROR"
    ORDER_FAILED = "ORDER_FAILED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    EMAIL_ALREADY_EXISTS = "EMAIL_ALREADY_EXISTS"
    INVALID_LOGIN = "INVALID_LOGIN"
    CREDENTIAL_ALREADY_EXISTS = "CREDENTIAL_ALREADY_EXISTS"
    INVALID_ORDER_AMOUNT = "INVALID_ORDER_AMOUNT"
    UNSUPPORTED_EXCHANGE = "UNSUPPORTED_EXCHANGE"
    TICKER_NOT_FOUND = "TICKER_NOT_FOUND"
    BOT_RUNNING = "BOT_RUNNING"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # Not in API.md's tables; HTTP semantics a client expects (documented in docs/api-additions.md).
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """HTTP status and localized messages of one error code."""

    status: int
    ko: str
    en: str


ERRORS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.UNAUTHORIZED: ErrorSpec(401, "인증이 필요합니다", "Authentication required"),
    ErrorCode.INVALID_TOKEN: ErrorSpec(401, "유효하지 않은 토큰입니다", "Invalid token"),
    ErrorCode.FORBIDDEN: ErrorSpec(403, "접근 권한이 없습니다", "Access denied"),
    ErrorCode.ACCOUNT_DISABLED: ErrorSpec(403, "비활성화된 계정입니다", "This account is disabled"),
    ErrorCode.USER_NOT_FOUND: ErrorSpec(404, "사용자를 찾을 수 없습니다", "User not found"),
    ErrorCode.BOT_NOT_FOUND: ErrorSpec(404, "봇을 찾을 수 없습니다", "Bot not found"),
    ErrorCode.BACKTEST_NOT_FOUND: ErrorSpec(404, "백테스트를 찾을 수 없습니다", "Backtest not found"),
    ErrorCode.CREDENTIAL_NOT_FOUND: ErrorSpec(404, "인증 정보를 찾을 수 없습니다", "Credential not found"),
    ErrorCode.INVALID_CREDENTIALS: ErrorSpec(400, "잘못된 API 인증 정보입니다", "Invalid API credentials"),
    ErrorCode.INVALID_PRICE_RANGE: ErrorSpec(400, "가격 범위가 올바르지 않습니다", "Invalid price range"),
    ErrorCode.INSUFFICIENT_BALANCE: ErrorSpec(400, "잔액이 부족합니다", "Insufficient balance"),
    ErrorCode.EXCHANGE_API_ERROR: ErrorSpec(502, "거래소 API 오류가 발생했습니다", "Exchange API error"),
    ErrorCode.ORDER_FAILED: ErrorSpec(500, "주문 실행에 실패했습니다", "Order execution failed"),
    ErrorCode.INTERNAL_SERVER_ERROR: ErrorSpec(500, "서버 내부 오류가 발생했습니다", "Internal server error"),
    ErrorCode.VALIDATION_ERROR: ErrorSpec(400, "입력값이 올바르지 않습니다", "Invalid request input"),
    ErrorCode.EMAIL_ALREADY_EXISTS: ErrorSpec(409, "이미 가입된 이메일입니다", "Email is already registered"),
    ErrorCode.INVALID_LOGIN: ErrorSpec(
        401, "이메일 또는 비밀번호가 올바르지 않습니다", "Invalid email or password"
    ),
    ErrorCode.CREDENTIAL_ALREADY_EXISTS: ErrorSpec(
        409, "이미 등록된 거래소 인증 정보입니다", "A credential for this exchange already exists"
    ),
    ErrorCode.INVALID_ORDER_AMOUNT: ErrorSpec(
        400, "주문 금액이 거래소 최소 주문 금액보다 작습니다", "Order amount is below the minimum"
    ),
    ErrorCode.UNSUPPORTED_EXCHANGE: ErrorSpec(400, "지원하지 않는 거래소입니다", "Unsupported exchange"),
    ErrorCode.TICKER_NOT_FOUND: ErrorSpec(404, "티커를 찾을 수 없습니다", "Ticker not found"),
    ErrorCode.BOT_RUNNING: ErrorSpec(
        409, "실행 중인 봇은 변경할 수 없습니다", "Stop the bot before this change"
    ),
    ErrorCode.RATE_LIMIT_EXCEEDED: ErrorSpec(429, "요청 한도를 초과했습니다", "Rate limit exceeded"),
    ErrorCode.NOT_FOUND: ErrorSpec(404, "요청한 경로를 찾을 수 없습니다", "Route not found"),
    ErrorCode.SERVICE_UNAVAILABLE: ErrorSpec(
        503, "서비스를 일시적으로 사용할 수 없습니다", "Service temporarily unavailable"
    ),
    ErrorCode.METHOD_NOT_ALLOWED: ErrorSpec(405, "허용되지 않은 메서드입니다", "Method not allowed"),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorSpec(413, "요청 본문이 너무 큽니다", "Request body too large"),
}


def pick_language(accept_language: str | None) -> str:
    """Return "en" when the client prefers English, else "ko" (the contract's default)."""
    if not accept_language:
        return "ko"
    best_lang, best_q = "ko", -1.0
    for part in accept_language.split(","):
        piece = part.strip()
        if not piece:
            continue
        lang, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = lang.strip().lower().split("-")[0]
        if primary in ("en", "ko") and q > best_q:
            best_lang, best_q = primary, q
    return best_lang


def message_for(code: ErrorCode, lang: str) -> str:
    """Localized message of a code."""
    spec = ERRORS[code]
    return spec.en if lang == "en" else spec.ko


def error_body(code: ErrorCode, lang: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error envelope of API.md."""
    return {
        "success": False,
        "error": {"code": code.value, "message": message_for(code, lang), "details": details or {}},
    }


class AppError(Exception):
    """An error that reaches the client as the contract's envelope."""

    def __init__(
        self,
        code: ErrorCode,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code.value)
        self.code = code
        self.details = details or {}
        self.headers = headers or {}

    @property
    def status(self) -> int:
        """HTTP status of this error."""
        return ERRORS[self.code].status
