"""Whether a newly trained version may replace the active one: the activation rule.

A new version activates only when
1. its served model beats MostPop on its run's validation split, and
2. it is at least as good (>=) as the active version of its kind on the same held-out data,
   by the kind's selection metric (nDCG@20 for the recommender, Recall@20 for continuation),
   full ranking, the run's training items excluded.

The held-out data is the NEW run's validation split. The active version's served model is
loaded from its artifacts and asked as serving asks it (mltasks.ml.scorers):
- recommender: a user it has a vector for is scored with that vector; any other user with the
  mean of the vectors of their training items it knows (serving's fold-in); a user with none of
  those by the popularity of the new run's training split (serving's popular tracks). Tracks it
  has no vector for (newer than it) are never recommended by it.
- continuation: input tracks it does not know are dropped, as the API drops them; an input with
  none left is answered by popularity; unknown tracks are never recommended.

Leaks, and how each kind avoids or states them:
- The recommender's served vectors are refitted on every interaction up to the version's data
  end, so they were fitted on every validation pair of a new run that is older than that. On
  the 150-user test world (mltasks/tests/conftest.py) that lifted an unchanged model's
  validation nDCG@20 from 0.256 to 0.413, so comparing with it as is would keep the first
  version forever. The recommender therefore compares, in this order:
  a. `identical split`: the new run's split is the active run's (same data window and split
     counts): the active run's own recorded validation metric (its served model fitted on the
     training split, scored on these very pairs) against the new one's; no leak;
  b. `unseen pairs`: the validation pairs the active version never saw (first positive event
     after its data end), for at least MIN_UNSEEN_USERS users: the active served vectors
     against the new run's served model as fitted on its training split, the other validation
     pairs excluded from both rankings like training items; no leak;
  c. `full split`: otherwise, the active served vectors on the whole validation split, with
     the share of pairs they were fitted on in `leak`; this favours the active version, so the
     rule errs on the side of keeping it.
- The continuation model serves the fit on its training split. A validation target of a new run
  was never one of its training targets (it is the old validation or test target of the same
  sequence, or a newer event; unless events were deleted or backdated since), but it chose its
  epoch on its own validation targets; the record counts the new cases that were among them in
  `leak` (from the targets its artifact keeps). This favours the active version.

When the active version cannot be scored (its artifacts are missing or unreadable) the record
says why and the new version activates on rule 1 alone: an active version whose artifacts
cannot be read cannot be served either. A version that is not activated stays READY; staff can
activate it by hand from the model dashboard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from mltasks.artifact_store import ArtifactStoreError, artifact_directory_of
from mltasks.ml.artifacts import (
    CONTINUATION_ARTIFACT_FILE,
    VECTORS_FILE,
    ServingVectors,
    load_continuation_artifact,
    load_continuation_valid_targets,
    load_served_scorer,
    load_serving_vectors,
)
from mltasks.ml.cf.pipeline import restrict_users
from mltasks.ml.data.sequences import SeqSplit
from mltasks.ml.scorers.base import Scorer
from mltasks.ml.scorers.evaluation import evaluate_cases, evaluate_users
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.ml.scorers.neural import NeuralSequenceScorer
from mltasks.ml.scorers.remap import RemappedScorer
from mltasks.models import ModelVersion

logger = logging.getLogger(__name__)

SELECTION_METRICS = {
    ModelVersion.Kind.RECOMMENDER: "nDCG@20",
    ModelVersion.Kind.CONTINUATION: "Recall@20",
}
# Fewer users than this with validation pairs the active version never saw make too noisy a
# comparison on those pairs alone (the recommender then falls back to the full split).
MIN_UNSEEN_USERS = 50


class NotComparable(Exception):
    """The active version cannot be scored on the new split; the message says why."""


@dataclass(frozen=True)
class Comparison:
    """The two versions on the same held-out data."""

    held_out: str  # which data: "identical split", "unseen pairs" or "full split"
    active_metric: float
    new_metric: float
    details: dict  # counts, how users were scored, the leak


def recorded_metric(version: ModelVersion, model: str, metric: str) -> float | None:
    """`model`'s metric in `version`'s run on the data the served pipeline was chosen on: the
    selection half of validation when the run had one, else all of validation."""
    parts = (version.metrics or {}).get("models", {}).get(model, {})
    for part in ("selection", "valid"):
        if metric in (parts.get(part) or {}):
            return float(parts[part][metric])
    return None


def _selection_part(version: ModelVersion) -> str:
    served = (version.metrics or {}).get("served")
    parts = (version.metrics or {}).get("models", {}).get(served, {})
    return "selection" if parts.get("selection") else "valid"


def _active_directory(active: ModelVersion):
    """The active version's artifact directory (fetched from the store when needed)."""
    try:
        return artifact_directory_of(version_id=active.pk, artifact_path=active.artifact_path)
    except ArtifactStoreError as error:
        raise NotComparable(f"the artifacts of #{active.pk} cannot be read ({error})") from error


