"""Training jobs: locking, failure handling, and a real Celery worker training a version."""

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from conftest import database_url_for
from mltasks.models import ModelVersion
from mltasks.services import TRAINING_LOCK_KEYS, TrainingAlreadyRunning, model_version_train
from mltasks.tasks import train_continuation


@pytest.mark.django_db
def test_a_failed_training_leaves_the_active_version_serving(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    serving = ModelVersion.objects.create(kind="continuation", algorithm="sasrec")
    serving.activate()
    # No listening events at all: the sequence split cannot be made.
    with pytest.raises(Exception):  # noqa: B017 (whatever the ML core raises)
        model_version_train(kind="continuation")
    failed = ModelVersion.objects.exclude(pk=serving.pk).get()
    assert failed.status == ModelVersion.Status.FAILED
    assert failed.error
    serving.refresh_from_db()
    assert serving.status == ModelVersion.Status.ACTIVE


@pytest.mark.django_db
def test_only_one_training_per_kind_runs_at_a_time():
    other = psycopg.connect(database_url_for(connection.settings_dict), autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [TRAINING_LOCK_KEYS["continuation"]])
        with pytest.raises(TrainingAlreadyRunning):
            model_version_train(kind="continuation")
        assert not ModelVersion.objects.exists()
    finally:
        other.close()


@pytest.mark.django_db
def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown model kind"):
        model_version_train(kind="telepathy")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_trains_and_activates_a_continuation_version(celery_worker_process):
    call_command("seed_demo", "--users", "60", "--artists", "16", "--tracks", "300",
                 "--events", "8000", "--playlists", "40", "--seed", "3")  # fmt: skip
    outcome = train_continuation.delay().get(timeout=600)
    version = ModelVersion.objects.get(pk=outcome["model_version"])
    assert version.kind == "continuation"
    assert version.status in (ModelVersion.Status.ACTIVE, ModelVersion.Status.READY)
    assert version.metrics["models"]["MostPop"]["valid"]["Recall@20"] >= 0
    assert version.track_vectors.exists()


@pytest.mark.django_db
def test_a_run_cut_short_by_a_killed_worker_is_marked_failed_by_the_next_run(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    orphan = ModelVersion.objects.create(kind="continuation", algorithm="sasrec")
    with pytest.raises(Exception):  # noqa: B017 (no data: this run fails too)
        model_version_train(kind="continuation")
    orphan.refresh_from_db()
    assert orphan.status == ModelVersion.Status.FAILED
    assert "interrupted" in orphan.error
