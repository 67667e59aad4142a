"""The user recommender's servable scorers and its learned ranker, one fit (stage) at a time.

Every model `recommender.train_user_recommender` trains becomes a scorer of mltasks.ml.scorers
(MostPop, the item-item models pruned to their top neighbours, the factor models), so the one
that wins on validation is served as it was evaluated. `StageScorers` holds them for one fit:
on train (validation and the ranker's labels), on train+valid (the test) and on everything
(serving). The ranker (`TunedIn-ranker`) orders the union of the top candidates of EASE, the
blend, LightGCN and ItemKNN with features from all of them and MostPop (scorers.ranker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.splits import held_out_items
from mltasks.ml.eval.ranking import CF_METRICS
from mltasks.ml.scorers.base import HistoryContext, Scorer
from mltasks.ml.scorers.evaluation import evaluate_users, rank_contexts
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.ml.scorers.item_item import ItemItemScorer
from mltasks.ml.scorers.ranker import RANKER_NAME, ItemFeatures, RankerPipeline

ITEM_NEIGHBOURS = 200  # neighbours kept per item by a served item-item model
RANKER_CANDIDATES = 100  # per candidate scorer
FACTOR_MODELS = ("LightGCN", "EASE-SVD", "TunedIn-blend")
ITEM_ITEM_MODELS = ("EASE", "EASE+tags", "ItemKNN")


@dataclass
class StageScorers:
    """The scorers of one fit, by model name, and what the ranker reads of its items."""

    scorers: dict[str, Scorer]
    item_features: ItemFeatures

    def ranker_scorers(self, ease_name: str) -> dict[str, Scorer]:
        """The ranker's scorers, in feature order: the EASE variant that won validation, the
        TunedIn blend, LightGCN, ItemKNN and MostPop."""
        return {
            name: self.scorers[name]
            for name in (ease_name, "TunedIn-blend", "LightGCN", "ItemKNN", "MostPop")
            if name in self.scorers
        }

    def ranker(self, ease_name: str, booster=None) -> RankerPipeline:
        scorers = self.ranker_scorers(ease_name)
        return RankerPipeline(
            scorers=scorers,
            item_features=self.item_features,
            context_kind="history",
            booster=booster,
            n_candidates=RANKER_CANDIDATES,
            candidate_scorers=[name for name in scorers if name != "MostPop"],
        )


def factor_scorer(vectors: tuple[np.ndarray, np.ndarray], popularity: np.ndarray) -> FactorScorer:
    user_vectors, item_vectors = vectors
    return FactorScorer(item_vectors=item_vectors, user_vectors=user_vectors, popularity=popularity)


def item_item_scorer(model, name: str) -> ItemItemScorer:
    """A fitted cf.baselines EASE (with or without tags) or ItemKNN, pruned for serving."""
    if name == "ItemKNN":
        return ItemItemScorer.from_item_knn(model, k=ITEM_NEIGHBOURS, source=name)
    return ItemItemScorer.from_ease(model, k=ITEM_NEIGHBOURS, source=name)


def item_popularity(fit_csr: sp.csr_matrix) -> np.ndarray:
    """Positive interactions per item in a fit's matrix."""
    return np.diff(fit_csr.tocsc().indptr).astype(np.float32)


def stage_item_features(
    *, fit_csr: sp.csr_matrix, content: np.ndarray | None, item_artist: np.ndarray | None
) -> ItemFeatures:
    return ItemFeatures.build(
        popularity=item_popularity(fit_csr), content=content, artist=item_artist
    )


def history_contexts(train: sp.csr_matrix, users: np.ndarray) -> list[HistoryContext]:
    """Each user's training row as a context (items, weights, own row in the fit's vectors)."""
    contexts = []
    for user in np.asarray(users, dtype=np.int64).tolist():
        start, end = train.indptr[user], train.indptr[user + 1]
        contexts.append(
            HistoryContext(items=train.indices[start:end], weights=train.data[start:end], user=user)
        )
    return contexts


def restrict_users(matrix: sp.csr_matrix, users: np.ndarray) -> sp.csr_matrix:
    """`matrix` with every row outside `users` emptied."""
    keep = np.zeros(matrix.shape[0], dtype=matrix.dtype)
    keep[np.asarray(users, dtype=np.int64)] = 1
    restricted = (sp.diags(keep) @ matrix).tocsr()
    restricted.eliminate_zeros()
    return restricted


def targets_of(target: sp.csr_matrix, users: np.ndarray) -> list[np.ndarray]:
    return [target.indices[target.indptr[u] : target.indptr[u + 1]] for u in users.tolist()]


def evaluate_on(
    scorer: Scorer, *, train: sp.csr_matrix, target: sp.csr_matrix, metric_names=CF_METRICS
) -> dict[str, float]:
    """CF metrics of any scorer whose user rows are the split's user index."""
    return evaluate_users(
        scorer,
        train=train,
        target=target,
        user_rows=np.arange(train.shape[0]),
        metric_names=metric_names,
    )


def valid_users(valid: sp.csr_matrix) -> np.ndarray:
    return held_out_items(valid)[0]


__all__ = [
    "FACTOR_MODELS",
    "ITEM_ITEM_MODELS",
    "RANKER_NAME",
    "StageScorers",
    "evaluate_on",
    "factor_scorer",
    "history_contexts",
    "item_item_scorer",
    "item_popularity",
    "rank_scorer_users",
    "restrict_users",
    "stage_item_features",
    "targets_of",
    "valid_users",
]


def rank_scorer_users(
    scorer: Scorer, *, train: sp.csr_matrix, users: np.ndarray, k: int
) -> np.ndarray:
    """(len(users), k) top items of each user by any scorer, their `train` items excluded."""
    contexts = history_contexts(train, users)
    return rank_contexts(scorer, contexts, [c.items for c in contexts], k=k)
