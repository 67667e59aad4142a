"""Held-out users and sequences ranked by any scorer, under the protocols of EVALUATION.md.

Contexts are built as serving builds them (a user's history, a sequence with its prediction
time) and scored `BATCH_SIZE` at a time with `Scorer.score_many`; the ranking is `top_k`'s: full
ranking over the scorer's catalog, the user's training items (or the sequence's history)
excluded. The metrics are the training runs' own (eval.metrics, eval.seq_metrics).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.sequences import EvalCases
from mltasks.ml.data.splits import held_out_items
from mltasks.ml.eval.metrics import evaluate_top_items
from mltasks.ml.eval.ranking import CF_METRICS
from mltasks.ml.eval.seq_metrics import DEFAULT_METRICS, evaluate_rankings
from mltasks.ml.eval.topk import exclude_items, top_k_indices
from mltasks.ml.scorers.base import Context, HistoryContext, Scorer, SequenceContext
from mltasks.ml.scorers.ranker import RankerPipeline, candidate_rows, rank_rows

BATCH_SIZE = 256


def _largest_k(metric_names: Sequence[str]) -> int:
    return max(int(name.partition("@")[2]) for name in metric_names)


def rank_contexts(
    scorer: Scorer, contexts: Sequence[Context], excluded: Sequence[np.ndarray], *, k: int
) -> np.ndarray:
    """(len(contexts), k) top items per context, best first, its excluded items never; rows
    with fewer than k rankable items are padded with eval.topk.PAD."""
    blocks = [np.zeros((0, k), dtype=np.int64)]
    for start in range(0, len(contexts), BATCH_SIZE):
        batch, batch_excluded = (
            contexts[start : start + BATCH_SIZE],
            excluded[start : start + BATCH_SIZE],
        )
        if isinstance(scorer, RankerPipeline):
            # Excluded items are kept out of its candidates, so that they take no candidate's
            # place; only the candidates are ordered (no catalog-wide row per context).
            rows = candidate_rows(scorer, batch, batch_excluded)
            blocks.append(rank_rows(scorer, rows, k=k))
        else:
            scores = exclude_items(scorer.score_many(batch), batch_excluded, in_place=True)
            blocks.append(top_k_indices(scores, k))
    return np.vstack(blocks)


def evaluate_users(
    scorer: Scorer,
    *,
    train: sp.csr_matrix,
    target: sp.csr_matrix,
    user_rows: np.ndarray | None = None,
    exclude: sp.csr_matrix | None = None,
    metric_names: Sequence[str] = CF_METRICS,
) -> dict[str, float]:
    """CF metrics over the users with an item in `target` (users x items, the scorer's item
    index). A user's context is their `train` row (items and weights), which is also excluded
    (or `exclude`'s row when given); `user_rows[u]` is their row in the scorer's own user
    vectors (-1 or None: no row)."""
    users, targets = held_out_items(target)
    if len(users) == 0:
        raise ValueError("no user has a held-out item to evaluate on")
    contexts = []
    for user in users.tolist():
        start, end = train.indptr[user], train.indptr[user + 1]
        own_row = -1 if user_rows is None else int(user_rows[user])
        contexts.append(
            HistoryContext(
                items=train.indices[start:end],
                weights=train.data[start:end],
                user=own_row if own_row >= 0 else None,
            )
        )
    excluded = (
        [c.items for c in contexts]
        if exclude is None
        else [exclude.indices[exclude.indptr[u] : exclude.indptr[u + 1]] for u in users.tolist()]
    )
    top_items = rank_contexts(scorer, contexts, excluded, k=_largest_k(metric_names))
    return evaluate_top_items(
        top_items=top_items, test_items=targets, n_items=scorer.n_items, metric_names=metric_names
    )


def evaluate_cases(
    scorer: Scorer,
    *,
    cases: EvalCases,
    metric_names: Sequence[str] = DEFAULT_METRICS,
    item_artist: np.ndarray | None = None,
) -> dict[str, float]:
    """Continuation metrics over SEQ-last cases (the scorer's item index): each case's input and
    prediction time are the context, its history is excluded, its target is the one relevant
    item."""
    if len(cases) == 0:
        raise ValueError("no sequence to evaluate on")
    contexts = [
        SequenceContext(items=items, hour=int(hour), dow=int(dow))
        for items, hour, dow in zip(cases.inputs, cases.hours, cases.dows, strict=True)
    ]
    top_items = rank_contexts(scorer, contexts, cases.histories, k=_largest_k(metric_names))
    return evaluate_rankings(
        top_items=top_items,
        cases=cases,
        n_items=scorer.n_items,
        metric_names=metric_names,
        item_artist=item_artist,
    )
