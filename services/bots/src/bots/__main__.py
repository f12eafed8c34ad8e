"""`python -m bots`: run the bots service."""

from bots.main import run

if __name__ == "__main__":
    run()
