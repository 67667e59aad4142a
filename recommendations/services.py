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


def recommendations_invalidate(*, user) -> None:
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    version_ids = {state.version_id if state else None, None}
    keys = [
        key
        for version_id in version_ids
        for key in recommendation_cache_keys(version_id=version_id, user_id=user.pk)
    ]
    cache.delete_many(keys)  # a Redis outage is ignored by the cache backend


def user_feedback_received(*, user, kinds: set[str]) -> None:
    """After new feedback commits: a like folds into the user's vector; any event changes what
    the user has seen, so their cached lists are dropped."""
    if Interaction.Kind.LIKE in kinds:
        user_vector_fold_in(user=user)
    recommendations_invalidate(user=user)
