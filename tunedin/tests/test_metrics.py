import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import override_settings
from django.urls import include, path
from prometheus_client import REGISTRY

from conftest import ROOT, database_url_for
from mltasks.models import ModelVersion
from tunedin import metrics

APP_METRICS = [
    "tunedin_model_forward_seconds",
    "tunedin_ann_search_seconds",
    "tunedin_recommendation_cache_lookups_total",
    "tunedin_http_errors_total",
    "tunedin_training_duration_seconds",
    "tunedin_training_runs_total",
    "tunedin_training_last_success_timestamp_seconds",
    "tunedin_model_active_info",
    "tunedin_model_active_version",
    "tunedin_drift_psi",
    "tunedin_drift_ks_pvalue",
    "tunedin_drift_check_timestamp_seconds",
    "tunedin_celery_task_duration_seconds",
    "tunedin_celery_tasks_total",
]


def explode(request, n):
    raise ZeroDivisionError("boom")


urlpatterns = [path("explode/<int:n>", explode, name="explode"), path("", include("tunedin.urls"))]


@pytest.fixture(autouse=True)
def _public_metrics(settings, monkeypatch):
    """These tests read /metrics without a token (closed by default: test_hardening_settings.py),
    in this process and in the servers they start."""
    settings.METRICS_PUBLIC = True
    monkeypatch.setenv("METRICS_PUBLIC", "true")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def _sample(page: str, name: str, **labels) -> float | None:
    for line in page.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if all(found.get(key) == str(wanted) for key, wanted in labels.items()):
            return float(value)
    return None


@pytest.mark.django_db
def test_metrics_exposes_every_application_metric_and_the_per_view_latency(client):
    version = ModelVersion.objects.create(kind="recommender", algorithm="lightgcn")
    version.activate()
    client.get("/healthz")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    page = response.content.decode()
    for name in APP_METRICS:
        assert f"# TYPE {name} " in page, name
    assert _sample(page, "tunedin_model_active_version", kind="recommender") == version.pk
    assert (
        _sample(
            page,
            "tunedin_model_active_info",
            kind="recommender",
            version=version.pk,
            algorithm="lightgcn",
        )
        == 1
    )
    assert _sample(
        page, "django_http_requests_latency_seconds_by_view_method_count", view="healthz"
    )
    # The finer buckets from settings.PROMETHEUS_LATENCY_BUCKETS.
    assert 'view="healthz",le="0.005"' in page or 'le="0.005",method="GET",view="healthz"' in page


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_errors_are_counted_by_route_and_type(client):
    client.raise_request_exception = False

    def errors(route, error_type):
        labels = {"route": route, "method": "GET", "error_type": error_type}
        return REGISTRY.get_sample_value("tunedin_http_errors_total", labels) or 0

    before_500, before_404 = (
        errors("explode/<int:n>", "ZeroDivisionError"),
        errors("<unmatched>", "http_404"),
    )
    assert client.get("/explode/1").status_code == 500
    assert client.get("/explode/2").status_code == 500
    assert client.get("/nowhere").status_code == 404
    assert errors("explode/<int:n>", "ZeroDivisionError") == before_500 + 2
    assert errors("<unmatched>", "http_404") == before_404 + 1


def test_helpers_record_cache_lookups_and_training_runs():
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0

    hits = value("tunedin_recommendation_cache_lookups_total", list="similar", result="hit")
    metrics.recommendation_cache_lookup(list_name="similar", hit=True)
    assert value("tunedin_recommendation_cache_lookups_total", list="similar", result="hit") == (
        hits + 1
    )

    before = time.time()
    metrics.training_finished(
        kind="continuation", algorithm="sasrec", duration_seconds=42, succeeded=True
    )
    metrics.training_finished(
        kind="continuation", algorithm="sasrec", duration_seconds=3, succeeded=False
    )
    assert value("tunedin_training_last_success_timestamp_seconds", kind="continuation") >= before
    assert value("tunedin_training_runs_total", kind="continuation", outcome="failed") >= 1
    assert (
        value("tunedin_training_duration_seconds_count", kind="continuation", algorithm="sasrec")
        >= 2
    )


@pytest.mark.django_db(transaction=True)
def test_gunicorn_workers_share_one_metrics_view(tmp_path):
    """Two workers in multiprocess mode: /metrics counts the requests every worker served."""
    port = _free_port()
    multiproc_dir = tmp_path / "prometheus"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_for(connection.settings_dict),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": "2",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
    }
    multiproc_dir.mkdir()
    (multiproc_dir / "counter_999999.db").write_bytes(b"stale")  # emptied on start
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "tunedin/gunicorn.conf.py"],
        cwd=ROOT,
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"

    def get(path):
        with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
            return response.status, response.read().decode()

    def healthz_served() -> float:
        page = get("/metrics")[1]
        name = "django_http_requests_latency_seconds_by_view_method_count"
        return _sample(page, name, view="healthz")

    try:
        _wait_for(f"{base}/healthz", server)
        before = healthz_served()
        n_requests = 40
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = {status for status, _ in pool.map(get, ["/healthz"] * n_requests)}
        assert statuses == {200}
        after = healthz_served()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert after - before == n_requests
    worker_files = {name.split("_")[-1] for name in os.listdir(multiproc_dir)}
    assert "999999.db" not in worker_files
    assert len(worker_files) >= 2  # both workers wrote their metrics


@pytest.mark.django_db(transaction=True)
def test_a_prefork_celery_worker_serves_its_task_metrics(tmp_path, settings):
    from feedback.tasks import refresh_track_popularity
    from tunedin.celery import app

    port = _free_port()
    queue = f"tunedin-test-{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_for(connection.settings_dict),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "WORKER_METRICS_PORT": str(port),
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tunedin", "worker", "--queues", queue,
         "--pool", "prefork", "--concurrency", "2", "--hostname", f"{queue}@%h",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=environment,
    )  # fmt: skip
    task = "catalog.tasks.refresh_track_popularity"
    try:
        _wait_for(f"http://127.0.0.1:{port}/metrics", worker)
        results = [refresh_track_popularity.apply_async(queue=queue) for _ in range(3)]
        assert [result.get(timeout=60) for result in results] == [0, 0, 0]
        # task_postrun (which counts) fires after the result is stored: poll until it has.
        # One scrape reads the pool processes' files one after another, so a page can catch
        # a task between its duration and its outcome: wait for both.
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                page = reply.read().decode()
            counted = _sample(page, "tunedin_celery_tasks_total", task=task, outcome="SUCCESS")
            timed = _sample(page, "tunedin_celery_task_duration_seconds_count", task=task)
            if (counted, timed) == (3, 3) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        app.control.broadcast("shutdown", destination=[f"{queue}@{os.uname().nodename}"])
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.terminate()
            worker.wait(timeout=30)
    assert _sample(page, "tunedin_celery_tasks_total", task=task, outcome="SUCCESS") == 3
    assert _sample(page, "tunedin_celery_task_duration_seconds_count", task=task) == 3


def test_metrics_need_the_bearer_token_when_one_is_configured(client, settings):
    settings.METRICS_BEARER_TOKEN = "scrape-secret"

    refused = [
        client.get("/metrics"),
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong"),
        client.get("/metrics", HTTP_AUTHORIZATION="scrape-secret"),  # no scheme
    ]
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")

    assert [response.status_code for response in refused] == [401, 401, 401]
    assert refused[0]["WWW-Authenticate"] == "Bearer"
    assert allowed.status_code == 200
    assert "# TYPE tunedin_http_errors_total counter" in allowed.content.decode()
