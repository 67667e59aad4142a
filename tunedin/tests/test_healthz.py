import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import override_settings
from django.urls import reverse

from catalog.tests.factories import TrackFactory, UserFactory
from conftest import ROOT, database_url_for
from mltasks.models import ModelVersion
from recommendations.serving import active_states, served_versions
from recommendations.tests.planted import (
    planted_continuation,
    planted_recommender,
    random_vectors,
)
from tunedin.tests.test_metrics import _free_port, _wait_for

DEAD_REDIS = {
    "default": {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.2,
            "SOCKET_TIMEOUT": 0.2,
        },
    }
}


@pytest.fixture
def catalog_ids():
    tracks = TrackFactory.create_batch(12)
    users = UserFactory.create_batch(3)
    return [t.pk for t in tracks], [u.pk for u in users]


def _recommender(directory, catalog_ids, seed: int = 0) -> ModelVersion:
    track_ids, user_ids = catalog_ids
    vectors = random_vectors(track_ids=track_ids, user_ids=user_ids, seed=seed)
    return planted_recommender(directory=directory, vectors=vectors)


@pytest.fixture
def every_kind_active(db, tmp_path, catalog_ids) -> dict[str, int]:
    """A planted version of each kind, active, loaded by this process (as at a worker's boot)."""
    recommender = _recommender(tmp_path, catalog_ids)
    continuation = planted_continuation(directory=tmp_path, track_ids=catalog_ids[0])
    active_states.refresh()
    return {"recommender": recommender.pk, "continuation": continuation.pk}


@pytest.mark.django_db
def test_healthz_is_ok_and_names_the_versions_this_process_serves(client, every_kind_active):
    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": "0.1.0",
        "pid": os.getpid(),
        "serving": {
            kind: {"version": version, "loaded": True}
            for kind, version in every_kind_active.items()
        },
        "model_loaded": {"recommender": True, "continuation": True},
        "cache_connected": True,
        "db_connected": True,
    }
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_healthz_is_degraded_without_an_active_model(client, tmp_path, catalog_ids):
    recommender = _recommender(tmp_path, catalog_ids)
    active_states.refresh()

    body = client.get(reverse("healthz")).json()

    assert body["status"] == "degraded"
    assert body["serving"] == {
        "recommender": {"version": recommender.pk, "loaded": True},
        "continuation": {"version": None, "loaded": False},
    }
    assert body["model_loaded"] == {"recommender": True, "continuation": False}


@pytest.mark.django_db
def test_healthz_is_degraded_when_the_active_model_cannot_be_loaded_here(
    client, tmp_path, catalog_ids
):
    _recommender(tmp_path, catalog_ids)
    ModelVersion.objects.create(
        kind="continuation", algorithm="sasrec", artifact_path=str(tmp_path / "elsewhere")
    ).activate()
    active_states.refresh()

    body = client.get(reverse("healthz")).json()

    assert body["status"] == "degraded"
    assert body["serving"]["continuation"] == {"version": None, "loaded": False}


@pytest.mark.django_db
def test_healthz_says_when_this_process_still_serves_the_previous_version(
    client, tmp_path, catalog_ids, every_kind_active
):
    newer = _recommender(tmp_path, catalog_ids, seed=1)  # activated, not loaded here yet

    before = client.get(reverse("healthz")).json()
    active_states.refresh()
    after = client.get(reverse("healthz")).json()

    assert before["status"] == "degraded"
    assert before["serving"]["recommender"] == {
        "version": every_kind_active["recommender"],
        "loaded": False,
    }
    assert after["status"] == "ok"
    assert after["serving"]["recommender"] == {"version": newer.pk, "loaded": True}


@pytest.mark.django_db
def test_healthz_is_degraded_when_redis_is_unreachable(client, every_kind_active):
    with override_settings(CACHES=DEAD_REDIS):
        response = client.get(reverse("healthz"))

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cache_connected"], body["db_connected"]) == (
        "degraded",
        False,
        True,
    )


