"""`python -m market_data`: run the market-data service."""

from market_data.main import run

if __name__ == "__main__":
    run()
