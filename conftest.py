"""Fixtures shared by every app's tests: real PostgreSQL, real Redis, a real Celery worker."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

ROOT = os.path.dirname(os.path.abspath(__file__))


def database_url_for(settings_dict: dict) -> str:
    """A DATABASE_URL pointing at the database pytest-django created for this run."""
    host = settings_dict.get("HOST") or ""
    user = quote(settings_dict.get("USER") or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    name = settings_dict["NAME"]
    if host.startswith("/"):
        return f"postgresql://{user}:{password}@/{name}?host={host}"
    port = settings_dict.get("PORT") or 5432
    return f"postgresql://{user}:{password}@{host}:{port}/{name}"


@pytest.fixture(autouse=True, scope="session")
def _no_hyper_parameter_search():
    """Training in tests is small and decided by its epoch counts: no time-boxed search (which
    would make a run depend on the machine's speed). mltasks/tests/test_ml_tuning.py tests the
    search itself."""
    from django.conf import settings

    previous = settings.TRAINING_SEARCH_SECONDS
    settings.TRAINING_SEARCH_SECONDS = 0.0
    yield
    settings.TRAINING_SEARCH_SECONDS = previous


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache and no serving state loaded in this process."""
    from recommendations.serving import active_states
    from recommendations.track_cards import forget

    cache.clear()
    forget()
    active_states.reset()
    yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories hash a password per user; PBKDF2's deliberate slowness only costs test time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings):
    """Pages render without a prior `collectstatic` (the manifest storage needs one)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@contextlib.contextmanager
def _celery_worker(settings, **environment_overrides: str):
    """A real `celery worker` process on its own queue, connected to the test database; every
    task sent while it runs goes to that queue, whatever queue it is routed to."""
    from django.db import connection

    from tunedin.celery import app

    queue = f"tunedin-test-{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_for(connection.settings_dict),
        "ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
        "LOG_FORMAT": "text",
        # Workers in tests train small: a few seconds per neural model.
        "TRAINING_BUDGET_SECONDS": "5",
        "TRAINING_MAX_EPOCHS": "10",
        "TRAINING_SEARCH_SECONDS": "0",
        **environment_overrides,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tunedin", "worker", "--queues", queue,
         "--concurrency", "1", "--pool", "solo", "--loglevel", "WARNING",
         "--hostname", f"{queue}@%h",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=environment,
    )  # fmt: skip
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    # Every task to the default queue, this worker's, training included: Celery's router keeps
    # the routes it was built with (at the first send), so they are swapped there.
    router = app.amqp.router
    previous_routes, router.routes = router.routes, []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"celery worker exited with {worker.returncode}")
            replies = app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5)
            if replies:
                break
        else:
            raise RuntimeError("celery worker did not answer a ping within 60 s")
        yield queue
    finally:
        app.conf.task_default_queue = previous_queue
        router.routes = previous_routes
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.fixture
def celery_worker_process(transactional_db, settings):
    """A real `celery worker` process on its own queue, connected to the test database."""
    with _celery_worker(settings) as queue:
        yield queue


@pytest.fixture
def celery_worker_with(transactional_db, settings):
    """Start real workers one after another, each with its own environment:
    `with celery_worker_with(TRAINING_MAX_EPOCHS="1"): ...`."""
    return functools.partial(_celery_worker, settings)
