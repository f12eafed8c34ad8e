"""CPU and memory of processes read from Linux /proc: one process's CPU seconds and RSS, and `CpuMeter`, where
the machine's CPU went between two readings (by named process, PostgreSQL, RabbitMQ, Redis, the rest).

Shared by the benches (bench/engine.py, bench/api_load.py, ...)."""

from __future__ import annotations

import json
import os
import pwd
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid: int) -> int:
    """Resident set size in bytes (/proc/<pid>/statm)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def label_of(names: Mapping[int, str], pid: int, group: str) -> str:
    """Who a process's CPU is counted for: its name in `names` (a service, the bench), else its group
    (PostgreSQL, RabbitMQ, Redis, `other: <command>`)."""
    return names.get(pid, group) if group.startswith("other: ") else group


class CpuMeter:
    """CPU seconds spent between two readings, by who spent them: the replicas and this bench (by pid),
    processes that reported their own (the tick publisher), PostgreSQL (this run's database's sessions apart
    from the rest), RabbitMQ, Redis, and everything else on the machine by command name (the machine is shared)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._start: dict[tuple[int, str], float] = {}
        self._busy = 0.0
        self._wall = 0.0
        try:
            self._rabbitmq_uid = pwd.getpwnam("rabbitmq").pw_uid
        except KeyError:
            self._rabbitmq_uid = -1

    def groups(self) -> dict[tuple[int, str], float]:
        """CPU seconds so far by (pid, group) of every live process (what ended in between is the
        remainder: `other: exited`, PostgreSQL sessions that closed included)."""
        seen: dict[tuple[int, str], float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                comm = (entry / "comm").read_text().strip()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                uid = entry.stat().st_uid
            except OSError:
                continue
            if comm == "postgres":
                group = "postgres (this run)" if f" {self.database} " in cmdline else "postgres (other)"
            elif uid == self._rabbitmq_uid:
                group = "rabbitmq"
            elif comm == "redis-server":
                group = "redis"
            else:
                group = f"other: {comm}"
            seen[(int(entry.name), group)] = proc_cpu(int(entry.name))
        return seen

    def start(self) -> None:
        """Take the first reading."""
        self._start = self.groups()
        self._busy = _machine_busy()
        self._wall = time.perf_counter()

    def read(self, names: Mapping[int, str], reported: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Since start(): the wall time, the machine's busy share of all its cores, and CPU seconds by who
        spent them (`names`: pid → name; `reported`: seconds of processes that ended, e.g. the publisher;
        `other: exited` is busy time of other processes that ended in between)."""
        now = self.groups()
        wall = time.perf_counter() - self._wall
        spent: dict[str, float] = dict(reported or {})
        for (pid, group), cpu in now.items():
            label = label_of(names, pid, group)
            spent[label] = spent.get(label, 0.0) + cpu - self._start.get((pid, group), 0.0)
        busy = _machine_busy() - self._busy
        spent["other: exited"] = max(0.0, busy - sum(spent.values()))
        others = {k: v for k, v in spent.items() if k.startswith("other: ")}
        mine = {k: v for k, v in spent.items() if k not in others}
        top = dict(sorted(others.items(), key=lambda kv: -kv[1])[:3])
        return {
            "seconds": round(wall, 2),
            "machine_busy_share": round(busy / (wall * (os.cpu_count() or 1)), 2),
            "cpu_s": {k: round(v, 2) for k, v in sorted(mine.items(), key=lambda kv: -kv[1])},
            "other_cpu_s": round(sum(others.values()), 2),
            "other_top_cpu_s": {k[7:]: round(v, 2) for k, v in top.items()},
        }


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat, all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


# The key of the machine's busy share (all processes and the kernel, all cores) in each slice.
MACHINE = "machine (all)"


class CpuSlices:
    """Each process's CPU share in consecutive slices of `period` seconds, read by a thread: what a burst
    looks like, and who was busy when a request was slow (`--timeline`). Times are time.monotonic()."""

    def __init__(self, meter: CpuMeter, names: Mapping[int, str], period: float = 0.05) -> None:
        self._meter = meter
        self._names = names
        self._period = period
        self._slices: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-slices", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> list[tuple[float, dict[str, float]]]:
        """Stop; every slice as (its middle, share by process name)."""
        self._stop.set()
        self._thread.join()
        return self._slices

    def _run(self) -> None:
        # The processes alive at the start, read alone at each slice: walking all of /proc every 50 ms would
        # cost the bench a tenth of a core (those that start later, e.g. a new database session, are missed).
        labels = {
            pid: label_of(self._names, pid, group)
            for pid, group in self._meter.groups()
            if not group.startswith("other: ") or pid in self._names
        }
        before, at = {pid: proc_cpu(pid) for pid in labels}, time.monotonic()
        busy_before = _machine_busy()
        while not self._stop.wait(self._period):
            now, t = {pid: proc_cpu(pid) for pid in labels}, time.monotonic()
            busy = _machine_busy()
            shares: dict[str, float] = {}
            for pid, cpu in now.items():
                spent = cpu - before[pid]
                if spent > 0:
                    shares[labels[pid]] = shares.get(labels[pid], 0.0) + spent / (t - at)
            # The whole machine too: a process started after the first slice (the sockets' reader of a
            # --ws-paired phase) or the kernel is busy time no label above accounts for.
            shares[MACHINE] = (busy - busy_before) / (t - at)
            self._slices.append(((at + t) / 2, shares))
            before, at, busy_before = now, t, busy


def write_timeline(
    path: str,
    requests: list[tuple[float, float, str]],
    slices: list[tuple[float, dict[str, float]]],
    phases: list[dict[str, Any]] | None = None,
) -> None:
    """The requests and the CPU slices of the window (and `--ws-paired`'s phases), on one clock (time.monotonic,
    as the event loop's)."""
    document: dict[str, Any] = {
        "requests": [[round(t, 4), round(latency * 1000, 2), route] for t, latency, route in requests],
        "slices": [[round(t, 4), {k: round(v, 3) for k, v in shares.items()}] for t, shares in slices],
    }
    if phases is not None:
        document["phases"] = phases
    Path(path).write_text(json.dumps(document))
