"""`python -m credentials`: run the credentials service."""

from credentials.settings import load_settings

if __name__ == "__main__":
    # Settings first: a malformed ENCRYPTION_KEY stops the process before anything heavy is imported.
    settings = load_settings()

    from credentials.main import run

    run(settings)
