"""Upbit's error bodies {"error": {"name": ..., "message": ...}} and HTTP statuses."""

from __future__ import annotations

from starlette.responses import Response

from exchange_sim.http import json_response


class UpbitError(Exception):
    """An error Upbit would answer with."""

    def __init__(self, status: int, name: str | int, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name
        self.message = message

    def response(self) -> Response:
        """The error as Upbit sends it."""
        return json_response({"error": {"name": self.name, "message": self.message}}, self.status)


# Messages as Upbit's documentation and API reference show them.
def jwt_verification() -> UpbitError:
    """The token is malformed or its signature does not verify."""
    return UpbitError(401, "jwt_verification", "JWT 토큰 검증에 실패했습니다.")


def invalid_access_key() -> UpbitError:
    """No account has this access key."""
    return UpbitError(401, "invalid_access_key", "잘못된 엑세스 키입니다.")


def invalid_query_payload() -> UpbitError:
    """The token's query_hash does not match the request's parameters."""
    return UpbitError(401, "invalid_query_payload", "JWT 헤더의 페이로드가 올바르지 않습니다.")


def nonce_used() -> UpbitError:
    """The token's nonce was used before."""
    return UpbitError(401, "nonce_used", "이미 요청한 nonce값이 다시 사용되었습니다.")


def validation_error(message: str = "잘못된 API 요청입니다.") -> UpbitError:
    """A missing or malformed parameter."""
    return UpbitError(400, "validation_error", message)


def invalid_parameter() -> UpbitError:
    """A parameter value that is not allowed."""
    return UpbitError(400, "invalid_parameter", "잘못된 파라미터")


def market_not_found(market: str) -> UpbitError:
    """An order for a market Upbit does not list."""
    return UpbitError(400, "notfoundmarket", f"다음 마켓에 없는 종목입니다: {market}")


def code_not_found() -> UpbitError:
    """Quotation endpoints asked for a market that does not exist."""
    return UpbitError(404, 404, "Code not found")


def insufficient_funds(side: str) -> UpbitError:
    """Not enough free balance for the order."""
    if side == "bid":
        return UpbitError(400, "insufficient_funds_bid", "주문 가능한 금액(KRW)이 부족합니다.")
    return UpbitError(400, "insufficient_funds_ask", "주문 가능한 수량이 부족합니다.")


def under_min_total(side: str) -> UpbitError:
    """The order is worth less than the market's minimum (5,000 KRW)."""
    return UpbitError(400, f"under_min_total_{side}", "최소주문금액 이상으로 주문해주세요")


def over_max_total(side: str) -> UpbitError:
    """The order is worth more than the market's maximum."""
    return UpbitError(
        400,
        f"over_krw_funds_{side}",
        "최대 주문 가능 금액 1000000000 KRW 보다 작은 주문을 입력해 주세요.",
    )


def invalid_price(side: str) -> UpbitError:
    """The price is not on the KRW price unit grid."""
    return UpbitError(
        400, f"invalid_price_{side}", "주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요."
    )


def invalid_volume(side: str) -> UpbitError:
    """The volume has too many decimals or is not positive."""
    return UpbitError(
        400, f"invalid_volume_{side}", "주문수량 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요."
    )


def duplicated_identifier() -> UpbitError:
    """An order of this account already used this identifier."""
    return UpbitError(400, "duplicated_identifier", "중복된 identifier 입니다.")


def create_error(side: str) -> UpbitError:
    """A parameter combination the order type does not take (e.g. a price on a market sell)."""
    return UpbitError(400, f"create_{side}_error", "주문 요청 정보가 올바르지 않습니다.")


def invalid_side() -> UpbitError:
    """side is missing or not bid/ask (ccxt maps this exact message to InvalidOrder)."""
    return UpbitError(400, "validation_error", "side is missing, side does not have a valid value")


def invalid_time_in_force() -> UpbitError:
    """A time_in_force the order type does not take."""
    return UpbitError(
        400,
        "invalid_time_in_force",
        "주문조건을 다시 확인해 주세요. \\n지속적인 에러가 발생할 경우, 고객센터로 문의해 주세요.",
    )


def order_not_found() -> UpbitError:
    """No such order for this account (or it can no longer be canceled)."""
    return UpbitError(404, "order_not_found", "주문을 찾지 못했습니다.")


def too_many_requests_body() -> str:
    """Upbit answers 429 with plain text, not JSON."""
    return "Too many API requests."
