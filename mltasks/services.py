"""Training jobs: one run per kind at a time, a ModelVersion with its metrics and artifacts,
activated only when it beats MostPop on validation and is at least as good as the active
version on the same held-out data (mltasks.training.activation says exactly how).

model_version_train -> mltasks.training.<kind> (data from Postgres, the ML core, then
mltasks.training.publish: artifact files, FAISS indexes, pgvector rows) -> activation rule ->
model_version_activate, or the version stays ready with the reason in
`metrics["activation"]`."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from feedback.models import Interaction
from mltasks.artifact_store import artifact_directory_upload
from mltasks.ml.artifacts import MODEL_VERSION_FILE
from mltasks.models import ModelVersion, TrackVector, UserVector
from mltasks.selectors import model_version_active
from mltasks.training.activation import SELECTION_METRICS, activation_decide
from mltasks.training.continuation import continuation_train
from mltasks.training.publish import vectors_restore
from mltasks.training.recommender import recommender_train
from mltasks.vector_indexes import orphan_version_indexes_drop
from tunedin import metrics
from tunedin.celery import app as celery_app

logger = logging.getLogger(__name__)

# Postgres advisory-lock keys: one training per kind at a time, released if the worker dies.
TRAINING_LOCK_KEYS = {ModelVersion.Kind.RECOMMENDER: 7_301, ModelVersion.Kind.CONTINUATION: 7_302}
TRAINERS = {
    ModelVersion.Kind.RECOMMENDER: recommender_train,
    ModelVersion.Kind.CONTINUATION: continuation_train,
}
# Sent by name: the tasks (mltasks.tasks) call this module, so it does not import them.
TRAINING_TASKS = {
    ModelVersion.Kind.RECOMMENDER: "mltasks.tasks.train_recommender",
    ModelVersion.Kind.CONTINUATION: "mltasks.tasks.train_continuation",
}
KIND_ALIASES = {
    "recommender": ModelVersion.Kind.RECOMMENDER,
    "lightgcn": ModelVersion.Kind.RECOMMENDER,
    "continuation": ModelVersion.Kind.CONTINUATION,
    "sasrec": ModelVersion.Kind.CONTINUATION,
}


class TrainingAlreadyRunning(RuntimeError):
    pass


@contextmanager
def training_lock(*, kind: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [TRAINING_LOCK_KEYS[kind]])
        (acquired,) = cursor.fetchone()
    if not acquired:
        raise TrainingAlreadyRunning(f"a {kind} training is already running")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [TRAINING_LOCK_KEYS[kind]])


def activation_decision(*, version: ModelVersion, held_out) -> dict:
    """Apply the activation rule to a freshly trained `version` (mltasks.training.activation);
    a check that fails unexpectedly leaves the version ready, with the error as the reason."""
    active = model_version_active(kind=version.kind)
    try:
        return activation_decide(version=version, held_out=held_out, active=active)
    except Exception as error:
        logger.exception("the activation check of version %s failed", version.pk)
        return {
            "activated": False,
            "reason": f"the activation check failed ({error!r}); check before activating by hand",
            "metric": SELECTION_METRICS[version.kind],
            "active_version": None if active is None else active.pk,
        }


def model_version_activate(*, version: ModelVersion) -> None:
    """Activate atomically; vectors of the kind's other versions are dropped from pgvector so
    the HNSW indexes only hold what serves (a rolled-back version gets its own back), and
    their per-version indexes go with them."""
    with transaction.atomic():
        vectors_restore(version=version)
        version.activate()
        stale = ModelVersion.objects.filter(kind=version.kind).exclude(pk=version.pk)
        TrackVector.objects.filter(model_version__in=stale).delete()
        UserVector.objects.filter(model_version__in=stale).delete()
    # After the commit: outside a transaction the drops run CONCURRENTLY (mltasks.vector_indexes).
    orphan_version_indexes_drop()


def _data_window() -> dict:
    """The time span of the interactions a run trained on (drift checks compare against it)."""
    span = Interaction.objects.aggregate(start=Min("occurred_at"), end=Max("occurred_at"))
    if span["end"] is None:
        return {}
    return {
        "trained_until": span["end"].isoformat(),
        "data_window": {"start": span["start"].isoformat(), "end": span["end"].isoformat()},
    }


def model_version_train(*, kind: str) -> ModelVersion:
    """Train a new version of `kind`. A failure marks the version failed and leaves the active
    one serving; a version the activation rule does not activate stays `ready`, with the reason
    in `metrics["activation"]`."""
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in TRAINING_LOCK_KEYS:
        raise ValueError(f"unknown model kind {kind!r}")
    with training_lock(kind=kind):
        # Holding the lock, any other version still "training" was cut short (a killed worker).
        ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.TRAINING).update(
            status=ModelVersion.Status.FAILED, error="interrupted before training finished"
        )
        version = ModelVersion.objects.create(kind=kind, algorithm="pending")
        directory = Path(settings.ARTIFACTS_DIR) / kind / str(version.pk)
        started = time.monotonic()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            outcome = TRAINERS[kind](version=version, directory=directory)
        except Exception:
            metrics.training_finished(
                kind=kind, algorithm="unknown", duration_seconds=time.monotonic() - started,
                succeeded=False,
            )  # fmt: skip
            version.status = ModelVersion.Status.FAILED
            version.error = traceback.format_exc()
            version.save(update_fields=["status", "error"])
            logger.exception("training %s version %s failed", kind, version.pk)
            raise
        held_out = outcome.pop("held_out", None)
        version.algorithm = outcome["algorithm"]
        version.metrics = outcome["metrics"]
        version.history = outcome["history"]
        duration = time.monotonic() - started
        version.params = {**outcome["params"], "train_seconds": duration, **_data_window()}
        version.artifact_path = str(directory)
        version.trained_at = timezone.now()
        version.status = ModelVersion.Status.READY
        version.save()
        metrics.training_finished(
            kind=kind, algorithm=version.algorithm, duration_seconds=duration, succeeded=True
        )
        decision = activation_decision(version=version, held_out=held_out)
        version.metrics = {**version.metrics, "activation": decision}
        version.save(update_fields=["metrics"])
        (directory / MODEL_VERSION_FILE).write_text(
            json.dumps({"id": version.pk, "kind": kind, "metrics": version.metrics}, default=str)
        )
        # Every file is written: publish them to the artifacts store before any activation, so
        # that a web process on another host can load the version (artifact_path = the prefix).
        version.artifact_path = artifact_directory_upload(
            version_id=version.pk, directory=directory
        )
        version.save(update_fields=["artifact_path"])
        if decision["activated"]:
            model_version_activate(version=version)
        else:
            logger.warning("%s version %s not activated: %s", kind, version.pk, decision["reason"])
    return version


def training_enqueue(*, kind: str) -> str:
    """Queue a training run on a Celery worker; returns the task id."""
    kind = KIND_ALIASES.get(kind, kind)
    return celery_app.send_task(TRAINING_TASKS[kind]).id
