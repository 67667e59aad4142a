"""Model versions planted from known or random weights (no training), published like trained
ones (artifact files, FAISS indexes, pgvector rows), for fast serving tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mltasks.ml.artifacts import ServingVectors, save_continuation_artifact
from mltasks.ml.seq.continuation import ContinuationResult
from mltasks.ml.seq.sasrec import SASREC
from mltasks.ml.seq.trainer import NeuralContinuationModel
from mltasks.models import ModelVersion
from mltasks.services import model_version_activate
from mltasks.training.publish import serving_vectors_publish


def _published_version(*, kind: str, directory: Path, write_artifacts) -> ModelVersion:
    version = ModelVersion.objects.create(
        kind=kind,
        algorithm="planted",
        status=ModelVersion.Status.READY,
        metrics={"served": "planted", "models": {}},
    )
    artifacts = Path(directory) / kind / str(version.pk)
    artifacts.mkdir(parents=True)
    vectors = write_artifacts(artifacts)
    serving_vectors_publish(version=version, directory=artifacts, vectors=vectors)
    version.artifact_path = str(artifacts)
    version.save(update_fields=["artifact_path"])
    return version


def planted_recommender(
    *, directory: Path, vectors: ServingVectors, activate: bool = True
) -> ModelVersion:
    """A recommender version serving `vectors` (activated unless `activate` is False)."""
    version = _published_version(
        kind=ModelVersion.Kind.RECOMMENDER, directory=directory, write_artifacts=lambda _: vectors
    )
    if activate:
        model_version_activate(version=version)
    return version


def random_vectors(*, track_ids, user_ids=None, dim: int = 16, seed: int = 0) -> ServingVectors:
    rng = np.random.default_rng(seed)
    track_ids = np.asarray(sorted(track_ids))
    user_ids = None if user_ids is None else np.asarray(sorted(user_ids))
    return ServingVectors(
        track_ids=track_ids,
        item_vectors=rng.standard_normal((len(track_ids), dim)).astype(np.float32),
        user_ids=user_ids,
        user_vectors=None
        if user_ids is None
        else rng.standard_normal((len(user_ids), dim)).astype(np.float32),
    )


def planted_continuation(
    *, directory: Path, track_ids, activate: bool = True, seed: int = 0
) -> ModelVersion:
    """A continuation version serving an untrained one-layer SASRec over `track_ids`."""
    import torch

    track_ids = np.asarray(sorted(track_ids))

    def write_artifacts(artifacts: Path) -> ServingVectors:
        torch.manual_seed(seed)
        network, config = SASREC.build(
            len(track_ids), {"d_model": 8, "n_layers": 1, "n_heads": 1, "max_seq_len": 10}
        )
        model = NeuralContinuationModel(
            network=network, config=config, n_items=len(track_ids), architecture=SASREC
        )
        result = ContinuationResult(
            served_model_name=SASREC.name, served_model=model,
            output_item_embeddings=model.output_item_embeddings,
            item_ids=track_ids.astype(str),
            item_index={str(t): i for i, t in enumerate(track_ids)},
            item_artist=None, artist_ids=None, metrics={}, history={}, timings={}, params={},
            split_summary={}, seed=seed,
        )  # fmt: skip
        save_continuation_artifact(result, artifacts)
        return ServingVectors(track_ids=track_ids, item_vectors=model.output_item_embeddings)

    version = _published_version(
        kind=ModelVersion.Kind.CONTINUATION, directory=directory, write_artifacts=write_artifacts
    )
    if activate:
        model_version_activate(version=version)
    return version
