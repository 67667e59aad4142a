"""Interleaved A/B tests of recommender versions: start one (with its offline replay), stop it,
promote a version.

A test compares the active recommender (the control, team "A") with another trained version
(the challenger, team "B") on a share of listeners: recommendations.serving drafts their lists
from both rankings while the test runs. Its live result is read by
mltasks.interleaving_selectors.interleaving_results; the offline reading is computed here once,
when the test starts, and kept on the test.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mltasks.interleaving_selectors import (
    interleaving_challenger_refusal,
    interleaving_results,
)
from mltasks.interleaving_signals import interleaving_test_changed
from mltasks.ml.data.interactions import IdIndex, Interactions
from mltasks.ml.data.splits import cf_random_split, sample_eval_users
from mltasks.ml.eval.interleaving import TEAM_A, TEAM_B, list_seed, offline_replay
from mltasks.ml.scorers.base import HistoryContext
from mltasks.ml.scorers.evaluation import rank_contexts
from mltasks.models import InterleavingTest, ModelVersion
from mltasks.selectors import (
    interaction_log_for_training,
    model_version_activation_check,
    model_version_active,
)
from mltasks.services import model_version_activate
from mltasks.training.activation import (
    NotComparable,
    ServedRecommender,
    served_recommender,
    version_data_end,
)
from mltasks.training.recommender import first_positive_times

logger = logging.getLogger(__name__)

# The offline replay: lists of this many tracks (Discover shows 12, the API's default is 20),
# for at most this many users with held-out items (a seeded sample above it keeps a start
# within a few seconds at demo scale).
OFFLINE_LIST_LENGTH = 20
OFFLINE_MAX_USERS = 1000
OFFLINE_NOTE = (
    "each user's test-split items (the CF-random split of the current interactions, the "
    "training runs' seed) are the positive events of one list drafted from both versions' "
    "rankings of the rest of their history; both versions serve models refitted on the "
    "interactions up to their data end, so they saw the pairs dated before it, which favours "
    "the version whose data covers more of them"
)


class InterleavingTestError(ValueError):
    """A test cannot be started, stopped or promoted; the message says why."""


def _changed(test: InterleavingTest) -> None:
    """Tell serving in this process (the change is done: a receiver's failure only logs)."""
    for receiver, outcome in interleaving_test_changed.send_robust(
        sender=InterleavingTest, test_id=test.pk
    ):
        if isinstance(outcome, Exception):
            logger.warning("%r failed after a change to %s: %r", receiver, test, outcome)


# ----------------------------------------------------------------------------- offline replay


def _served_model(
    *, version: ModelVersion, users: IdIndex, items: IdIndex, item_popularity: np.ndarray
) -> ServedRecommender:
    """The version's served recommender in the replay's index, as serving loads it
    (InterleavingTestError when its artifacts cannot be used)."""
    try:
        return served_recommender(
            version, item_ids=items.ids, user_ids=users.ids, item_popularity=item_popularity
        )
    except NotComparable as error:
        raise InterleavingTestError(
            f"Version #{version.pk} cannot be replayed: {error}."
        ) from error


def _rankings(
    model: ServedRecommender, *, history: sp.csr_matrix, users: np.ndarray, k: int
) -> list[np.ndarray]:
    """Each user's top k (replay item indices, best first) as serving ranks them: the
    version's scorer (in its own item index) over the history items it knows, those items
    excluded (a learned ranker keeps them out of its candidates, as `top_k(exclude=...)` does
    in serving)."""
    to_inner = model.scorer.to_inner
    to_outer = np.full(model.scorer.inner.n_items, -1, dtype=np.int64)
    to_outer[to_inner[model.scorer.known]] = model.scorer.known
    contexts, excluded = [], []
    for u in users.tolist():
        start, end = history.indptr[u], history.indptr[u + 1]
        inner = to_inner[history.indices[start:end]]
        known = inner >= 0
        contexts.append(
            HistoryContext(
                items=inner[known],
                weights=history.data[start:end][known],
                user=int(model.user_rows[u]) if model.user_rows[u] >= 0 else None,
            )
        )
        excluded.append(inner[known])
    top = rank_contexts(model.scorer.inner, contexts, excluded, k=k)
    rankings = []
    for row in top:
        outer = to_outer[row[row >= 0]]
        rankings.append(outer[outer >= 0])
    return rankings


def interleaving_offline_replay(
    *,
    control: ModelVersion,
    challenger: ModelVersion,
    k: int = OFFLINE_LIST_LENGTH,
    max_users: int = OFFLINE_MAX_USERS,
) -> dict:
    """The interleaved comparison replayed on held-out interactions (what a test keeps in
    `offline`): the summary's counts and figures from the control's side (A), and how it was
    made (users, list length, the held-out pairs each version's data already covered)."""
    log = interaction_log_for_training()
    if log.user_ids.size == 0:
        return {"unavailable": "no interactions to replay"}
    interactions = Interactions(
        user_ids=log.user_ids, item_ids=log.track_ids, weights=log.weights,
        timestamps=log.timestamps.astype(np.int64), users=IdIndex(np.unique(log.user_ids)),
        items=IdIndex(log.catalog_track_ids),
    )  # fmt: skip
    split = cf_random_split(interactions, seed=settings.TRAINING_SEED)
    sample = sample_eval_users(split.test, max_users=max_users, seed=settings.TRAINING_SEED)
    if len(sample.users) == 0:
        return {"unavailable": "no user has held-out interactions"}
    history = split.train_valid()
    models = {
        team: _served_model(
            version=version, users=interactions.users, items=interactions.items,
            item_popularity=np.diff(history.tocsc().indptr),
        )
        for team, version in ((TEAM_A, control), (TEAM_B, challenger))
    }  # fmt: skip
    rankings = {
        team: _rankings(model, history=history, users=sample.users, k=k)
        for team, model in models.items()
    }
    held_out = [
        split.test.indices[split.test.indptr[u] : split.test.indptr[u + 1]]
        for u in sample.users.tolist()
    ]
    user_ids = interactions.users.ids[sample.users].tolist()
    summary = offline_replay(
        rankings_a=rankings[TEAM_A],
        rankings_b=rankings[TEAM_B],
        held_out=held_out,
        k=k,
        seeds=[list_seed("offline", control.pk, challenger.pk, u) for u in user_ids],
    )
    in_sample = np.zeros(split.test.shape[0])
    in_sample[sample.users] = 1.0
    sample_pairs = (sp.diags(in_sample) @ split.test).tocsr()  # the sample's rows, same index
    sample_pairs.eliminate_zeros()
    pair_times = first_positive_times(interactions, sample_pairs)
    covered = {}
    for team, version in ((TEAM_A, control), (TEAM_B, challenger)):
        end = version_data_end(version)
        covered[team] = None if end is None else int((pair_times <= end).sum())
    return {
        **summary.as_dict(),
        "list_length": k,
        "users": len(sample.users),
        "users_with_held_out": sample.n_users,
        "held_out_pairs": int(len(pair_times)),
        "held_out_pairs_in_control_data": covered[TEAM_A],
        "held_out_pairs_in_challenger_data": covered[TEAM_B],
        "note": OFFLINE_NOTE,
    }


# ----------------------------------------------------------------------------- start / stop


def interleaving_test_start(
    *, challenger: ModelVersion, share: float, started_by=None
) -> InterleavingTest:
    """Start a test of `challenger` against the active recommender for `share` (0 < share <=
    1) of listeners, with the offline replay of the same comparison recorded on it.
    InterleavingTestError (a ValueError) says why a test cannot start."""
    if not 0 < share <= 1:
        raise InterleavingTestError(f"The share of listeners must be in (0, 1], got {share}.")
    control = model_version_active(kind=ModelVersion.Kind.RECOMMENDER)
    if control is None:
        raise InterleavingTestError("No recommender version is active: there is nothing to test.")
    if refusal := interleaving_challenger_refusal(challenger=challenger, control=control):
        raise InterleavingTestError(refusal)
    if InterleavingTest.objects.filter(status=InterleavingTest.Status.RUNNING).exists():
        raise InterleavingTestError("A test is already running; stop it before starting another.")
    offline = interleaving_offline_replay(control=control, challenger=challenger)
    try:
        with transaction.atomic():
            test = InterleavingTest.objects.create(
                control=control, challenger=challenger, share=share, started_by=started_by,
                offline=offline,
            )  # fmt: skip
    except IntegrityError as error:  # another start won the race for the one running test
        raise InterleavingTestError(
            "A test is already running; stop it before starting another."
        ) from error
    logger.info("interleaving %s started by %s", test, started_by)
    _changed(test)
    return test


def _end(*, test: InterleavingTest, status: str) -> InterleavingTest:
    """Mark a running test ended (inside the caller's transaction)."""
    locked = InterleavingTest.objects.select_for_update().get(pk=test.pk)
    if locked.status != InterleavingTest.Status.RUNNING:
        raise InterleavingTestError(f"Test #{test.pk} is not running (it is {locked.status}).")
    locked.status = status
    locked.stopped_at = timezone.now()
    locked.save(update_fields=["status", "stopped_at"])
    test.status, test.stopped_at = locked.status, locked.stopped_at
    return test


def interleaving_test_stop(*, test: InterleavingTest) -> InterleavingTest:
    """End a running test: every listener is served by the active version again."""
    with transaction.atomic():
        _end(test=test, status=InterleavingTest.Status.STOPPED)
    _changed(test)
    logger.info("interleaving %s stopped", test)
    return test


def interleaving_test_promote(
    *, test: InterleavingTest, version: ModelVersion | None = None
) -> InterleavingTest:
    """End a running test by serving `version` (its control or its challenger; by default the
    live result's significant winner) to everyone: promoting the challenger activates it (the
    control is retired, as by an activation from the model dashboard); promoting the control
    keeps it active (or activates it again if another version was activated meanwhile)."""
    if version is None:
        winner = interleaving_results(test=test).winner
        if winner is None:
            raise InterleavingTestError(
                f"Test #{test.pk} has no significant winner yet; name the version to promote."
            )
        version = test.control if winner == TEAM_A else test.challenger
    if version.pk not in (test.control_id, test.challenger_id):
        raise InterleavingTestError(f"Version #{version.pk} is not part of test #{test.pk}.")
    version.refresh_from_db()
    if version.status != ModelVersion.Status.ACTIVE:
        check = model_version_activation_check(version=version)
        if not check.allowed:
            raise InterleavingTestError(check.refusal)
    with transaction.atomic():
        _end(test=test, status=InterleavingTest.Status.PROMOTED)
        if version.status != ModelVersion.Status.ACTIVE:
            model_version_activate(version=version)
    _changed(test)
    logger.info("interleaving %s: version %s promoted", test, version.pk)
    return test
