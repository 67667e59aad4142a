"""Train the user recommender from Postgres: the Django side of mltasks.ml.cf.recommender."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from django.conf import settings

from catalog.models import Tag
from mltasks.ml.artifacts import (
    RECOMMENDER_ARTIFACT,
    SERVED_PIPELINE_FOLDER,
    ServingVectors,
    save_recommender_artifact,
    save_scorer,
)
from mltasks.ml.cf.recommender import TUNED_LIGHTGCN, RecommenderConfig, train_user_recommender
from mltasks.ml.data.interactions import IdIndex, Interactions
from mltasks.ml.data.splits import cf_random_split
from mltasks.models import ModelVersion
from mltasks.selectors import (
    interaction_log_for_training,
    track_artists,
    track_tags_for_training,
)
from mltasks.training.activation import RecommenderHeldOut
from mltasks.training.publish import serving_vectors_publish


def _item_tag_matrix(items: IdIndex) -> tuple[sp.csr_matrix, list[str]]:
    tags = track_tags_for_training()
    tag_ids = np.array(Tag.objects.order_by("pk").values_list("pk", flat=True), dtype=np.int64)
    tag_position = {int(t): i for i, t in enumerate(tag_ids)}
    rows = [items.get(int(t)) for t in tags.track_ids]
    keep = np.array([r >= 0 for r in rows], dtype=bool)
    matrix = sp.csr_matrix(
        (
            tags.weights[keep],
            (np.array(rows)[keep], [tag_position[int(t)] for t in tags.tag_ids[keep]]),
        ),
        shape=(len(items), len(tag_ids)),
    )
    names = list(Tag.objects.order_by("pk").values_list("name", flat=True))
    return matrix, names


def recommender_training_data() -> tuple[Interactions, sp.csr_matrix, list[str]]:
    """The interaction log over the whole catalog, and the track x tag matrix."""
    log = interaction_log_for_training()
    if log.user_ids.size == 0:
        raise ValueError("no interactions to train on; seed or import data first")
    items = IdIndex(log.catalog_track_ids)
    interactions = Interactions(
        user_ids=log.user_ids,
        item_ids=log.track_ids,
        weights=log.weights,
        timestamps=log.timestamps.astype(np.int64),
        users=IdIndex(np.unique(log.user_ids)),
        items=items,
    )
    item_tags, tag_names = _item_tag_matrix(items)
    return interactions, item_tags, tag_names


def item_artist_index(items: IdIndex) -> np.ndarray:
    """Each item's artist as a small integer (-1 unknown), for the ranker's artist features."""
    artist_of = track_artists()
    artists = np.array([artist_of.get(str(track_id), "") for track_id in items.ids.tolist()])
    known = artists != ""
    codes = np.full(len(artists), -1, dtype=np.int64)
    if known.any():
        codes[known] = np.unique(artists[known], return_inverse=True)[1].reshape(-1)
    return codes


def first_positive_times(interactions: Interactions, pairs: sp.csr_matrix) -> np.ndarray:
    """When each stored (user, item) pair of `pairs` first had a positive event, in the order of
    `pairs.data` (sorted CSR); the activation rule dates what an older version may have seen."""
    positive = interactions.weights > 0
    keys = interactions.user_index[positive] * interactions.n_items
    keys = keys + interactions.item_index[positive]
    times = interactions.timestamps[positive]
    order = np.lexsort((times, keys))
    keys, times = keys[order], times[order]
    first = np.concatenate([[True], keys[1:] != keys[:-1]])
    pairs = pairs.tocoo()
    wanted = pairs.row.astype(np.int64) * interactions.n_items + pairs.col
    return times[first][np.searchsorted(keys[first], wanted)].astype(np.float64)


def recommender_train(*, version: ModelVersion, directory: Path) -> dict:
    """Train on the whole interaction log; save the served pipeline and publish the vectors of
    the best factor model (similar items, ANN); returns what the version records (algorithm,
    metrics, history, params) and, under "held_out", the validation split the activation rule
    scores the active version on."""
    interactions, item_tags, tag_names = recommender_training_data()
    split = cf_random_split(interactions, seed=settings.TRAINING_SEED)
    config = RecommenderConfig(
        lightgcn=replace(
            TUNED_LIGHTGCN,
            max_seconds=settings.TRAINING_BUDGET_SECONDS,
            max_epochs=settings.TRAINING_MAX_EPOCHS,
            device=settings.TRAINING_DEVICE,
        ),
        search_seconds=settings.TRAINING_SEARCH_SECONDS,
        show_progress=False,
        served_candidates=settings.SERVED_CANDIDATES,
        lightgcn_min_baseline_share=settings.TRAINING_LIGHTGCN_MIN_BASELINE_SHARE,
    )
    result = train_user_recommender(
        interactions=interactions,
        item_tags=item_tags,
        tag_names=tag_names,
        item_artist=item_artist_index(interactions.items),
        config=config,
        seed=settings.TRAINING_SEED,
        split=split,
    )
    save_recommender_artifact(result, directory / RECOMMENDER_ARTIFACT)
    save_scorer(result.served_scorer, directory / SERVED_PIPELINE_FOLDER)
    vectors = ServingVectors(
        track_ids=result.item_ids,
        item_vectors=result.item_vectors,
        user_ids=result.user_ids,
        user_vectors=result.user_vectors,
    )
    serving_vectors_publish(version=version, directory=directory, vectors=vectors)
    return {
        "algorithm": result.served_model.lower(),
        "metrics": {
            "served": result.served_model,
            "models": result.metrics,
            "selection": result.selection,
            "served_test": result.served_test,
            "ranker": result.ranker,
            "vectors_model": result.vectors_model,
        },
        "history": result.history.get("LightGCN", []),
        "params": {
            "models": {report.name: report.params for report in result.models},
            "served": result.served_params,
            "split": result.split,
            "timings": result.timings,
            "fitted_on": result.fitted_on,
            "seed": result.seed,
        },
        "held_out": RecommenderHeldOut(
            user_ids=interactions.users.ids,
            item_ids=interactions.items.ids,
            train=split.train,
            valid=split.valid,
            valid_first_seen=first_positive_times(interactions, split.valid),
            valid_scorer=result.valid_scorer,
            selection_users=result.selection_users,
        ),
    }
