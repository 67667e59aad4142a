"""The real stack for the benchmarks (bench/load.py, bench/soak.py): a database of the bench's
own on the embedded PostgreSQL, migrated and seeded; gunicorn with tunedin/gunicorn.conf.py;
for the soak, a Celery worker and a Redis server that nothing else uses (so it can be killed).

Each bench database has its own ARTIFACTS_DIR, artifact store and cache under the var directory
($TUNEDIN_VAR_DIR or var/): model version ids restart at 1 in every database,
and sharing var/artifacts would let one database's version overwrite another's files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devstack import services  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bench_database_url(server_url: str, database: str) -> str:
    """The embedded server's URL with the given database, created when missing."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
        if not exists:
            connection.execute(f"CREATE DATABASE {database}")
    prefix, _, query = server_url.partition("?")
    base = prefix.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


BENCH_DEFAULTS = {
    "THROTTLE_ANON_RATE": "off",
    "THROTTLE_USER_RATE": "off",
    "THROTTLE_FEEDBACK_RATE": "off",
    "METRICS_PUBLIC": "true",
}


def bench_environment(*, database: str, scale: str) -> tuple[dict[str, str], list[str]]:
    """The environment of a bench run and the embedded services it started (to stop after).

    A configured DATABASE_URL is used as is; else the embedded server with `database`.
    """
    service_environment, started = services.ensure_services()
    environment = {**os.environ, **service_environment}
    if "DATABASE_URL" in service_environment:
        environment["DATABASE_URL"] = bench_database_url(
            service_environment["DATABASE_URL"], database
        )
        # Its own artifact directory, store and cache too: a bench database's versions must
        # be found by whichever checkout runs the bench against it.
        name = database.replace("_", "-")
        environment.setdefault("ARTIFACTS_DIR", str(services.var_dir() / f"artifacts-{name}"))
        environment.setdefault(
            "ARTIFACT_STORAGE_URL", f"file://{services.var_dir() / f'artifact-store-{name}'}"
        )
        environment.setdefault(
            "ARTIFACT_CACHE_DIR", str(services.var_dir() / f"artifact-cache-{name}")
        )
    environment |= {"DJANGO_SETTINGS_MODULE": "bench.settings", "DEMO_WORLD_SCALE": scale}
    # The bench measures serving, so a few heavy users must not be throttled, and it scrapes
    # /metrics for the cache hit ratio. A rate or flag set in the environment still wins.
    for name, value in BENCH_DEFAULTS.items():
        environment.setdefault(name, value)
    return environment, started


def manage(*arguments: str, environment: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *arguments, "--skip-checks"]
        if arguments[0] in ("migrate", "seed_demo")
        else [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=environment,
        check=True,
    )


def prepare_database(*, environment: dict[str, str]) -> None:
    """Migrate, seed the demo world when empty, and set up Django in this process."""
    manage("migrate", "--noinput", "-v", "0", environment=environment)
    manage("seed_demo", "--if-empty", environment=environment)
    os.environ.update(environment)
    import django

    django.setup()


def zipf_choice(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """Indices 0..n-1 (0 = rank 1) drawn with probability proportional to rank^-exponent."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return rng.choice(n, size=size, p=weights / weights.sum())


def start_gunicorn(
    *, environment: dict[str, str], workers: int, log_level: str
) -> tuple[subprocess.Popen, str]:
    """gunicorn on a free loopback port (its own process group); returns it and its base URL
    once /healthz answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "tunedin/gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
        cwd=ROOT,
        env={**environment, "LOG_LEVEL": log_level, "LOG_FORMAT": "json"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    wait_for(f"{base_url}/healthz", server)
    return server, base_url


def require_active_versions_served(base_url: str, *, active: dict[str, int]) -> None:
    """Stop the bench unless the server answering `base_url` serves each active version in
    `active` ({kind: version id}): a version whose artifacts it cannot load is served by a
    fallback, and the numbers would not be the model's."""
    with urllib.request.urlopen(f"{base_url}/healthz", timeout=10) as response:
        serving = json.load(response)["serving"]
    missing = {
        kind: version
        for kind, version in active.items()
        if serving.get(kind, {}).get("version") != version
    }
    if missing:
        raise SystemExit(
            f"the server does not serve the active versions {missing} (it serves {serving}): "
            "their artifacts are not in this bench's store (ARTIFACT_STORAGE_URL) and the lists "
            "would come from fallbacks"
        )


def wait_for(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(process.args[:3])} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout_s} s")


def stop_process_group(process: subprocess.Popen | None, timeout_s: float = 30) -> None:
    """SIGTERM a process started with start_new_session=True and its children; SIGKILL late."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)


class OwnRedis:
    """A redis-server for one bench run only, on a fixed loopback port, so that the bench can
    SIGKILL it and start it again at the same URL without touching the shared embedded one."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [str(services._redis_binary()), "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.directory), "--save", "", "--appendonly", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        services._wait_for_redis(self.port)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; whatever it held (queues, cache) is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def git_commit() -> str | None:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return completed.stdout.strip() or None


def host_info() -> dict:
    return {
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "python": sys.version.split()[0],
    }


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole host has spent busy since boot, all cores together (user, nice,
    system, irq and softirq of /proc/stat: time stolen by a hypervisor is not ours); None where
    there is no /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


# Process groups of the host CPU a load run spends (cpu_seconds_by_process).
CPU_GROUPS = ("server", "postgres", "redis", "wrk", "bench")


def _cpu_group(process: psutil.Process) -> str | None:
    if process.pid == os.getpid():
        return "bench"  # this process: the impression flusher's thread, when one runs
    name = process.name()
    if name.startswith(("postgres", "postmaster")):
        return "postgres"
    if name.startswith("redis"):
        return "redis"
    if name == "wrk":
        return "wrk"
    if "gunicorn" in " ".join(process.cmdline()[:3]):
        return "server"
    return None


def cpu_seconds_by_process() -> dict[tuple[int, float], tuple[str, float]]:
    """(pid, start time) -> (group, CPU seconds so far) for each process of CPU_GROUPS.
    Two snapshots give what each group spent in between (cpu_spent_by_group)."""
    snapshot = {}
    for process in psutil.process_iter():
        try:
            with process.oneshot():
                group = _cpu_group(process)
                if group is None:
                    continue
                times = process.cpu_times()
                snapshot[(process.pid, process.create_time())] = (group, times.user + times.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return snapshot


def cpu_spent_by_group(
    before: dict[tuple[int, float], tuple[str, float]],
    after: dict[tuple[int, float], tuple[str, float]],
) -> dict[str, float]:
    """CPU seconds per group between two snapshots; a process started in between counts from
    zero, one that ended in between is not counted (the host's total still has it)."""
    spent = dict.fromkeys(CPU_GROUPS, 0.0)
    for key, (group, seconds) in after.items():
        spent[group] += seconds - before.get(key, (group, 0.0))[1]
    return spent


def results_path(benchmark: str) -> tuple[Path, dt.datetime]:
    """bench/results/<benchmark>-<UTC time>.json and that time."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    return RESULTS_DIR / f"{benchmark}-{now:%Y%m%dT%H%M%SZ}.json", now
