"""Publish a version's vectors for serving: the artifact files (numpy + FAISS), which every web
process loads, and the pgvector rows, which the HNSW queries read; and put the rows back when a
rolled-back version is activated again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mltasks.artifact_store import artifact_directory_of
from mltasks.indexes import write_faiss_indexes
from mltasks.ml.artifacts import (
    VECTORS_FILE,
    ServingVectors,
    load_serving_vectors,
    save_serving_vectors,
)
from mltasks.models import ModelVersion, TrackVector, UserVector, padded_vector
from mltasks.vector_indexes import version_indexes_build
from tunedin.db import copy_rows


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{value:.7g}" for value in padded_vector(vector)) + "]"


def _vector_rows_copy(*, model, owner_column: str, version, ids, vectors) -> None:
    copy_rows(
        table=model._meta.db_table,
        columns=["model_version_id", owner_column, "embedding"],
        rows=(
            (version.pk, int(owner), _vector_literal(vector))
            for owner, vector in zip(ids, vectors, strict=True)
        ),
    )


def vectors_store(*, version: ModelVersion, vectors: ServingVectors) -> None:
    """Write the version's vectors into pgvector (zero-padded, see STORED_VECTOR_DIM), then
    build the version's HNSW indexes over them (mltasks.vector_indexes)."""
    _vector_rows_copy(
        model=TrackVector, owner_column="track_id", version=version,
        ids=vectors.track_ids, vectors=vectors.item_vectors,
    )  # fmt: skip
    if vectors.has_users:
        _vector_rows_copy(
            model=UserVector, owner_column="user_id", version=version,
            ids=vectors.user_ids, vectors=vectors.user_vectors,
        )  # fmt: skip
    version_indexes_build(version_id=version.pk)


def serving_artifacts_write(*, directory: Path, vectors: ServingVectors) -> None:
    """The vectors file and the FAISS indexes over the item vectors."""
    save_serving_vectors(vectors, directory)
    write_faiss_indexes(item_vectors=vectors.item_vectors, directory=directory)


def serving_vectors_publish(
    *, version: ModelVersion, directory: Path, vectors: ServingVectors
) -> None:
    """Everything serving reads of a version's vectors: the artifact files (numpy + FAISS) and
    the pgvector rows."""
    serving_artifacts_write(directory=directory, vectors=vectors)
    vectors_store(version=version, vectors=vectors)


def vectors_restore(*, version: ModelVersion) -> None:
    """Put a version's vectors back into pgvector from its artifacts (after a rollback)."""
    if not version.artifact_path or version.track_vectors.exists():
        return
    directory = artifact_directory_of(version_id=version.pk, artifact_path=version.artifact_path)
    if not (directory / VECTORS_FILE).exists():
        return
    vectors_store(version=version, vectors=load_serving_vectors(directory))
