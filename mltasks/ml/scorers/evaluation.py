"""Held-out users and sequences ranked by any scorer, under the protocols of EVALUATION.md.

Contexts are built as serving builds them (a user's history, a sequence with its prediction
time) and scored `BATCH_SIZE` at a time with `Scorer.score_many`; the ranking is `top_k`'s: full
ranking over the scorer's catalog, the user's training items (or the sequence's history)
excluded. The metrics are the training runs' own (eval.metrics, eval.seq_metrics).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.sequences import EvalCases
from mltasks.ml.data.splits import held_out_items
from mltasks.ml.eval.metrics import evaluate_top_items
from mltasks.ml.eval.ranking import CF_METRICS
from mltasks.ml.eval.seq_metrics import (
    DEFAULT_METRICS,
    case_negatives,
    evaluate_rankings,
    ranks_among_negatives,
)
from mltasks.ml.eval.topk import PAD
from mltasks.ml.scorers.base import (
    BasePlusSparse,
    Context,
    HistoryContext,
    Scorer,
    SequenceContext,
)
from mltasks.ml.scorers.ranker import (
    BATCH_CONTEXTS,
    CandidateRows,
    RankerPipeline,
    blocked_and_cut,
    blocked_items,
    candidate_rows,
    rank_rows,
    scores_and_tops,
    sequence_contexts,
    unmasked_scores,
)

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
            blocks.append(scores_and_tops(scorer, batch, batch_excluded, k=k)[1])
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


def _ranks_among_negatives(
    scores: np.ndarray | BasePlusSparse, targets: np.ndarray, negatives: Sequence[np.ndarray]
) -> np.ndarray:
    """`ranks_among_negatives` of a dense block, or of the block a BasePlusSparse stands for
    (its (case, item) pairs read at once)."""
    if not isinstance(scores, BasePlusSparse):
        return ranks_among_negatives(scores, targets, negatives)
    n_cases = len(targets)
    target_scores = scores.at(np.arange(n_cases), targets)
    case = np.repeat(np.arange(n_cases), [len(drawn) for drawn in negatives])
    drawn = np.concatenate([np.zeros(0, np.int64), *negatives])
    above = scores.at(case, drawn) > target_scores[case]
    return np.bincount(case[above], minlength=n_cases).astype(np.int64)


@dataclass
class CaseRankings:
    """What one scoring pass over SEQ-last cases gave (`rank_cases_in_one_pass`)."""

    top_items: dict[str, np.ndarray]  # scorer name -> (n_cases, k), best first, PAD-padded
    sampled_ranks: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_cases,)
    ranker_rows: CandidateRows | None = None  # stage 1 and features of every case (keep_rows)
    ranker_top: np.ndarray | None = None  # (n_cases, k) by the pipeline's booster
    ranker_seconds: float = 0.0  # spent on the ranker's features and predictions


def rank_cases_in_one_pass(
    pipeline: RankerPipeline,
    cases: EvalCases,
    *,
    k: int,
    keep_rows: bool = False,
    rank_by_booster: bool = False,
    sampled_negatives: int = 0,
    seed: int = 0,
) -> CaseRankings:
    """Each of the pipeline's scorers scores every case once, and that block serves three uses.

    - The scorer's own top-k lists, as `rank_cases` ranks its model: the whole catalog, the
      case's history excluded, the case's own training sequence never a session-kNN
      neighbour (`SequenceContext.own_session`).
    - With `sampled_negatives`, the target's rank among that many items drawn with `seed` as
      `rank_cases` draws them (the same items for every scorer).
    - The ranker's stage 1 and features from the same blocks: kept for every case
      (`keep_rows`, to fit it) or ordered by its booster batch by batch (`rank_by_booster`).

    Scoring the catalog for 200,000 test cases is most of an evaluation's cost at demo scale
    10; this pass does it once where per-model evaluation and the ranker's stage 1 did it twice.
    """
    contexts = sequence_contexts(cases, own_sessions=True)
    rng = np.random.default_rng(seed)
    n_cases, n_top = len(cases), max(int(k), pipeline.n_candidates)
    # Written in place batch by batch: at demo scale 10 each scorer's lists of the 201,636 test
    # cases take 161 MB, and stacking per-batch pieces would hold them twice.
    tops = {name: np.full((n_cases, k), PAD, dtype=np.int64) for name in pipeline.scorers}
    ranks = {name: np.zeros(n_cases, dtype=np.int64) for name in pipeline.scorers}
    ranker_top = np.full((n_cases, k), PAD, dtype=np.int64) if rank_by_booster else None
    kept = CandidateRows([], [])
    ranker_seconds = 0.0
    for start in range(0, n_cases, BATCH_CONTEXTS):
        rows = np.arange(start, min(start + BATCH_CONTEXTS, n_cases))
        part = contexts[start : rows[-1] + 1]
        histories = [cases.histories[row] for row in rows.tolist()]
        negatives = (
            case_negatives(rng, cases, rows, n_items=pipeline.n_items, n=sampled_negatives)
            if sampled_negatives
            else None
        )
        blocked = blocked_items(part, histories)
        scores, batch_tops = {}, {}
        for name, scorer in pipeline.scorers.items():
            raw = unmasked_scores(scorer, part)
            if negatives is not None:  # the target's own score, even if in its history
                ranks[name][rows] = _ranks_among_negatives(raw, cases.targets[rows], negatives)
            scores[name], batch_tops[name] = blocked_and_cut(raw, blocked, k=n_top)
            tops[name][rows] = batch_tops[name][:, :k]
        if keep_rows or rank_by_booster:
            clock = time.perf_counter()
            block = pipeline.block_from_scores(part, scores, batch_tops)
            batch_rows = CandidateRows(
                block.candidates, [block.features[block.rows(i)] for i in range(len(rows))]
            )
            if keep_rows:
                kept.candidates += batch_rows.candidates
                kept.features += batch_rows.features
            if rank_by_booster:
                ranker_top[rows] = rank_rows(pipeline, batch_rows, k=k)
            ranker_seconds += time.perf_counter() - clock
        del scores, batch_tops

    return CaseRankings(
        top_items=tops,
        sampled_ranks=ranks if sampled_negatives else {},
        ranker_rows=kept if keep_rows else None,
        ranker_top=ranker_top,
        ranker_seconds=ranker_seconds,
    )
