"""Root conftest: real-infrastructure fixtures for every package's tests."""

import os

# Before any settings class is imported: no test (nor a process a test starts) reads a developer's .env.
os.environ["GRIDBOT_ENV_FILE"] = ""

pytest_plugins = ["common.testing.fixtures"]