@pytest.mark.django_db
def test_healthz_is_down_with_503_when_the_database_is_unreachable(client, every_kind_active):
    refused = OperationalError("connection refused")
    with mock.patch("django.db.backends.base.base.BaseDatabaseWrapper.cursor", side_effect=refused):
        response = client.get(reverse("healthz"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["db_connected"] is False
    assert body["model_loaded"] == {"recommender": False, "continuation": False}
    assert body["serving"]["recommender"]["version"] == every_kind_active["recommender"]
    assert body["cache_connected"] is True


@pytest.mark.django_db(transaction=True)
def test_the_watcher_loads_a_newly_activated_version_before_requests_ask(
    tmp_path, catalog_ids, django_assert_num_queries
):
    first = _recommender(tmp_path, catalog_ids)
    continuation = planted_continuation(directory=tmp_path, track_ids=catalog_ids[0])
    active_states.watch(interval_s=0.1)
    try:
        assert served_versions() == {"recommender": first.pk, "continuation": continuation.pk}
        sequence_model = active_states.get("continuation")
        second = _recommender(tmp_path, catalog_ids, seed=1)
        deadline = time.monotonic() + 10
        while served_versions()["recommender"] != second.pk and time.monotonic() < deadline:
            time.sleep(0.05)
        with django_assert_num_queries(0):  # a request only reads what the watcher loaded
            state = active_states.get("recommender")
    finally:
        active_states.unwatch()
    assert state.version_id == second.pk
    for part in ["faiss:flat-ip", "faiss:hnsw-ip", "faiss:hnsw-cos", "artist-centroids"]:
        assert state.derived(part, _loaded_on_first_use) is not None  # loaded whole, at once
    for part in ["model", "faiss:hnsw-ip"]:
        assert sequence_model.derived(part, _loaded_on_first_use) is not None


def _loaded_on_first_use():
    raise AssertionError("a request would have paid for this load")


def _timed_healthz_reports(base: str, n: int, parallel: int) -> list[tuple[float, float, dict]]:
    """(sent, received, report) per request: with requests in flight together, the list's
    order is not the order the server answered them in, but a report received before another
    was sent was answered before it."""

    def get(_):
        sent = time.perf_counter()
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
            report = json.load(response)
        return sent, time.perf_counter(), report

    if parallel == 1:
        return [get(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(get, range(n)))


def _healthz_reports(base: str, n: int, parallel: int) -> list[dict]:
    return [report for _, _, report in _timed_healthz_reports(base, n, parallel)]


@pytest.mark.django_db(transaction=True)
def test_every_gunicorn_worker_serves_the_active_version_from_boot_and_follows_activations(
    tmp_path, catalog_ids
):
    """Two real workers: every /healthz, whichever worker answers, reports the same loaded
    versions (loaded at boot, not on first use); an activation reaches both within seconds."""
    first = _recommender(tmp_path, catalog_ids)
    continuation = planted_continuation(directory=tmp_path, track_ids=catalog_ids[0])
    port = _free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_for(connection.settings_dict),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": "2",
        "SERVING_POLL_SECONDS": "0.5",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
    }
    (tmp_path / "prometheus").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "tunedin/gunicorn.conf.py"], cwd=ROOT,
        env=environment,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/healthz", server)
        # A worker takes requests only once it has loaded the models, and one may finish
        # booting seconds after the other: ask until both have answered (or 30 s pass).
        booted = _healthz_reports(base, 30, parallel=1)
        boot_deadline = time.monotonic() + 30
        while len({r["pid"] for r in booted}) < 2 and time.monotonic() < boot_deadline:
            booted += _healthz_reports(base, 40, parallel=8)
        second = _recommender(tmp_path, catalog_ids, seed=1)
        activated_at = time.monotonic()
        switched: dict[int, float] = {}  # worker pid -> seconds until it served `second`
        after: list[tuple[float, float, dict]] = []
        while len(switched) < 2 and time.monotonic() - activated_at < 15:
            for sent, received, report in _timed_healthz_reports(base, 16, parallel=4):
                after.append((sent, received, report))
                if report["serving"]["recommender"]["version"] == second.pk:
                    switched.setdefault(report["pid"], time.monotonic() - activated_at)
        settled = _healthz_reports(base, 40, parallel=8)
    finally:
        server.terminate()
        server.wait(timeout=30)

    expected = {
        "recommender": {"version": first.pk, "loaded": True},
        "continuation": {"version": continuation.pk, "loaded": True},
    }
    assert [report["serving"] for report in booted] == [expected] * len(booted)
    assert {report["status"] for report in booted} == {"ok"}
    workers = {report["pid"] for report in booted}
    assert len(workers) == 2, "both workers answered"
    assert set(switched) == workers and max(switched.values()) < 5, switched
    # A worker that served the new version never went back to the old one: no answer of the
    # old version was sent after (its request left after) an answer of the new one arrived.
    for pid in switched:
        answers = [(sent, received, r["serving"]["recommender"]["version"])
                   for sent, received, r in after if r["pid"] == pid]  # fmt: skip
        new_answers = [received for _, received, version in answers if version == second.pk]
        first_new = min(new_answers)
        went_back = [sent for sent, _, version in answers
                     if version != second.pk and sent > first_new]  # fmt: skip
        assert not went_back, (pid, answers)
    assert {report["serving"]["recommender"]["version"] for report in settled} == {second.pk}
    assert {report["pid"] for report in settled} <= workers
