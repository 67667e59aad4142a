"""Training jobs: locking, failure handling, and a real Celery worker training a version."""

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from conftest import database_url_for
from mltasks.models import ModelVersion
from mltasks.services import (
    TRAINING_LOCK_KEYS,
    TrainingAlreadyRunning,
    model_version_activate,
    model_version_train,
)
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


NEURAL_ONE_BATCH = {"SERVED_CANDIDATES": "SASRec,GRU4Rec", "TRAINING_BUDGET_SECONDS": "0.0001",
                    "TRAINING_MAX_EPOCHS": "1"}  # fmt: skip
TWO_EPOCHS = {"TRAINING_BUDGET_SECONDS": "600", "TRAINING_MAX_EPOCHS": "2"}  # epochs decide


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_activation_rule_decides_on_versions_a_real_worker_trains(celery_worker_with):
    """Three runs on real workers, each started with its own settings: a one-batch neural
    model that loses to MostPop, then the default run (the best of everything it trains, a
    ranker included) that replaces it, then a run that may serve only the Markov chain, which
    beats MostPop but is worse than the active version."""
    call_command("seed_demo", "--users", "60", "--artists", "16", "--tracks", "300",
                 "--events", "8000", "--playlists", "40", "--seed", "3")  # fmt: skip

    def trained(**environment) -> ModelVersion:
        with celery_worker_with(**environment):
            outcome = train_continuation.delay().get(timeout=600)
        return ModelVersion.objects.get(pk=outcome["model_version"])

    weak = trained(**NEURAL_ONE_BATCH)
    assert weak.status == ModelVersion.Status.READY
    assert "does not beat MostPop" in weak.metrics["activation"]["reason"]
    model_version_activate(version=weak)  # staff may still serve it by hand

    best = trained(**TWO_EPOCHS)
    decision = best.metrics["activation"]
    assert best.status == ModelVersion.Status.ACTIVE
    assert decision["active_version"] == weak.pk
    assert decision["reason"].startswith(f"at least as good as the active version #{weak.pk}")
    weak.refresh_from_db()
    assert weak.status == ModelVersion.Status.RETIRED

    markov = trained(**TWO_EPOCHS, SERVED_CANDIDATES="Markov")
    decision = markov.metrics["activation"]
    assert markov.metrics["served"] == "Markov"
    assert decision["new_metric"] > decision["most_popular_metric"]
    assert markov.status == ModelVersion.Status.READY
    assert decision["reason"].startswith(f"worse than the active version #{best.pk}")
    best.refresh_from_db()
    assert best.status == ModelVersion.Status.ACTIVE
