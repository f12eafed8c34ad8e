"""A service reachable from other machines never runs on the repository's secrets, whatever ENVIRONMENT says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.topology import SERVICES, ServiceSpec

# Servers nobody answers on: should a service start after all, it fails to connect instead of touching
# real data (and the assertion on its message still fails).
NOWHERE = {
    "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/nowhere",
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "RABBITMQ_URL": "amqp://nobody:nobody@127.0.0.1:9/",
}
OURS = [s for s in SERVICES if not s.env_prefix]  # the simulator holds no secret


@pytest.mark.parametrize("spec", OURS, ids=lambda s: s.name)
def test_development_on_every_interface_refuses_the_repository_secrets(
    spec: ServiceSpec, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ENVIRONMENT": "development",
        "HOST": "0.0.0.0",
        "PORT": "0",
        **NOWHERE,
    }
    # cwd: an empty directory, so no .env file supplies a secret either.
    done = subprocess.run(
        [sys.executable, "-m", spec.module],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "HOST=0.0.0.0 is not a loopback address" in done.stderr, done.stderr[-2000:]
