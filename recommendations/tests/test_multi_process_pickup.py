"""Several machines: two web processes that share only Postgres, Redis and the S3 store (each
with its own empty artifact cache, neither able to read the trainer's files) serve the active
version from their first request and pick up a newly activated one within seconds.

Everything goes through public behaviour: versions are trained and activated by the training
services, the web processes are real gunicorn servers started with their own environment, and
what they serve is read from their /healthz."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from conftest import ROOT, database_url_for
from devstack import services
from mltasks.models import ModelVersion
from mltasks.services import model_version_activate, model_version_train
from tunedin.tests.test_metrics import _free_port, _wait_for

pytestmark = [pytest.mark.slow]

# Small enough for two training runs in about a minute on 2 cores.
TINY_WORLD = ["--users", "30", "--artists", "16", "--tracks", "120", "--events", "2500",
              "--playlists", "10", "--seed", "3"]  # fmt: skip
PICKUP_SECONDS = 10.0


@pytest.fixture(scope="module")
def s3_url():
    store = services.start_s3()
    yield store.url
    if store.started_here:
        services.stop_s3()


def _store_settings(monkeypatch, environment: dict[str, str]) -> dict:
    """STORAGES["artifacts"] as tunedin/settings.py builds it from `environment`."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "settings_probe", Path(ROOT) / "tunedin" / "settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STORAGES["artifacts"]


def _serving(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
        return json.load(response)["serving"]["recommender"]


def _wait_until_serving(bases: list[str], version_id: int, timeout_s: float) -> dict[str, float]:
    """{base: seconds until it served `version_id`, loaded}; stops at `timeout_s`."""
    started, reached = time.monotonic(), {}
    while len(reached) < len(bases) and time.monotonic() - started < timeout_s:
        for base in bases:
            if base not in reached and _serving(base) == {"version": version_id, "loaded": True}:
                reached[base] = time.monotonic() - started
        time.sleep(0.1)
    return reached


@pytest.mark.django_db(transaction=True)
def test_two_web_processes_with_empty_caches_serve_every_activation_from_the_store(
    s3_url, settings, monkeypatch, tmp_path
):
    store = services.s3_environment(s3_url)
    # This process is the training host: it uploads what it trains to the store.
    settings.STORAGES = {**settings.STORAGES, "artifacts": _store_settings(monkeypatch, store)}
    settings.ARTIFACTS_DIR = tmp_path / "trainer"
    settings.ARTIFACT_CACHE_DIR = tmp_path / "trainer-cache"
    settings.TRAINING_BUDGET_SECONDS = 2.0
    settings.TRAINING_MAX_EPOCHS = 3
    call_command("seed_demo", *TINY_WORLD)
    first = model_version_train(kind=ModelVersion.Kind.RECOMMENDER)
    second = model_version_train(kind=ModelVersion.Kind.RECOMMENDER)
    model_version_activate(version=first)  # first serves when the web processes start
    # The training host is another machine: its files are out of the web processes' reach.
    shutil.rmtree(tmp_path / "trainer")
    shutil.rmtree(tmp_path / "trainer-cache", ignore_errors=True)

    servers, bases, caches = [], [], []
    try:
        for name in ("host-a", "host-b"):
            port = _free_port()
            (tmp_path / name / "prometheus").mkdir(parents=True)
            caches.append(tmp_path / name / "artifact-cache")  # empty: not even created
            environment = {
                **os.environ,
                **store,
                "DATABASE_URL": database_url_for(connection.settings_dict),
                "ARTIFACT_CACHE_DIR": str(caches[-1]),
                "ARTIFACTS_DIR": str(tmp_path / name / "artifacts"),
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / name / "prometheus"),
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "WEB_WORKERS": "1",
                "SERVING_POLL_SECONDS": "0.5",
                "LOG_FORMAT": "text",
                "LOG_LEVEL": "WARNING",
            }
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-c", "tunedin/gunicorn.conf.py"],
                    cwd=ROOT,
                    env=environment,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base, server in zip(bases, servers, strict=True):
            _wait_for(f"{base}/healthz", server)
        booted = _wait_until_serving(bases, first.pk, timeout_s=60)

        model_version_activate(version=second)
        switched = _wait_until_serving(bases, second.pk, timeout_s=PICKUP_SECONDS * 3)
        settled = {base: _serving(base) for base in bases}
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)

    assert set(booted) == set(bases), f"serving at boot: {booted}"
    assert set(switched) == set(bases), f"switched to the new version: {switched}"
    assert max(switched.values()) < PICKUP_SECONDS, switched
    assert settled == {base: {"version": second.pk, "loaded": True} for base in bases}
    for cache in caches:  # each process downloaded the versions into its own cache
        for version in (first, second):
            downloaded = [p for p in (cache / "model-versions" / str(version.pk)).rglob("*")]
            assert any(path.is_file() for path in downloaded), (cache, version.pk)
