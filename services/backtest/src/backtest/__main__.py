"""`python -m backtest`: the backtest API."""

from backtest.main import run

if __name__ == "__main__":
    run()
