"""The exchange adapter shared by every service that talks to an exchange: ids, settings, ccxt, errors, markets."""

from common.exchanges.budget import ExchangeBudget
from common.exchanges.catalog import MarketCatalog
from common.exchanges.ccxt_client import ccxt_config, ccxt_overrides, create_ccxt
from common.exchanges.errors import (
    ErrorKind,
    ExchangeBudgetExhaustedError,
    ExchangeCallError,
    PermanentExchangeError,
    RequestWithheldError,
    TransientExchangeError,
    call,
    classify,
    to_app_error,
)
from common.exchanges.ids import (
    Exchange,
    has_ticker,
    native_ticker,
    parse_exchange,
    quote_currency,
    unified_symbol,
)
from common.exchanges.settings import ExchangeSettings, sim_exchange_env

__all__ = [
    "ErrorKind",
    "Exchange",
    "ExchangeBudget",
    "ExchangeBudgetExhaustedError",
    "ExchangeCallError",
    "ExchangeSettings",
    "MarketCatalog",
    "PermanentExchangeError",
    "RequestWithheldError",
    "TransientExchangeError",
    "call",
    "ccxt_config",
    "ccxt_overrides",
    "classify",
    "create_ccxt",
    "has_ticker",
    "native_ticker",
    "parse_exchange",
    "quote_currency",
    "sim_exchange_env",
    "to_app_error",
    "unified_symbol",
]
