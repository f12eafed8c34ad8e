"""`python -m auth`: run the auth service."""

from auth.main import run

if __name__ == "__main__":
    run()
