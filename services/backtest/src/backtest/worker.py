"""`python -m backtest.worker`: the backtest worker (runs the queued jobs)."""

from backtest.main import run_worker

if __name__ == "__main__":
    run_worker()
