"""Continuation baselines: MostPop, last-item Markov transitions and session-kNN.

All three follow the scorer interface of `seq_metrics.ContinuationScorer`: `score_batch(inputs,
hours, dows, *, train_rows=None)` returns one score per catalog item and input, and
`score(input_item_indices, hour, dow)` does one request. Context is ignored by these models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.sequences import NEUTRAL_DOW, NEUTRAL_HOUR
from mltasks.ml.eval.seq_metrics import evaluate_rankings, rank_cases
from mltasks.ml.eval.topk import keep_top_per_row
from mltasks.ml.scorers.sequence import transition_scores

logger = logging.getLogger(__name__)

SKNN_NEIGHBOURS_GRID = (20, 50, 100, 200, 400, 800)


class _Scorer:
    name = "scorer"
    n_items = 0

    def score_batch(self, inputs, hours, dows, *, train_rows=None) -> np.ndarray:
        raise NotImplementedError

    def score(
        self, input_item_indices: Sequence[int], hour: int = NEUTRAL_HOUR, dow: int = NEUTRAL_DOW
    ) -> np.ndarray:
        """Scores of every catalog item for one input sequence (oldest item first)."""
        inputs = [np.asarray(input_item_indices, dtype=np.int64)]
        return self.score_batch(inputs, np.array([hour]), np.array([dow]))[0]


def _popularity(train_items: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    if not train_items:
        return np.zeros(n_items, dtype=np.float64)
    return np.bincount(np.concatenate(train_items), minlength=n_items).astype(np.float64)


class MostPop(_Scorer):
    """Training-event counts, the same list for every input."""

    name = "MostPop"

    def __init__(self, *, train_items: Sequence[np.ndarray], n_items: int):
        self.n_items = n_items
        self.counts = _popularity(train_items, n_items)

    def score_batch(self, inputs, hours, dows, *, train_rows=None) -> np.ndarray:
        return np.broadcast_to(self.counts.astype(np.float32), (len(inputs), self.n_items)).copy()


class MarkovTransitions(_Scorer):
    """P(next | last item) from consecutive training pairs; popularity breaks ties and fills in."""

    name = "Markov"

    def __init__(self, *, train_items: Sequence[np.ndarray], n_items: int):
        self.n_items = n_items
        sources = [s[:-1] for s in train_items if len(s) > 1]
        targets = [s[1:] for s in train_items if len(s) > 1]
        if sources:
            sources_arr, targets_arr = np.concatenate(sources), np.concatenate(targets)
        else:
            sources_arr = targets_arr = np.array([], dtype=np.int64)
        counts = sp.csr_matrix(
            (np.ones(len(sources_arr), dtype=np.float64), (sources_arr, targets_arr)),
            shape=(n_items, n_items),
        )
        row_sums = np.asarray(counts.sum(axis=1)).ravel()
        self.transitions = sp.diags(1.0 / np.maximum(row_sums, 1.0)) @ counts
        self.transitions = self.transitions.tocsr()
        popularity = _popularity(train_items, n_items)
        self.fallback = 1e-6 * popularity / max(popularity.max(), 1.0)  # below any transition

    def score_batch(self, inputs, hours, dows, *, train_rows=None) -> np.ndarray:
        return transition_scores(
            transitions=self.transitions, fallback=self.fallback, inputs=inputs
        )


class SessionKNN(_Scorer):
    """Session-kNN with recency weighting (V-SKNN, Ludewig & Jannach 2018).

    sim(s, n) = sum over items i in both of w_s(i) / sqrt(|s| |n|), with w_s(i) = p / |s| for the
    item at position p (1 = oldest) of the input s, the linear decay of V-SKNN. The k most
    similar training sequences (never the input's own sequence) vote for their items with
    their similarity.
    """

    name = "SKNN"

    def __init__(self, *, train_items: Sequence[np.ndarray], n_items: int, n_neighbours: int = 100):
        self.n_items = n_items
        self.n_neighbours = n_neighbours
        rows = np.repeat(np.arange(len(train_items)), [len(s) for s in train_items])
        columns = np.concatenate(train_items) if train_items else np.array([], dtype=np.int64)
        matrix = sp.csr_matrix(
            (np.ones(len(columns), dtype=np.float32), (rows, columns)),
            shape=(len(train_items), n_items),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0  # an item repeated in a sequence counts once
        self.train_matrix = matrix
        self.train_matrix_t = matrix.T.tocsr()
        self.train_lengths = np.maximum(np.asarray(matrix.sum(axis=1)).ravel(), 1.0)
        self.popularity_tiebreak = 1e-6 * _popularity(train_items, n_items) / max(1.0, len(columns))

    def _query_matrix(self, inputs) -> sp.csr_matrix:
        rows, columns, weights = [], [], []
        for row, items in enumerate(inputs):
            if len(items) == 0:
                continue
            weight = np.arange(1, len(items) + 1, dtype=np.float32) / len(items)
            unique_items, last_position = np.unique(items[::-1], return_index=True)
            rows.append(np.full(len(unique_items), row))
            columns.append(unique_items)
            # Most recent occurrence of a repeated item gives its weight; 1/sqrt(|s|) normalises.
            item_weight = weight[::-1][last_position] / np.sqrt(len(unique_items))
            weights.append(item_weight)
        if not rows:
            return sp.csr_matrix((len(inputs), self.n_items), dtype=np.float32)
        return sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))),
            shape=(len(inputs), self.n_items),
        )

    def score_batch(self, inputs, hours, dows, *, train_rows=None) -> np.ndarray:
        """Sparse throughout: input x session similarities keep only the sessions that share an
        item with the input, then each row's `n_neighbours` best (ties: lower session first);
        only the (inputs x items) scores are dense."""
        query = self._query_matrix(inputs)
        similarity = sp.csr_matrix(query @ self.train_matrix_t, dtype=np.float32)
        similarity.sort_indices()
        norms = np.sqrt(self.train_lengths).astype(np.float32)
        similarity.data /= norms[similarity.indices]
        if train_rows is not None:
            rows = np.repeat(np.arange(similarity.shape[0]), np.diff(similarity.indptr))
            own_rows = np.asarray(train_rows)[rows]
            similarity.data[similarity.indices == own_rows] = 0.0  # never the input's own
        similarity.eliminate_zeros()
        weights = keep_top_per_row(similarity, self.n_neighbours)
        weights.sort_indices()
        scores = (weights @ self.train_matrix).toarray().astype(np.float32, copy=False)
        scores += self.popularity_tiebreak.astype(np.float32)[None, :]
        return scores


def tune_session_knn(
    *,
    train_items: Sequence[np.ndarray],
    n_items: int,
    valid_cases,
    grid: Sequence[int] = SKNN_NEIGHBOURS_GRID,
    metric: str = "Recall@20",
) -> tuple[SessionKNN, list[dict]]:
    """Pick the neighbourhood size on validation; returns the model and the trial list."""
    model = SessionKNN(train_items=train_items, n_items=n_items, n_neighbours=grid[0])
    trials = []
    best_value, best_k = -1.0, grid[0]
    for n_neighbours in grid:
        started = time.perf_counter()
        model.n_neighbours = n_neighbours
        top_items, _ = rank_cases(model, valid_cases, k=100)
        value = evaluate_rankings(
            top_items=top_items, cases=valid_cases, n_items=n_items, metric_names=(metric,)
        )[metric]
        trials.append(
            {"n_neighbours": n_neighbours, metric: value, "seconds": time.perf_counter() - started}
        )
        logger.info("SKNN k=%d valid %s=%.4f", n_neighbours, metric, value)
        if value > best_value:
            best_value, best_k = value, n_neighbours
    model.n_neighbours = best_k
    return model, trials
