"""Train playlist continuation from Postgres: the Django side of mltasks.ml.seq.continuation."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from mltasks.ml.artifacts import ServingVectors, save_continuation_artifact
from mltasks.ml.data.sequences import SequenceConfig
from mltasks.ml.seq.continuation import ContinuationConfig, train_continuation_model
from mltasks.ml.seq.gru4rec import GRU4RecConfig
from mltasks.ml.seq.sasrec import SASRecConfig
from mltasks.models import ModelVersion
from mltasks.selectors import listening_sequences_for_training
from mltasks.training.activation import ContinuationHeldOut
from mltasks.training.publish import serving_vectors_publish


def continuation_config() -> ContinuationConfig:
    """The serving run's configuration, from settings."""
    budget = settings.TRAINING_BUDGET_SECONDS
    neural = {
        "d_model": settings.MODEL_D,
        "max_seq_len": settings.MAX_SEQ_LEN,
        "label_smoothing": settings.LOSS_LABEL_SMOOTH,
        "max_epochs": settings.TRAINING_MAX_EPOCHS,
        "device": settings.TRAINING_DEVICE,
    }
    return ContinuationConfig(
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
        served_candidates=settings.SERVED_CANDIDATES,
        search_seconds=settings.TRAINING_SEARCH_SECONDS,
        neural_min_baseline_share=settings.TRAINING_SEQUENCE_MIN_BASELINE_SHARE,
    )


def continuation_train(*, version: ModelVersion, directory: Path) -> dict:
    """Train on the listening sessions and playlists, save the served pipeline, publish the
    best neural model's output item vectors; returns what the version records (algorithm,
    metrics, history, params) and, under "held_out", the validation cases the activation rule
    scores the active version on."""
    result = train_continuation_model(
        sequences=listening_sequences_for_training(),
        config=continuation_config(),
        seed=settings.TRAINING_SEED,
    )
    save_continuation_artifact(result, directory)
    vectors = ServingVectors(track_ids=result.item_ids, item_vectors=result.output_item_embeddings)
    serving_vectors_publish(version=version, directory=directory, vectors=vectors)
    return {
        "algorithm": result.served_model_name.lower(),
        "metrics": {
            "served": result.served_model_name,
            "models": result.metrics,
            "selection": result.selection,
            "ranker": result.ranker,
            "vectors_model": result.vectors_model_name,
        },
        "history": result.history.get(result.vectors_model_name, []),
        "params": {
            "models": result.params,
            "split": result.split_summary,
            "timings": result.timings,
            "seed": result.seed,
        },
        "held_out": ContinuationHeldOut(split=result.split, selection_cases=result.selection_cases),
    }
