"""Training jobs: build data from Postgres, train with the ML core, store a ModelVersion with
its metrics, its artifacts (weights, vectors, FAISS indexes) and its vectors in pgvector, and
activate it only when it beats MostPop on validation."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mltasks.indexes import write_faiss_indexes
from mltasks.models import ModelVersion, TrackVector, UserVector, padded_vector
from tunedin import metrics
from tunedin.db import copy_rows

logger = logging.getLogger(__name__)

# Postgres advisory-lock keys: one training per kind at a time, released if the worker dies.
TRAINING_LOCK_KEYS = {ModelVersion.Kind.RECOMMENDER: 7_301, ModelVersion.Kind.CONTINUATION: 7_302}
SELECTION_METRICS = {
    ModelVersion.Kind.RECOMMENDER: "nDCG@20",
    ModelVersion.Kind.CONTINUATION: "Recall@20",
}
VECTORS_FILE = "vectors.npz"
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


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{value:.7g}" for value in padded_vector(vector)) + "]"


def vectors_store(
    *,
    version: ModelVersion,
    track_ids: np.ndarray,
    item_vectors: np.ndarray,
    user_ids: np.ndarray | None = None,
    user_vectors: np.ndarray | None = None,
) -> None:
    """Write the version's vectors into pgvector (zero-padded, see STORED_VECTOR_DIM)."""
    copy_rows(
        table=TrackVector._meta.db_table,
        columns=["model_version_id", "track_id", "embedding"],
        rows=(
            (version.pk, int(t), _vector_literal(v))
            for t, v in zip(track_ids, item_vectors, strict=True)
        ),
    )
    if user_ids is not None and user_vectors is not None:
        copy_rows(
            table=UserVector._meta.db_table,
            columns=["model_version_id", "user_id", "embedding"],
            rows=(
                (version.pk, int(u), _vector_literal(v))
                for u, v in zip(user_ids, user_vectors, strict=True)
            ),
        )


def serving_artifacts_write(
    *,
    directory: Path,
    track_ids: np.ndarray,
    item_vectors: np.ndarray,
    user_ids: np.ndarray | None = None,
    user_vectors: np.ndarray | None = None,
) -> None:
    arrays = {
        "track_ids": track_ids.astype(np.int64),
        "item_vectors": item_vectors.astype(np.float32),
    }
    if user_ids is not None and user_vectors is not None:
        arrays |= {
            "user_ids": user_ids.astype(np.int64),
            "user_vectors": user_vectors.astype(np.float32),
        }
    np.savez(directory / VECTORS_FILE, **arrays)
    write_faiss_indexes(item_vectors=item_vectors.astype(np.float32), directory=directory)


def serving_vectors_publish(
    *,
    version: ModelVersion,
    directory: Path,
    track_ids: np.ndarray,
    item_vectors: np.ndarray,
    user_ids: np.ndarray | None = None,
    user_vectors: np.ndarray | None = None,
) -> None:
    """Everything serving reads of a version's vectors: the artifact files (numpy + FAISS) and
    the pgvector rows."""
    vectors = {"track_ids": track_ids, "item_vectors": item_vectors,
               "user_ids": user_ids, "user_vectors": user_vectors}  # fmt: skip
    serving_artifacts_write(directory=directory, **vectors)
    vectors_store(version=version, **vectors)


def beats_most_popular(*, kind: str, metrics: dict) -> bool:
    """Whether the served model beats MostPop on validation (the activation rule)."""
    metric = SELECTION_METRICS[kind]
    served = metrics["served"]
    return (
        metrics["models"][served]["valid"][metric] > metrics["models"]["MostPop"]["valid"][metric]
    )


def _vectors_restore(*, version: ModelVersion) -> None:
    """Put a version's vectors back into pgvector from its artifacts (after a rollback)."""
    path = Path(version.artifact_path) / VECTORS_FILE
    if not version.artifact_path or not path.exists() or version.track_vectors.exists():
        return
    with np.load(path) as arrays:
        has_users = "user_ids" in arrays and "user_vectors" in arrays
        vectors_store(
            version=version,
            track_ids=arrays["track_ids"],
            item_vectors=arrays["item_vectors"],
            user_ids=arrays["user_ids"] if has_users else None,
            user_vectors=arrays["user_vectors"] if has_users else None,
        )


def model_version_activate(*, version: ModelVersion) -> None:
    """Activate atomically; vectors of the kind's other versions are dropped from pgvector so
    the HNSW indexes only hold what serves (a rolled-back version gets its own back)."""
    with transaction.atomic():
        _vectors_restore(version=version)
        version.activate()
        stale = ModelVersion.objects.filter(kind=version.kind).exclude(pk=version.pk)
        TrackVector.objects.filter(model_version__in=stale).delete()
        UserVector.objects.filter(model_version__in=stale).delete()


