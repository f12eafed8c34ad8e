"""The error table, language choice and the settings' refusal of placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from common.errors import ERRORS, ErrorCode, error_body, pick_language
from common.settings import DEV_JWT_SECRET, JwtSettings, is_placeholder, redact_settings

API_MD_CODES = {
    "UNAUTHORIZED": (401, "인증이 필요합니다"),
    "INVALID_TOKEN": (401, "유효하지 않은 토큰입니다"),
    "FORBIDDEN": (403, "접근 권한이 없습니다"),
    "USER_NOT_FOUND": (404, "사용자를 찾을 수 없습니다"),
    "BOT_NOT_FOUND": (404, "봇을 찾을 수 없습니다"),
    "CREDENTIAL_NOT_FOUND": (404, "인증 정보를 찾을 수 없습니다"),
    "INVALID_CREDENTIALS": (400, "잘못된 API 인증 정보입니다"),
    "INVALID_PRICE_RANGE": (400, "가격 범위가 올바르지 않습니다"),
    "INSUFFICIENT_BALANCE": (400, "잔액이 부족합니다"),
    "EXCHANGE_API_ERROR": (502, "거래소 API 오류가 발생했습니다"),
    "ORDER_FAILED": (500, "주문 실행에 실패했습니다"),
    "INTERNAL_SERVER_ERROR": (500, "서버 내부 오류가 발생했습니다"),
}
ADDED_CODES = {
    "VALIDATION_ERROR": 400,
    "EMAIL_ALREADY_EXISTS": 409,
    "INVALID_LOGIN": 401,
    "CREDENTIAL_ALREADY_EXISTS": 409,
    "INVALID_ORDER_AMOUNT": 400,
    "UNSUPPORTED_EXCHANGE": 400,
    "TICKER_NOT_FOUND": 404,
    "BOT_RUNNING": 409,
    "RATE_LIMIT_EXCEEDED": 429,
    "NOT_FOUND": 404,
    "SERVICE_UNAVAILABLE": 503,
}


def test_every_api_md_code_has_its_status_and_korean_message() -> None:
    for code, (status, ko) in API_MD_CODES.items():
        spec = ERRORS[ErrorCode(code)]
        assert (spec.status, spec.ko) == (status, ko)
    for code, status in ADDED_CODES.items():
        assert ERRORS[ErrorCode(code)].status == status
    assert all(spec.en and spec.ko for spec in ERRORS.values())


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "ko"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("ko-KR,ko;q=0.9,en;q=0.8", "ko"),
        ("fr-FR", "ko"),
        ("ko;q=0.1, en;q=0.5", "en"),
        ("en;q=garbage", "en"),
    ],
)
def test_language_choice(header: str | None, lang: str) -> None:
    assert pick_language(header) == lang


def test_error_body_shape() -> None:
    body = error_body(ErrorCode.BOT_NOT_FOUND, "ko")
    assert body == {
        "success": False,
        "error": {"code": "BOT_NOT_FOUND", "message": "봇을 찾을 수 없습니다", "details": {}},
    }
    assert error_body(ErrorCode.BOT_NOT_FOUND, "en")["error"]["message"] == "Bot not found"


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("", True),
        ("secret", True),
        (DEV_JWT_SECRET, True),
        ("please-change-me-" + "x" * 40, True),
        ("short-but-random-9f8a", True),
        ("k" * 31, True),
        ("Zq4v8N2rL0pX7mT3wY6sB1cF5hJ9dK2e", False),
    ],
)
def test_placeholder_detection(value: str, placeholder: bool) -> None:
    assert is_placeholder(value) is placeholder


def test_placeholder_secret_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="jwt_secret"):
        JwtSettings()
    monkeypatch.setenv("JWT_SECRET", "Zq4v8N2rL0pX7mT3wY6sB1cF5hJ9dK2e")
    monkeypatch.setenv("JWT_PREVIOUS_KEYS", '{"k0": "changeme"}')
    with pytest.raises(ValidationError, match=r"jwt_previous_keys\[k0\]"):
        JwtSettings()
    monkeypatch.setenv("JWT_PREVIOUS_KEYS", "{}")
    settings = JwtSettings()
    assert settings.jwt_secret.get_secret_value().startswith("Zq4v")


def test_placeholder_secret_accepted_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    assert JwtSettings().jwt_secret.get_secret_value() == DEV_JWT_SECRET


def test_secrets_never_appear_in_repr_or_redacted_dump() -> None:
    settings = JwtSettings(jwt_secret=SecretStr("Zq4v8N2rL0pX7mT3wY6sB1cF5hJ9dK2e"))
    assert "Zq4v" not in repr(settings)
    assert "Zq4v" not in str(redact_settings(settings))
