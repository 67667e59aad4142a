"""Writes on the serving side: the cache of served lists (filled on a miss, dropped after
feedback), online fold-in after a like, and the served-scores sample for drift checks.

The lists themselves are computed by recommendations.selectors; the functions here are what
the APIs and pages call, so that every cache fill happens in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from django.core.cache import cache

from feedback.models import Interaction
from mltasks.models import ModelVersion, UserVector, padded_vector
from mltasks.served_scores import served_scores_record
from recommendations.retrieval import RETRIEVAL_BACKENDS, RetrievalBackend, retrieval_backend
from recommendations.selectors import (
    RecommendationList,
    RecommendationPage,
    folded_in_user_vector,
    ranking_page_items,
    ranking_page_tracks,
    recommendation_ranking,
    similar_tracks_payload,
    user_history,
)
from recommendations.serving import active_state
from tunedin import metrics

logger = logging.getLogger(__name__)

# Weight of the recent positives against the trained vector in online fold-in.
FOLD_IN_WEIGHT = 0.5
MAX_CACHED_PAGES = 8
SERVED_SCORES_SAMPLED = 50  # the top of each new ranking goes to the drift sample


# ----------------------------------------------------------------------------- cached lists


def cached_payload(*, key: str, list_name: str, build: Callable[[], dict | None]) -> dict | None:
    """The payload cached under `key`, else `build()`'s (stored unless None); the lookup is
    counted in the cache metrics under `list_name`."""
    payload = cache.get(key)
    metrics.recommendation_cache_lookup(list_name=list_name, hit=payload is not None)
    if payload is None:
        payload = build()
        if payload is not None:
            cache.set(key, payload)
    return payload


def _rec_cache_key(*, version_id: int | None, user_id: int, backend: str) -> str:
    return f"rec:v{version_id or 0}:u{user_id}:{backend}"


def recommendation_cache_keys(*, version_id: int | None, user_id: int) -> list[str]:
    return [
        _rec_cache_key(version_id=version_id, user_id=user_id, backend=backend)
        for backend in (*RETRIEVAL_BACKENDS, "popular")
    ]


def _ranking_entry(
    *, user, backend: RetrievalBackend, store_miss: bool = True
) -> tuple[str, dict, bool]:
    """(cache key, {"version", "ranked", "follows_plays", "pages"}, hit) for the user's ranking.

    One cache entry per (model version, user, backend) holds the ranked ids and the pages
    already rendered from them, so a cached request is one Redis read; feedback deletes it.
    With store_miss=False a new ranking is not written: the caller writes it with its page.
    """
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    key = _rec_cache_key(
        version_id=state.version_id if state else None, user_id=user.pk, backend=backend.name
    )
    entry = cache.get(key)
    hit = entry is not None
    metrics.recommendation_cache_lookup(list_name="user", hit=hit)
    if not hit:
        ranking = recommendation_ranking(user=user, backend=backend)
        entry = {
            "version": ranking.version_id,
            "ranked": ranking.ranked,
            "follows_plays": ranking.follows_plays,
            "pages": {},
        }
        if store_miss:
            cache.set(key, entry)
        if ranking.version_id is not None:
            served_scores_record(
                model_version_id=ranking.version_id,
                scores=[s for _, s, _ in ranking.ranked[:SERVED_SCORES_SAMPLED]],
            )
    return key, entry, hit


def recommendations_for_user(
    *, user, n: int, offset: int = 0, backend: RetrievalBackend | None = None
) -> RecommendationList:
    """The user's top-n tracks (after `offset`), excluding every track they interacted with;
    `backend` defaults to settings.RETRIEVAL_BACKEND."""
    _, entry, hit = _ranking_entry(user=user, backend=backend or retrieval_backend())
    items = ranking_page_tracks(user=user, ranked=entry["ranked"], n=n, offset=offset)
    return RecommendationList(
        user_id=user.pk, model_version=entry["version"], items=items, cached=hit
    )


def recommendation_page_for_user(
    *, user, n: int, offset: int = 0, backend: RetrievalBackend | None = None
) -> RecommendationPage:
    """The same list as `recommendations_for_user`, as plain data, served from the cache."""
    backend = backend or retrieval_backend()
    key, entry, hit = _ranking_entry(user=user, backend=backend, store_miss=False)
    page_key = f"{n}:{offset}"
    if page_key in entry["pages"]:
        return RecommendationPage(
            user_id=user.pk, model_version=entry["version"], items=entry["pages"][page_key],
            cached=True,
        )  # fmt: skip
    items = ranking_page_items(user=user, ranked=entry["ranked"], n=n, offset=offset)
    if len(entry["pages"]) < MAX_CACHED_PAGES:
        entry["pages"][page_key] = items
    if not hit or page_key in entry["pages"]:
        cache.set(key, entry)  # one write: the new ranking with its first page
    return RecommendationPage(
        user_id=user.pk, model_version=entry["version"], items=items, cached=hit
    )


def similar_tracks_page(*, track_id: int, n: int, use_ann: bool = False) -> dict | None:
    """`selectors.similar_tracks_payload`, None for an unknown track. With an active model the
    page is cached per model version, so a repeated request is one Redis read."""
    build = partial(similar_tracks_payload, track_id=track_id, n=n, use_ann=use_ann)
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None:
        return build()
    key = f"similar:v{state.version_id}:t{track_id}:n{n}:{'ann' if use_ann else 'exact'}"
    return cached_payload(key=key, list_name="similar", build=build)


# ----------------------------------------------------------------------------- after feedback


def user_vector_fold_in(*, user) -> bool:
    """Recompute the user's vector from the item vectors of their recent positives and store it
    in pgvector for the active recommender, so the next request reflects new likes without
    retraining. Returns False when there is no active model or no usable positives."""
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None:
        return False
    history = user_history(user_id=user.pk)
    vector = folded_in_user_vector(state=state, track_ids=history.recent_positives)
    if vector is None:
        return False
    trained_row = state.user_index.get(user.pk)
    if trained_row is not None and state.user_vectors is not None:
        vector = (1 - FOLD_IN_WEIGHT) * state.user_vectors[trained_row] + FOLD_IN_WEIGHT * vector
    UserVector.objects.update_or_create(
        model_version_id=state.version_id,
        user_id=user.pk,
        defaults={"embedding": padded_vector(vector).tolist()},
    )
    return True


def _user_cache_keys(*, user) -> list[str]:
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    version_ids = {state.version_id if state else None, None}
    return [
        key
        for version_id in version_ids
        for key in recommendation_cache_keys(version_id=version_id, user_id=user.pk)
    ]


def recommendations_invalidate(*, user) -> None:
    cache.delete_many(_user_cache_keys(user=user))  # a Redis outage is ignored by the backend


def recommendations_drop_tracks(*, user, track_ids: set[int]) -> None:
    """Drop the user's cached rankings that contain any of `track_ids` (tracks they have now
    seen, which a ranking must exclude) or that are built from their plays; the others stay
    valid and stay cached."""
    entries = cache.get_many(_user_cache_keys(user=user))
    stale = [
        key
        for key, entry in entries.items()
        if entry.get("follows_plays", True)
        or any(track_id in track_ids for track_id, _, _ in entry["ranked"])
    ]
    cache.delete_many(stale)


def user_feedback_received(*, user, kinds: set[str], track_ids: set[int]) -> None:
    """After new feedback commits. A like folds into the user's vector, which changes their
    whole ranking: their cached lists are dropped. Any other event makes its tracks seen: the
    cached lists that contain them, or that follow the user's plays, are dropped (for a user
    with a vector most plays are of tracks outside their recommendations, so their cache
    survives the listening)."""
    if Interaction.Kind.LIKE in kinds:
        user_vector_fold_in(user=user)
        recommendations_invalidate(user=user)
    else:
        recommendations_drop_tracks(user=user, track_ids=track_ids)


def feedback_recorded_receiver(sender, *, user, kinds, track_ids, **kwargs) -> None:
    """`feedback.signals.feedback_recorded` -> `user_feedback_received` (see apps.py)."""
    user_feedback_received(user=user, kinds=kinds, track_ids=track_ids)