@dataclass(frozen=True)
class ServedRecommender:
    """A recommender version as serving loads it, seen from a caller's item index: its served
    pipeline (for a version from before pipelines, a factor model over its vectors) remapped
    by track id (`scorer.to_inner`: -1 for a track it does not know), its vectors, and each of
    the caller's users' row in its user vectors (-1: none)."""

    scorer: RemappedScorer
    vectors: ServingVectors
    user_rows: np.ndarray


def served_recommender(
    version: ModelVersion,
    *,
    item_ids: np.ndarray,
    user_ids: np.ndarray,
    item_popularity: np.ndarray,
) -> ServedRecommender:
    """Load `version`'s served recommender for the caller's `item_ids` and `user_ids`;
    `item_popularity` (by the caller's items) is what the factor model of a version without a
    pipeline falls back on. NotComparable says why its files cannot be used."""
    directory = _active_directory(version)
    if not (directory / VECTORS_FILE).exists():
        raise NotComparable(f"version #{version.pk} has no vectors file")
    try:
        vectors = load_serving_vectors(directory)
    except (OSError, KeyError, ValueError) as error:
        raise NotComparable(f"the vectors of #{version.pk} cannot be read ({error})") from error
    try:
        served = load_served_scorer(directory)
    except (OSError, KeyError, ValueError) as error:
        raise NotComparable(f"the pipeline of #{version.pk} cannot be read ({error})") from error
    if served is not None and served.n_items != len(vectors.track_ids):
        raise NotComparable(f"the pipeline of #{version.pk} does not match its vectors")
    inner = served or FactorScorer(
        item_vectors=vectors.item_vectors,
        user_vectors=vectors.user_vectors,
        popularity=_popularity_in(vectors.track_ids, item_ids, item_popularity),
    )
    scorer = RemappedScorer.by_ids(inner=inner, inner_ids=vectors.track_ids, outer_ids=item_ids)
    row_of = {}
    if vectors.has_users:
        row_of = {int(u): row for row, u in enumerate(vectors.user_ids.tolist())}
    user_rows = np.array([row_of.get(int(u), -1) for u in np.asarray(user_ids).tolist()], np.int64)
    return ServedRecommender(scorer=scorer, vectors=vectors, user_rows=user_rows)


def version_data_end(version: ModelVersion) -> float | None:
    """The time (seconds since the epoch) of the last interaction `version` trained on."""
    trained_until = (version.params or {}).get("trained_until")
    return None if not trained_until else datetime.fromisoformat(trained_until).timestamp()


def _popularity_in(scorer_item_ids: np.ndarray, item_ids: np.ndarray, counts) -> np.ndarray:
    """`counts` (by the new run's items) in the order of the active version's items."""
    by_id = {str(item_id): float(n) for item_id, n in zip(item_ids.tolist(), counts, strict=True)}
    return np.array([by_id.get(str(i), 0.0) for i in scorer_item_ids.tolist()], np.float32)


