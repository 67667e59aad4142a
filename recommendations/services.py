"""Writes on the serving side: the cache of served lists (filled on a miss, dropped after
feedback), online fold-in after a like, and the served-scores sample for drift checks.

The lists themselves are computed by recommendations.selectors; the functions here are what
the APIs and pages call, so that every cache fill happens in one place.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from functools import partial

from django.core.cache import cache
from django.utils import timezone

from feedback.models import DoNotRecommend, Interaction
from feedback.selectors import BlockedTracks, do_not_recommend_blocked_for
from mltasks.ml.eval.interleaving import in_share
from mltasks.models import ModelVersion, UserVector, padded_vector
from mltasks.served_scores import served_scores_record
from recommendations.retrieval import RETRIEVAL_BACKENDS, RetrievalBackend, retrieval_backend
from recommendations.selectors import (
    DEFAULT_SLATE,
    FOLD_IN_WEIGHT,
    NOT_BLOCKED,
    RecommendationList,
    RecommendationPage,
    Slate,
    folded_in_user_vector,
    interleaved_ranking,
    ranking_page_items,
    ranking_page_tracks,
    recommendation_ranking,
    similar_tracks_payload,
    slate_order,
    user_history,
)
from recommendations.serving import (
    ServedInterleavingTest,
    VectorState,
    active_state,
    interleaving_challenger_state,
    running_interleaving_test,
)
from tunedin import metrics

logger = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- do not recommend


def _blocked_cache_key(user_id: int) -> str:
    return f"dnr:u{user_id}"


def blocked_tracks_for(*, user) -> BlockedTracks:
    """What the user's do-not-recommend marks keep out of their lists now (nothing for an
    anonymous visitor). Cached per user until a mark changes (feedback drops the key) or the
    first mark in force lapses (`changes_at`), so a cached list costs no query for it."""
    if user is None or not user.is_authenticated:
        return NOT_BLOCKED
    key = _blocked_cache_key(user.pk)
    blocked = cache.get(key)
    if blocked is None or (blocked.changes_at and blocked.changes_at <= timezone.now()):
        blocked = do_not_recommend_blocked_for(user_id=user.pk)
        cache.set(key, blocked)
    return blocked


def blocked_digest(blocked: BlockedTracks) -> str:
    """A short key part naming a set of blocked tracks ("" for none), for cached lists."""
    if not blocked.track_ids:
        return ""
    return hashlib.sha1(repr(sorted(blocked.track_ids)).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- user rankings


def _rec_cache_key(
    *, version_id: int | None, user_id: int, backend: str, test_id: int | None = None
) -> str:
    test = f":t{test_id}" if test_id is not None else ""
    return f"rec:v{version_id or 0}{test}:u{user_id}:{backend}"


def recommendation_cache_keys(
    *, version_id: int | None, user_id: int, test_id: int | None = None
) -> list[str]:
    return [
        _rec_cache_key(version_id=version_id, user_id=user_id, backend=backend, test_id=test_id)
        for backend in (*RETRIEVAL_BACKENDS, "popular")
    ]


def interleaving_for_user(
    *, user, state: VectorState | None
) -> tuple[ServedInterleavingTest, VectorState] | None:
    """(the running interleaved test, its challenger's serving state) when `user` is in the
    test's share of listeners; None otherwise, and when the test's control is not the version
    this process serves (another was activated meanwhile) or its challenger cannot be loaded:
    such a listener is served as if no test ran."""
    if state is None or user is None or not user.is_authenticated:
        return None
    test = running_interleaving_test()
    if test is None or test.control_id != state.version_id:
        return None
    if not in_share(test_id=test.test_id, user_id=user.pk, share=test.share):
        return None
    challenger = interleaving_challenger_state(test)
    return None if challenger is None else (test, challenger)


def _ranking_entry(
    *, user, backend: RetrievalBackend, store_miss: bool = True
) -> tuple[str, dict, bool]:
    """(cache key, {"version", "ranked", "artists", "follows_plays", "valid_until",
    "pages", "pipeline", "test", "teams"}, hit) for the user's ranking.

    One cache entry per (model version, user, backend) holds the ranked ids and the pages
    already rendered from them, so a cached request is one Redis read; feedback and
    do-not-recommend changes delete it, and it is not used past `valid_until` (the moment the
    first of the user's do-not-recommend marks lapses; None: no such moment).
    A listener in a running interleaved test's share gets the test's drafted ranking instead
    (`selectors.interleaved_ranking`), cached under a key that names the test, with the team
    of each track.
    With store_miss=False a new ranking is not written: the caller writes it with its page.
    """
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    interleaving = interleaving_for_user(user=user, state=state)
    key = _rec_cache_key(
        version_id=state.version_id if state else None, user_id=user.pk, backend=backend.name,
        test_id=interleaving[0].test_id if interleaving else None,
    )  # fmt: skip
    entry = cache.get(key)
    if entry is not None and entry.get("valid_until") and time.time() >= entry["valid_until"]:
        entry = None  # a do-not-recommend mark in it has lapsed
    hit = entry is not None
    metrics.recommendation_cache_lookup(list_name="user", hit=hit)
    if not hit:
        blocked = blocked_tracks_for(user=user)
        if interleaving is None:
            ranking = own = recommendation_ranking(user=user, backend=backend, blocked=blocked)
        else:
            test, challenger = interleaving
            ranking, own = interleaved_ranking(
                user=user, backend=backend, test_id=test.test_id, control=state,
                challenger=challenger, blocked=blocked,
            )  # fmt: skip
        entry = {
            "version": ranking.version_id,
            "ranked": ranking.ranked,
            "artists": ranking.artists,
            "follows_plays": ranking.follows_plays,
            "valid_until": blocked.changes_at.timestamp() if blocked.changes_at else None,
            "pages": {},
            "pipeline": ranking.pipeline,
            "test": ranking.interleaving_test,
            "teams": ranking.teams,
        }
        if store_miss:
            cache.set(key, entry)
        if own.version_id is not None:
            served_scores_record(
                model_version_id=own.version_id,
                scores=[s for _, s, _ in own.ranked[:SERVED_SCORES_SAMPLED]],
            )
    return key, entry, hit


def _page_teams(entry: dict, track_ids) -> dict[int, str]:
    teams = entry.get("teams") or {}
    return {t: teams[t] for t in track_ids if t in teams}


def _slated(entry: dict, slate: Slate) -> list:
    return slate_order(ranked=entry["ranked"], artists=entry.get("artists", {}), slate=slate)


def recommendations_for_user(
    *,
    user,
    n: int,
    offset: int = 0,
    backend: RetrievalBackend | None = None,
    slate: Slate = DEFAULT_SLATE,
) -> RecommendationList:
    """The user's top-n tracks (after `offset`), excluding every track they interacted with
    or asked not to be recommended, cut by `slate` (at most 2 tracks of an artist ahead of
    the others by default); `backend` defaults to settings.RETRIEVAL_BACKEND."""
    _, entry, hit = _ranking_entry(user=user, backend=backend or retrieval_backend())
    ranked = _slated(entry, slate)
    items = ranking_page_tracks(user=user, ranked=ranked, n=n, offset=offset)
    return RecommendationList(
        user_id=user.pk, model_version=entry["version"], items=items, cached=hit,
        pipeline=entry.get("pipeline", ""), interleaving_test=entry.get("test"),
        teams=_page_teams(entry, (item.track.pk for item in items)),
    )  # fmt: skip


def recommendation_page_for_user(
    *,
    user,
    n: int,
    offset: int = 0,
    backend: RetrievalBackend | None = None,
    slate: Slate = DEFAULT_SLATE,
) -> RecommendationPage:
    """The same list as `recommendations_for_user`, as plain data, served from the cache."""
    backend = backend or retrieval_backend()
    key, entry, hit = _ranking_entry(user=user, backend=backend, store_miss=False)
    page_key = f"{n}:{offset}:{slate.key}"
    if page_key in entry["pages"]:
        items = entry["pages"][page_key]
        return RecommendationPage(
            user_id=user.pk, model_version=entry["version"], items=items, cached=True,
            pipeline=entry.get("pipeline", ""), interleaving_test=entry.get("test"),
            teams=_page_teams(entry, (item["track_id"] for item in items)),
        )  # fmt: skip
    ranked = _slated(entry, slate)
    items = ranking_page_items(user=user, ranked=ranked, n=n, offset=offset)
    if len(entry["pages"]) < MAX_CACHED_PAGES:
        entry["pages"][page_key] = items
    if not hit or page_key in entry["pages"]:
        cache.set(key, entry)  # one write: the new ranking with its first page
    return RecommendationPage(
        user_id=user.pk, model_version=entry["version"], items=items, cached=hit,
        pipeline=entry.get("pipeline", ""), interleaving_test=entry.get("test"),
        teams=_page_teams(entry, (item["track_id"] for item in items)),
    )  # fmt: skip


def similar_tracks_page(*, track_id: int, n: int, use_ann: bool = False, user=None) -> dict | None:
    """`selectors.similar_tracks_payload`, None for an unknown track, without the tracks
    `user` asked not to be recommended. With an active model the page is cached per model
    version (and set of blocked tracks), so a repeated request is one Redis read."""
    blocked = blocked_tracks_for(user=user)
    build = partial(
        similar_tracks_payload, track_id=track_id, n=n, use_ann=use_ann,
        exclude=blocked.track_ids,
    )  # fmt: skip
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None:
        return build()
    key = f"similar:v{state.version_id}:t{track_id}:n{n}:{'ann' if use_ann else 'exact'}"
    if digest := blocked_digest(blocked):
        key += f":x{digest}"
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
    keys = [
        key
        for version_id in version_ids
        for key in recommendation_cache_keys(version_id=version_id, user_id=user.pk)
    ]
    if state is not None and (test := running_interleaving_test()) is not None:
        keys += recommendation_cache_keys(
            version_id=state.version_id, user_id=user.pk, test_id=test.test_id
        )
    return keys


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
    whole ranking: their cached lists are dropped. So does a dislike, which pushes down the
    disliked track's neighbours. Any other event makes its tracks seen: the cached lists that
    contain them, or that follow the user's plays, are dropped (for a user with a vector most
    plays are of tracks outside their recommendations, so their cache survives the
    listening)."""
    if Interaction.Kind.LIKE in kinds:
        user_vector_fold_in(user=user)
        recommendations_invalidate(user=user)
    elif Interaction.Kind.DISLIKE in kinds:
        recommendations_invalidate(user=user)
    else:
        recommendations_drop_tracks(user=user, track_ids=track_ids)


def do_not_recommend_changed(*, user) -> None:
    """After a change to the user's do-not-recommend marks commits: their blocked set and
    their cached rankings are dropped (similar tracks and continuations are cached under the
    blocked set they were built with, so a new set misses those by itself)."""
    cache.delete(_blocked_cache_key(user.pk))
    recommendations_invalidate(user=user)


def feedback_recorded_receiver(sender, *, user, kinds, track_ids, **kwargs) -> None:
    """`feedback.signals.feedback_recorded` -> `user_feedback_received`, or
    `do_not_recommend_changed` for a change of marks (see apps.py)."""
    if sender is DoNotRecommend:
        do_not_recommend_changed(user=user)
    else:
        user_feedback_received(user=user, kinds=kinds, track_ids=track_ids)
