"""The dev/test bootstrap: embedded services start, are reused, stop; `serve` serves the site."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from devstack import services
from devstack.__main__ import serve_commands

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch_var(monkeypatch):
    # Under the checkout (not /tmp/pytest-of-root, which is 0700) so the unprivileged
    # 'pgserver' user can reach the data directory when the suite runs as root.
    directory = ROOT / "var" / f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("TUNEDIN_VAR_DIR", str(directory))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("ARTIFACT_STORAGE_URL", raising=False)
    yield directory
    services.stop_services(["postgres", "redis", "s3"])
    shutil.rmtree(directory, ignore_errors=True)


def test_services_start_are_reused_and_stop(scratch_var):
    environment, started = services.ensure_services()
    assert sorted(started) == ["postgres", "redis"]
    with psycopg.connect(environment["DATABASE_URL"]) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        assert connection.execute("SELECT '[1,2]'::vector <-> '[1,3]'::vector").fetchone()[0] == 1
        connection.execute("CREATE TABLE kept (id int)")
        connection.commit()
    assert redis.Redis.from_url(environment["REDIS_URL"]).ping()
    redis_pid = services._redis_pid()

    again, started_again = services.ensure_services()
    assert started_again == []  # reused, not started twice
    assert again == environment
    assert services._redis_pid() == redis_pid
    with psycopg.connect(again["DATABASE_URL"]) as connection:
        assert connection.execute("SELECT to_regclass('kept')").fetchone()[0] == "kept"

    services.stop_services(["postgres", "redis"])
    assert not services.postgres_running()
    assert not services.redis_running()

    # a restart finds the same data
    restarted, _ = services.ensure_services()
    with psycopg.connect(restarted["DATABASE_URL"]) as connection:
        assert connection.execute("SELECT to_regclass('kept')").fetchone()[0] == "kept"


def test_configured_urls_are_used_as_they_are(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://somewhere/else")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    assert services.ensure_services() == ({}, [])
    monkeypatch.setenv("ARTIFACT_STORAGE_URL", "s3://a-bucket-elsewhere")
    assert services.ensure_services(s3=True) == ({}, [])


def test_the_s3_store_starts_with_its_bucket_is_reused_and_stops(scratch_var, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://somewhere/else")  # only S3 is started here
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    assert services.ensure_services() == ({}, [])  # not without asking: `make run` stays lean
    assert not services.s3_running()

    environment, started = services.ensure_services(s3=True)

    assert started == ["s3"]
    url = environment["ARTIFACT_S3_ENDPOINT_URL"]
    assert environment == services.s3_environment(url)
    assert environment["ARTIFACT_STORAGE_URL"] == f"s3://{services.S3_BUCKET}"
    client = services.s3_client(url)  # a real S3 API over HTTP
    client.put_object(Bucket=services.S3_BUCKET, Key="kept", Body=b"artifact")
    again, started_again = services.ensure_services(s3=True)
    assert (again, started_again) == (environment, [])  # reused, not started twice
    assert client.get_object(Bucket=services.S3_BUCKET, Key="kept")["Body"].read() == b"artifact"
    assert services.status()["s3"]["running"] is True

    services.stop_services(started)
    assert not services.s3_running()
    restarted = services.start_s3()  # a new server: in memory, so empty, with its bucket
    assert restarted.started_here
    listed = services.s3_client(restarted.url).list_objects_v2(Bucket=services.S3_BUCKET)
    assert listed["KeyCount"] == 0


def test_the_devstack_runs_one_worker_per_queue_so_training_never_holds_up_other_tasks():
    """`make run` has a worker for the default queue and one for `training`: a training of an
    hour must not keep the impressions flush or the drift check waiting."""
    from celery import Celery
    from django.conf import settings

    # An empty broker database of the same Redis: no queued task of the suite is run here.
    broker = re.sub(r"/\d*$", "/7", os.environ["REDIS_URL"])
    run = uuid.uuid4().hex[:8]
    workers, nodes = [], []
    for command in (c for c in serve_commands(bind="-", workers=None) if "worker" in c):
        hostname = command[command.index("--hostname") + 1]
        node = f"{hostname.split('@')[0]}-{run}"
        command = [part if part != hostname else f"{node}@%h" for part in command]
        nodes.append(f"{node}@{socket.gethostname()}")
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, "REDIS_URL": broker, "LOG_FORMAT": "text"}
            )
        )
    probe = Celery(broker=broker)
    queues: dict[str, list[str]] = {}
    try:
        deadline = time.monotonic() + 90
        while len(queues) < len(nodes) and time.monotonic() < deadline:
            replies = probe.control.inspect(destination=nodes, timeout=1).active_queues() or {}
            queues = {node: sorted(q["name"] for q in found) for node, found in replies.items()}
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGQUIT)  # a cold shutdown: it has nothing to finish
        for worker in workers:
            worker.wait(timeout=60)
        probe.close()
    assert sorted(queues.values()) == sorted(
        [[settings.CELERY_TASK_DEFAULT_QUEUE], [settings.TRAINING_QUEUE]]
    ), queues


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_bootstraps_and_serves_demo_tracks_like_make_run(scratch_var):
    port = _free_port()
    environment = {**os.environ, "DEMO_WORLD_SCALE": "0.02", "LOG_FORMAT": "text"}
    server = subprocess.Popen(
        [sys.executable, "-m", "devstack", "serve", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=environment,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 400
        page = ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.status == 200
                    page = response.read().decode()
                    break
            except OSError:
                time.sleep(1)
        assert "<title>" in page
        assert len(re.findall(r'href="/tracks/\d+/"', page)) >= 10  # demo tracks from Postgres
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        server.send_signal(signal.SIGTERM)  # what a process manager sends; Ctrl-C does the same
        server.wait(timeout=60)
    # It stopped the services `serve` had started.
    assert not services.postgres_running()
    assert not services.redis_running()
