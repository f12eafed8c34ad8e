"""`python -m gateway`: serve the gateway."""

from gateway.main import run

run()
