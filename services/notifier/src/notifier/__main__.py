"""`python -m notifier`: the notifier (API, event consumers and the delivery worker in one process)."""

from notifier.main import run

if __name__ == "__main__":
    run()
