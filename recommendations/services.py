"""Writes on the serving side: cache invalidation and online fold-in after feedback."""

from __future__ import annotations

import logging

from django.core.cache import cache

from feedback.models import Interaction
from mltasks.models import ModelVersion, UserVector
from recommendations.selectors import (
    folded_in_user_vector,
    pad_vector,
    recommendation_cache_keys,
    user_history,
)
from recommendations.serving import active_state

logger = logging.getLogger(__name__)

# Weight of the recent positives against the trained vector in online fold-in.
FOLD_IN_WEIGHT = 0.5


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
        defaults={"embedding": pad_vector(vector)},
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