def _continuation_train(*, version: ModelVersion, directory: Path) -> dict:
    from mltasks.ml.data.sequences import SequenceConfig
    from mltasks.ml.seq.continuation import (
        ContinuationConfig,
        save_artifact,
        train_continuation_model,
    )
    from mltasks.ml.seq.gru4rec import GRU4RecConfig
    from mltasks.ml.seq.sasrec import SASRecConfig
    from mltasks.selectors import listening_sequences_for_training

    budget = settings.TRAINING_BUDGET_SECONDS
    neural = {
        "d_model": settings.MODEL_D,
        "max_seq_len": settings.MAX_SEQ_LEN,
        "label_smoothing": settings.LOSS_LABEL_SMOOTH,
        "max_epochs": settings.TRAINING_MAX_EPOCHS,
    }
    config = ContinuationConfig(
        sequences=SequenceConfig(
            session_gap_min=settings.SESSION_GAP_MIN,
            vocab_min_freq=settings.VOCAB_MIN_FREQ,
            max_seq_len=settings.MAX_SEQ_LEN,
        ),
        sasrec=SASRecConfig(**neural, max_train_seconds=budget),
        gru4rec=GRU4RecConfig(**neural, max_train_seconds=budget / 2),
        # Serving runs skip what only benchmarks report (sampled metrics, a long latency probe).
        sknn_neighbours_grid=(50, 100, 200),
        sampled_negatives=0,
        latency_requests=20,
        show_progress=False,
    )
    result = train_continuation_model(
        sequences=listening_sequences_for_training(), config=config, seed=settings.TRAINING_SEED
    )
    save_artifact(result, directory)
    serving_vectors_publish(
        version=version,
        directory=directory,
        track_ids=result.item_ids.astype(np.int64),
        item_vectors=result.output_item_embeddings,
    )
    return {
        "algorithm": result.served_model_name.lower(),
        "metrics": {"served": result.served_model_name, "models": result.metrics},
        "history": result.history.get(result.served_model_name, []),
        "params": {
            "models": result.params,
            "split": result.split_summary,
            "timings": result.timings,
            "seed": result.seed,
        },
    }


def _recommender_train(*, version: ModelVersion, directory: Path) -> dict:
    from mltasks.recommender_training import recommender_train_from_database

    return recommender_train_from_database(version=version, directory=directory)


def _data_window() -> dict:
    """The time span of the interactions a run trained on (drift checks compare against it)."""
    from django.db.models import Max, Min

    from feedback.models import Interaction

    span = Interaction.objects.aggregate(start=Min("occurred_at"), end=Max("occurred_at"))
    if span["end"] is None:
        return {}
    return {
        "trained_until": span["end"].isoformat(),
        "data_window": {"start": span["start"].isoformat(), "end": span["end"].isoformat()},
    }


def model_version_train(*, kind: str) -> ModelVersion:
    """Train a new version of `kind`. A failure marks the version failed and leaves the active
    one serving; a version that does not beat MostPop on validation stays `ready`."""
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
            trainer = (
                _recommender_train if kind == ModelVersion.Kind.RECOMMENDER else _continuation_train
            )
            outcome = trainer(version=version, directory=directory)
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
        version.algorithm = outcome["algorithm"]
        version.metrics = outcome["metrics"]
        version.history = outcome["history"]
        duration = time.monotonic() - started
        version.params = {**outcome["params"], "train_seconds": duration, **_data_window()}
        version.artifact_path = str(directory)
        version.trained_at = timezone.now()
        version.status = ModelVersion.Status.READY
        version.save()
        (directory / "model_version.json").write_text(
            json.dumps({"id": version.pk, "kind": kind, "metrics": version.metrics}, default=str)
        )
        metrics.training_finished(
            kind=kind, algorithm=version.algorithm, duration_seconds=duration, succeeded=True
        )
        if beats_most_popular(kind=kind, metrics=version.metrics):
            model_version_activate(version=version)
        else:
            logger.warning("%s version %s does not beat MostPop on validation; not activated",
                           kind, version.pk)  # fmt: skip
    return version


def training_enqueue(*, kind: str) -> str:
    """Queue a training run on a Celery worker; returns the task id."""
    from mltasks.tasks import train_continuation, train_recommender

    kind = KIND_ALIASES.get(kind, kind)
    task = train_recommender if kind == ModelVersion.Kind.RECOMMENDER else train_continuation
    return task.delay().id
