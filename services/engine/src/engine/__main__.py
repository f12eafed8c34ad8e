"""`python -m engine`: run the engine service."""

from engine.main import run

if __name__ == "__main__":
    run()
