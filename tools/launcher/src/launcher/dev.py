"""`make dev`: every service its own process over the real RabbitMQ, PostgreSQL and Redis on this machine.

Like compose's `restart: unless-stopped`, the launcher starts a process that dies again (after a backoff, so
a crash loop does not spin) instead of stopping the whole stack, and says so in its output.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import httpx

from common.netports import free_port
from launcher.topology import (
    DEV_DATABASE,
    DEV_POSTGRES_ADMIN,
    SERVICES,
    ServiceSpec,
    dev_ports,
    fresh_tokens,
    service,
    service_env,
)

# How often the supervisor looks at its processes, and a starting process's /health is polled.
_TICK = 0.1


class StackError(RuntimeError):
    """A service failed to migrate or to start."""


@dataclass(frozen=True)
class RestartPolicy:
    """What happens to a process that dies: it is started again after `delay`, doubled after every death
    that came sooner than `reset_after` seconds after its start, up to `max_delay` (compose's `restart:
    unless-stopped`, with a backoff: a crash-looping process costs little, a rare crash is back at once)."""

    delay: float = 0.5
    max_delay: float = 10.0
    reset_after: float = 10.0

    def next_delay(self, previous: float | None, uptime: float) -> float:
        """The wait before the next start, given the last wait (None: none yet) and how long it ran."""
        if previous is None or uptime >= self.reset_after:
            return self.delay
        return min(previous * 2, self.max_delay)


@dataclass(eq=False)
class _Process:
    """One process of the stack as the supervisor tends it (a service, or one replica of it)."""

    key: str
    spec: ServiceSpec
    port: int
    popen: subprocess.Popen[bytes]
    started: float
    restarts: int = 0
    delay: float | None = None  # the last restart's wait, None until it died (or after it stayed up)
    due: float | None = None  # when it is started again
    held: bool = False  # killed on purpose: left down until `restart`


def describe_exit(code: int) -> str:
    """A return code as the launcher reports it: `1`, or `-9 (SIGKILL)`."""
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


def _inherited(spec: ServiceSpec, name: str) -> bool:
    """Whether a variable of the launcher's environment reaches a process of this service."""
    upper = name.upper()
    # Our own settings come from the topology, not from whatever the caller's shell exported (an exported
    # internal token would otherwise reach processes that must not hold it).
    if upper.startswith(("DATABASE_", "SERVICES", "INTERNAL_")):
        return False
    # The simulator's own settings (SIM_HISTORY_MINUTES, SIM_CANDLE_FILE, SIM_REPLAY_SPEED, ...) are the
    # developer's to choose, and reach the simulator alone; its host and port still come from the topology.
    if upper.startswith("SIM_"):
        return spec.env_prefix == "SIM_"
    return True


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass(eq=False)
class Stack:
    """A set of service processes started in order, each waited for until /health answers, and then kept
    running by the restart policy (None: a process that dies stays down)."""

    database_url: str
    redis_url: str
    rabbitmq_url: str
    # Service name -> port (its replica 1's); a further replica's under its own name (`engine-2`), else a
    # free one is taken.
    ports: Mapping[str, int]
    log_dir: Path | None = None
    environment: str = "development"
    cache_namespace: str = "gridbot"
    # Prefixes every exchange and queue name, so that stacks sharing one RabbitMQ never meet ("": none).
    bus_namespace: str = ""
    # By service name, or by one process's name (`engine-2`), applied after the service's.
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Internal route tokens, fresh for every stack: each process is handed only the ones its spec names.
    tokens: Mapping[str, str] = field(default_factory=fresh_tokens)
    services: Sequence[ServiceSpec] = SERVICES
    engine_replicas: int = field(default_factory=lambda: service("engine").replicas)
    # How many processes of another replicated service (`{"bots": 1}`), when not the topology's number.
    replica_counts: Mapping[str, int] = field(default_factory=dict)
    restart_policy: RestartPolicy | None = field(default_factory=RestartPolicy)
    # Where the launcher's own lines go (restarts); the services' output goes to log_dir or stdout.
    say: Callable[[str], None] = _say
    # The live process of every name (`auth`, `engine-1`, `gateway@4242`), replaced when it is restarted.
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _procs: dict[str, _Process] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _free_ports: dict[str, int] = field(default_factory=dict, repr=False)
    # Plain flags, not Events: set from signal handlers, which must not take a lock the main thread may hold.
    _closing: bool = field(default=False, repr=False)
    _supervisor: threading.Thread | None = field(default=None, repr=False)

    def names(self, spec: ServiceSpec) -> list[str]:
        """The process names of a service in this stack (`engine-1`, `engine-2`; `auth`)."""
        count = self.engine_replicas if spec.name == "engine" else self.replica_counts.get(spec.name)
        return spec.replica_names(count)

    def env_for(self, spec: ServiceSpec, port: int | None = None, key: str | None = None) -> dict[str, str]:
        """The full environment of one service process (`key`: which replica)."""
        env = {k: v for k, v in os.environ.items() if _inherited(spec, k)}
        env.update(
            service_env(
                spec,
                database_url=self.database_url,
                redis_url=self.redis_url,
                rabbitmq_url=self.rabbitmq_url,
                ports=self.all_ports(),
                tokens=self.tokens,
                environment=self.environment,
                cache_namespace=self.cache_namespace,
                replica=key if spec.replicated else None,
            )
        )
        if spec.uses_bus and self.bus_namespace:
            env["BUS_NAMESPACE"] = self.bus_namespace
        env.update(self.extra_env.get(spec.name, {}))
        if key is not None and key != spec.name:
            env.update(self.extra_env.get(key, {}))
        if port is not None:
            env[f"{spec.env_prefix}PORT"] = str(port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def migrate(self) -> None:
        """Apply every service's migrations (the compose prestart step), in order."""
        for spec in self.services:
            cmd = spec.migrate_command
            if cmd is None:
                continue
            done = subprocess.run(  # noqa: S603 - our own fixed command
                [sys.executable, *cmd[1:]], env=self.env_for(spec), capture_output=True, timeout=120
            )
            if done.returncode != 0:
                raise StackError(f"{spec.name} migrations failed:\n{done.stderr.decode(errors='replace')}")

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start every service in order, its first process ready before anything else starts (one dying
        while starting fails the start, as a failed migration does); further replicas start next, not
        waited for. Then the restart policy tends every process."""
        for spec in self.services:
            first, *others = self.names(spec)
            self._add(spec, first, self.port_for(spec, first))
            self.wait_ready(first, ready_timeout)
            for key in others:
                self._add(spec, key, self.port_for(spec, key))
        if self.restart_policy is not None and self._supervisor is None:
            self._supervisor = threading.Thread(
                target=self._supervise, name="launcher-supervisor", daemon=True
            )
            self._supervisor.start()

    def start_replica(self, name: str, port: int, ready_timeout: float = 30.0) -> str:
        """Start one more process of a service on another port (e.g. a second gateway); returns its key."""
        spec = next(s for s in self.services if s.name == name)
        key = f"{name}@{port}"
        self._add(spec, key, port)
        self.wait_ready(key, ready_timeout)
        return key

    def kill(self, key: str, sig: signal.Signals = signal.SIGKILL, hold: bool = False) -> None:
        """Send `sig` to a process and wait until it is gone (a crash, with SIGKILL). The restart policy
        starts it again, unless `hold`: then it stays down until `restart(key)`."""
        with self._lock:
            proc = self._procs[key]
            proc.held = proc.held or hold
            popen = proc.popen
        popen.send_signal(sig)
        popen.wait(30)

    def restart(self, key: str, within: float = 60.0, backoff: float = 0.5) -> int:
        """Have a dead or held process running again and wait until it answers /health; returns how many
        processes that took. Under the restart policy, the supervisor starts it (as after any death);
        without one, it is started here the same way: a process that exits while starting (e.g. an engine
        refused while another one's lease is live) is started again after `backoff`, until one is healthy
        or `within` seconds pass."""
        with self._lock:
            proc = self._procs[key]
            before = proc.restarts
            supervised = self._supervisor is not None
            if not supervised and proc.popen.poll() is None:
                raise StackError(f"{key} is still running")
        if supervised:
            self.release(key)
            self.wait_ready(key, within)
            return max(1, self._procs[key].restarts - before)
        deadline = time.monotonic() + within
        attempts = 0
        while True:
            attempts += 1
            with self._lock:
                self._relaunch(proc)
            try:
                self.wait_ready(key, max(1.0, deadline - time.monotonic()))
                return attempts
            except StackError:
                if proc.popen.poll() is None:
                    raise  # running but never healthy: no supervisor retry helps
                if time.monotonic() + backoff >= deadline:
                    raise
                time.sleep(backoff)

    def release(self, key: str) -> None:
        """Let the restart policy start a process held down by `kill(..., hold=True)` again (its backoff
        starts over); returns at once."""
        with self._lock:
            proc = self._procs[key]
            if proc.held:
                proc.held, proc.delay = False, None

    def wait_ready(self, key: str, timeout: float) -> None:
        """Poll a process's /health until it answers 200. A process that exits meanwhile fails this at
        once, unless the restart policy tends it: then its next incarnation is waited for."""
        deadline = time.monotonic() + timeout
        while True:
            if self._closing:
                raise StackError(f"{key}: the stack was stopped while it started")
            with self._lock:
                proc = self._procs[key]
                code = proc.popen.poll()
                tended = self._supervisor is not None and not proc.held
            url = f"http://127.0.0.1:{proc.port}{proc.spec.health_path}"
            if code is not None and not tended:
                raise StackError(f"{key} exited with {describe_exit(code)} while starting{self._tail(key)}")
            if code is None and _answers(url):
                return
            if time.monotonic() >= deadline:
                restarts = f" ({proc.restarts} restarts)" if proc.restarts else ""
                raise StackError(f"{url} not ready within {timeout}s{restarts}: {key}{self._tail(key)}")
            time.sleep(_TICK)

    def restarts(self, key: str) -> int:
        """How many times the process was started again after it died."""
        with self._lock:
            return self._procs[key].restarts

    def port(self, key: str) -> int:
        """The port a process listens on."""
        with self._lock:
            return self._procs[key].port

    def crashed(self) -> list[str]:
        """Names of processes that have exited (and not been started again yet)."""
        with self._lock:
            return [key for key, proc in self._procs.items() if proc.popen.poll() is not None]

    def interrupt(self) -> None:
        """Make a start in progress give up and the supervisor start nothing more (safe in a signal handler)."""
        self._closing = True

    def stop(self, timeout: float = 10.0) -> None:
        """No more restarts; SIGTERM every process (reverse order), then SIGKILL what is left after
        `timeout` seconds."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            procs = list(self._procs.values())
        for proc in reversed(procs):
            if proc.popen.poll() is None:
                proc.popen.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()

    # --- processes ------------------------------------------------------------------------------------

    def port_for(self, spec: ServiceSpec, key: str) -> int:
        """The port a new process of that name listens on: its own in `ports`, replica 1's the service's,
        else a free one."""
        if key in self.ports:
            return self.ports[key]
        if key == self.names(spec)[0]:
            return self.ports[spec.name]
        # Chosen once: the gateway's list of a service's replicas is written before they start.
        return self._free_ports.setdefault(key, free_port())

    def all_ports(self) -> dict[str, int]:
        """The port of every process of the stack (services and their replicas) by name."""
        ports = dict(self.ports)
        for spec in self.services:
            for key in self.names(spec):
                ports.setdefault(key, self.port_for(spec, key))
        return ports

    def _add(self, spec: ServiceSpec, key: str, port: int) -> None:
        with self._lock:
            self._procs[key] = _Process(key, spec, port, self._spawn(spec, key, port), time.monotonic())
            self.processes[key] = self._procs[key].popen

    def _relaunch(self, proc: _Process) -> None:
        proc.popen = self._spawn(proc.spec, proc.key, proc.port)
        proc.started, proc.due = time.monotonic(), None
        proc.restarts += 1
        self.processes[proc.key] = proc.popen

    def _spawn(self, spec: ServiceSpec, key: str, port: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, *spec.command[1:]]
        env = self.env_for(spec, port, key)
        # A group of its own: a terminal's Ctrl-C reaches the launcher alone, which stops every process in
        # order (and is not mistaken for crashes to restart).
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / f"{key}.log").open("ab") as log:
                proc = subprocess.Popen(  # noqa: S603 - our own fixed command
                    cmd, env=env, stdout=log, stderr=subprocess.STDOUT, process_group=0
                )
        else:
            proc = subprocess.Popen(  # noqa: S603 - our own fixed command
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0
            )
            threading.Thread(target=_prefix_lines, args=(key, proc), daemon=True).start()
        if spec.nice:
            # Set from outside rather than in a preexec_fn (unsafe beside threads); its first milliseconds of
            # start-up run at the launcher's niceness.
            os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + spec.nice)
        return proc

    def _supervise(self) -> None:
        policy = self.restart_policy
        assert policy is not None
        while not self._closing:
            with self._lock:
                now = time.monotonic()
                for proc in self._procs.values():
                    if self._closing:
                        return
                    code = proc.popen.poll()
                    if code is None or proc.held:
                        continue
                    if proc.due is None:
                        proc.delay = policy.next_delay(proc.delay, now - proc.started)
                        proc.due = now + proc.delay
                        self.say(
                            f"launcher: {proc.key} exited with {describe_exit(code)}; "
                            f"restarting in {proc.delay:g} s (restart {proc.restarts + 1})"
                        )
                    elif now >= proc.due:
                        self._relaunch(proc)
                        self.say(f"launcher: {proc.key} started again (pid {proc.popen.pid})")
            time.sleep(_TICK)

    def _tail(self, key: str) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{key}.log"
        return "\n" + path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0, describe: Callable[[], str] = str
) -> None:
    """Poll `url` until it answers 200; fail early if the process exits, with `describe()` in the error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"exited with {proc.returncode} while starting: {describe()}")
        if _answers(url):
            return
        time.sleep(_TICK)
    raise StackError(f"{url} not ready within {timeout}s: {describe()}")


def _prefix_lines(name: str, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        sys.stdout.write(f"{name:>11} | {raw.decode(errors='replace')}")
        sys.stdout.flush()


async def ensure_database(admin_url: str, name: str) -> None:
    """Create the dev database if it does not exist yet."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def serve(stack: Stack, ready_timeout: float = 30.0) -> int:
    """Migrate and start `stack`, keep it running until SIGINT, SIGTERM or SIGHUP, then stop every process;
    returns the exit code (1: a migration or a start failed)."""
    stopping: list[int] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)
        stack.interrupt()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        stack.migrate()
        stack.start(ready_timeout)
    except StackError as exc:
        print(f"gridbot dev: {exc}", file=sys.stderr, flush=True)
        stack.stop()
        return 1
    gateway = stack.port("gateway") if "gateway" in stack.processes else None
    print(
        f"gridbot dev: {len(stack.processes)} processes up"
        + (f"; gateway on http://localhost:{gateway}" if gateway else "")
        + ("; a process that dies is started again" if stack.restart_policy else "")
        + "  (Ctrl-C stops)",
        flush=True,
    )
    while not stopping:
        time.sleep(0.2)
    stack.say(f"launcher: {signal.Signals(stopping[0]).name}: stopping every process")
    stack.stop()
    stack.say("launcher: stopped")
    return 0


def main() -> None:
    """Run the dev topology until Ctrl-C; a service that dies is started again."""
    admin = os.environ.get("POSTGRES_ADMIN_URL", DEV_POSTGRES_ADMIN)
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        asyncio.run(ensure_database(admin, DEV_DATABASE))
        parts = urlsplit(admin)
        database_url = parts._replace(scheme="postgresql+asyncpg", path=f"/{DEV_DATABASE}").geturl()
    stack = Stack(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        rabbitmq_url=os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        ports=dev_ports(),
    )
    sys.exit(serve(stack))


if __name__ == "__main__":
    main()
