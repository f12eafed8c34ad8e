"""Root conftest: real-infrastructure fixtures for every package's tests."""

pytest_plugins = ["common.testing.fixtures"]
