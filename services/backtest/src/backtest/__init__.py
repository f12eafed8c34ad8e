"""The backtest service: grid backtests over the exchange's past 1-minute candles, run as jobs on a worker."""
