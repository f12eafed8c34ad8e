"""`make bench` runs every benchmark of bench/ (each a script with a `__main__` block; the other modules there
are the kits they share)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_bench_runs_every_benchmark() -> None:
    benchmarks = {
        path.name
        for path in (ROOT / "bench").glob("*.py")
        if 'if __name__ == "__main__":' in path.read_text()
    }
    assert {"engine.py", "takeover.py"} <= benchmarks
    # -n: what the target would run, run nothing.
    dry = subprocess.run(
        ["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert set(re.findall(r"\bpython bench/(\w+\.py)\b", dry)) == benchmarks
    # The engine's benches keep their quick default (a few minutes, not a quarter of an hour).
    assert re.search(r"bench/engine\.py .*--quick", dry) and re.search(r"bench/takeover\.py .*--quick", dry)