def _rows(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """`matrix` with only the stored entries where `keep` (in data order) is true."""
    matrix = matrix.copy()
    matrix.data = np.where(keep, matrix.data, 0.0).astype(matrix.dtype)
    matrix.eliminate_zeros()
    return matrix


@dataclass
class RecommenderHeldOut:
    """The validation split of a recommender run, in the run's user and item indices."""

    user_ids: np.ndarray  # user index -> user primary key
    item_ids: np.ndarray  # item index -> track primary key
    train: sp.csr_matrix  # users x items: each user's history, excluded from the ranking
    valid: sp.csr_matrix  # users x items: the held-out items
    valid_first_seen: np.ndarray  # first positive event of each valid pair, in valid.data order
    valid_scorer: Scorer  # the served pipeline as fitted on train (a ranker: on the fitting half)
    selection_users: np.ndarray | None = None  # the users it was not fitted on (None: all)

    def compare(self, *, active: ModelVersion, metric: str, new: ModelVersion) -> Comparison:
        """Both versions on the selection half of the new run's validation users (the users
        the new pipeline was not fitted on)."""
        same_data = all(
            (active.params or {}).get(key) is not None
            and (active.params or {}).get(key) == (new.params or {}).get(key)
            for key in ("data_window", "split")
        )
        active_recorded = recorded_metric(active, (active.metrics or {}).get("served"), metric)
        new_recorded = recorded_metric(new, new.metrics["served"], metric)
        valid = self.valid
        if self.selection_users is not None:
            valid = restrict_users(self.valid, self.selection_users)
        if (
            same_data
            and active_recorded is not None
            and _selection_part(active) == _selection_part(new)
        ):
            return Comparison(
                held_out="identical split",
                active_metric=active_recorded,
                new_metric=new_recorded,
                details={
                    "evaluated": int(np.count_nonzero(np.diff(valid.indptr))),
                    "note": "both runs made the same split of the same interactions: each "
                    "version's served model fitted on the training split, scored on the same "
                    "validation pairs (no leak)",
                },
            )
        active_scorer, user_rows, scoring = self._active_scorer(active)
        data_end = version_data_end(active)
        unseen = (
            self.valid_first_seen > data_end
            if data_end is not None
            else np.zeros(self.valid.nnz, dtype=bool)
        )
        if self.selection_users is not None:
            selected = np.zeros(self.valid.shape[0], dtype=bool)
            selected[self.selection_users] = True
            in_selection = np.repeat(selected, np.diff(self.valid.indptr))
        else:
            in_selection = np.ones(self.valid.nnz, dtype=bool)
        unseen_valid = _rows(self.valid, unseen & in_selection)
        unseen_users = int(np.count_nonzero(np.diff(unseen_valid.indptr)))
        leak = {
            "held_out_pairs": int(self.valid.nnz),
            "pairs_after_active_data_end": int(unseen.sum()),
            "users_with_such_pairs": unseen_users,
        }
        if unseen_users >= MIN_UNSEEN_USERS:
            new_scorer = self.valid_scorer
            # The other validation pairs are neither targets nor candidates: the active version
            # was fitted on them and would spend its top ranks on them.
            exclude = (self.train + _rows(self.valid, ~unseen)).tocsr()
            own_rows = np.arange(len(self.user_ids))
            return Comparison(
                held_out="unseen pairs",
                active_metric=self._evaluate(
                    active_scorer, unseen_valid, user_rows, metric, exclude
                ),
                new_metric=self._evaluate(new_scorer, unseen_valid, own_rows, metric, exclude),
                details={
                    "evaluated": unseen_users,
                    **scoring(unseen_valid),
                    "leak": {
                        **leak,
                        "note": "only validation pairs first seen after the active version's "
                        "data end, of the users the new pipeline was not fitted on: neither "
                        "fit saw them (no leak)",
                    },
                },
            )
        return Comparison(
            held_out="full split",
            active_metric=self._evaluate(active_scorer, valid, user_rows, metric),
            new_metric=new_recorded,
            details={
                "evaluated": int(np.count_nonzero(np.diff(valid.indptr))),
                **scoring(valid),
                "leak": {
                    **leak,
                    "pairs_in_active_fit": int(np.count_nonzero(~unseen & in_selection)),
                    "note": f"fewer than {MIN_UNSEEN_USERS} users have validation pairs the "
                    "active version never saw, so it is scored on the whole split; its served "
                    "vectors were fitted on every pair dated before its data end, which "
                    "favours it",
                },
            },
        )

    def _evaluate(self, scorer, target, user_rows, metric: str, exclude=None) -> float:
        scores = evaluate_users(
            scorer, train=self.train, target=target, user_rows=user_rows, exclude=exclude,
            metric_names=(metric,),
        )  # fmt: skip
        return float(scores[metric])

    def _active_scorer(self, active: ModelVersion):
        """The active version's served pipeline (its vectors, for a version from before
        pipelines) as a scorer in this run's item index, each user's row in its user vectors
        (-1: none), and a function counting how users of a target were scored (own vector,
        fold-in, popularity; for a pipeline without user vectors these say which users it had
        a vector for in its vectors model)."""
        loaded = served_recommender(
            active,
            item_ids=self.item_ids,
            user_ids=self.user_ids,
            item_popularity=np.diff(self.train.tocsc().indptr),
        )
        vectors, scorer, user_rows = loaded.vectors, loaded.scorer, loaded.user_rows
        if not vectors.has_users:
            raise NotComparable(f"the vectors of #{active.pk} have no user vectors")
        own = user_rows >= 0
        own[own] = vectors.user_vectors[user_rows[own]].any(axis=1)
        known_history = self.train[:, scorer.known].getnnz(axis=1) > 0

        def scoring(target: sp.csr_matrix) -> dict:
            users = np.flatnonzero(np.diff(target.indptr))
            return {
                "active_scored_with_own_vector": int(own[users].sum()),
                "active_scored_by_fold_in": int((~own[users] & known_history[users]).sum()),
                "active_scored_by_popularity": int((~own[users] & ~known_history[users]).sum()),
                "held_out_items_unknown_to_active": int(
                    (scorer.to_inner[target.indices] < 0).sum()
                ),
            }

        return scorer, user_rows, scoring


@dataclass
class ContinuationHeldOut:
    """The validation cases of a continuation run (SEQ-last), in the run's item index."""

    split: SeqSplit
    selection_cases: np.ndarray | None = None  # validation cases the new pipeline was not fitted on

    def compare(self, *, active: ModelVersion, metric: str, new: ModelVersion) -> Comparison:
        """Both versions on the selection half of the new run's validation cases."""
        directory = _active_directory(active)
        if not (directory / CONTINUATION_ARTIFACT_FILE).exists():
            raise NotComparable(f"the active version #{active.pk} has no continuation artifact")
        try:
            artifact = load_continuation_artifact(directory)
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise NotComparable(f"the model of #{active.pk} cannot be loaded ({error})") from error
        counts = np.bincount(
            np.concatenate([np.zeros(0, np.int64), *self.split.train_items]),
            minlength=self.split.n_items,
        )
        try:
            served = load_served_scorer(directory)
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise NotComparable(f"the pipeline of #{active.pk} cannot be read ({error})") from error
        inner = served or NeuralSequenceScorer(
            model=artifact.served_model,
            popularity=_popularity_in(artifact.item_ids, self.split.item_ids, counts),
        )
        scorer = RemappedScorer.by_ids(
            inner=inner, inner_ids=artifact.item_ids, outer_ids=self.split.item_ids
        )
        cases = self.split.valid
        if self.selection_cases is not None:
            cases = cases.subset(self.selection_cases)
        known_input = np.array([(scorer.to_inner[items] >= 0).any() for items in cases.inputs])
        own_targets = load_continuation_valid_targets(directory)
        shared = None
        if own_targets is not None:
            targets = self.split.item_ids[cases.targets]
            shared = sum(
                own_targets.get(str(sequence_id)) == str(target)
                for sequence_id, target in zip(cases.sequence_ids.tolist(), targets, strict=True)
            )
        return Comparison(
            held_out="full split",
            active_metric=float(
                evaluate_cases(scorer, cases=cases, metric_names=(metric,))[metric]
            ),
            new_metric=recorded_metric(new, new.metrics["served"], metric),
            details={
                "evaluated": len(cases),
                "active_scored_by_model": int(known_input.sum()),
                "active_scored_by_popularity": int((~known_input).sum()),
                "held_out_items_unknown_to_active": int((scorer.to_inner[cases.targets] < 0).sum()),
                "leak": {
                    "held_out_cases": len(cases),
                    "active_own_validation_targets": shared,
                    "note": "the active model never trained on these targets (unless events "
                    "were deleted or backdated since), but it chose its epoch on those that "
                    "were its own validation targets: this favours it",
                },
            },
        )


HeldOut = RecommenderHeldOut | ContinuationHeldOut


def activation_decide(
    *, version: ModelVersion, held_out: HeldOut | None, active: ModelVersion | None
) -> dict:
    """The decision on a freshly trained `version` and its reasons, as stored in
    `ModelVersion.metrics["activation"]`: {"activated", "reason", "metric", "new_metric",
    "most_popular_metric", "active_version", "active_metric_on_new_split", "held_out",
    "comparison"}. `new_metric` is the new version's on the compared data (its validation
    metric unless only unseen pairs were compared)."""
    metric = SELECTION_METRICS[version.kind]
    served = version.metrics["served"]
    new_metric = recorded_metric(version, served, metric)
    most_popular = recorded_metric(version, "MostPop", metric)
    record = {
        "metric": metric,
        "new_metric": new_metric,
        "most_popular_metric": most_popular,
        "active_version": None if active is None else active.pk,
        "active_metric_on_new_split": None,
        "held_out": None,
        "comparison": None,
    }
    beats = f"beats MostPop ({metric} {new_metric:.4f} > {most_popular:.4f})"
    if new_metric <= most_popular:
        return {
            **record,
            "activated": False,
            "reason": f"{served} does not beat MostPop on validation "
            f"({metric} {new_metric:.4f} <= {most_popular:.4f})",
        }
    if active is None:
        return {
            **record,
            "activated": True,
            "reason": f"{beats}; no active version to compare with",
        }
    try:
        if held_out is None:
            raise NotComparable("this run kept no held-out data to compare on")
        comparison = held_out.compare(active=active, metric=metric, new=version)
    except NotComparable as why:
        logger.warning("%s: cannot compare with active version %s: %s", version, active.pk, why)
        return {
            **record,
            "activated": True,
            "reason": f"{beats}; not compared with the active version #{active.pk}: {why}",
        }
    record |= {
        "new_metric": comparison.new_metric,
        "active_metric_on_new_split": comparison.active_metric,
        "held_out": comparison.held_out,
        "comparison": comparison.details,
    }
    on = f"on this run's validation split ({comparison.held_out})"
    if comparison.new_metric >= comparison.active_metric:
        return {
            **record,
            "activated": True,
            "reason": f"at least as good as the active version #{active.pk} {on}: {metric} "
            f"{comparison.new_metric:.4f} >= {comparison.active_metric:.4f}; {beats}",
        }
    return {
        **record,
        "activated": False,
        "reason": f"worse than the active version #{active.pk} {on}: {metric} "
        f"{comparison.new_metric:.4f} < {comparison.active_metric:.4f}",
    }
