"""Sequence baselines as scorers: last-item transitions and session-kNN over an inverted index.

Both give exactly the scores of their seq.baselines models (`MarkovTransitions`; `SessionKNN`
with the context's `own_session` as the training row it leaves out, none at serving time), from
sparse structures only: a request reads one transition row, or the training sessions that share
an item with the input and the items of the nearest ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from mltasks.ml.scorers.base import (
    BasePlusSparse,
    Context,
    Scorer,
    csr_arrays,
    csr_from_arrays,
    sparse_rows_sum,
    subset,
)


def transition_scores(
    *, transitions: sp.csr_matrix, fallback: np.ndarray, inputs: Sequence[np.ndarray]
) -> np.ndarray:
    """(len(inputs), n_items) float32: `fallback` plus the transitions from each input's last
    item (an empty input, or a last item outside the catalog, gets the fallback alone). Only the
    stored transitions are added (a row's columns are unique): no dense block per input."""
    n_items = transitions.shape[0]
    scores = np.tile(fallback.astype(np.float32, copy=False), (len(inputs), 1))
    last = np.array([items[-1] if len(items) else -1 for items in inputs], dtype=np.int64)
    known = np.flatnonzero((last >= 0) & (last < n_items))
    if len(known):
        rows = transitions[last[known]]
        scores[np.repeat(known, np.diff(rows.indptr)), rows.indices] += rows.data.astype(
            np.float32, copy=False
        )
    return scores


class MarkovScorer(Scorer):
    """P(next | last item) from `transitions` (n_items x n_items CSR, rows sum to 1), plus a
    popularity `fallback` scaled below any transition (ties and unseen last items)."""

    family = "markov"

    def __init__(self, *, transitions: sp.csr_matrix, fallback: np.ndarray):
        self.transitions = sp.csr_matrix(transitions, dtype=np.float32, copy=True)
        self.transitions.sort_indices()
        self.fallback = np.asarray(fallback, dtype=np.float32)
        self.n_items = int(self.transitions.shape[0])

    @classmethod
    def from_model(cls, markov) -> MarkovScorer:
        """From a seq.baselines.MarkovTransitions."""
        return cls(transitions=markov.transitions, fallback=markov.fallback)

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        scores = self.fallback.copy()
        if len(context.items) and 0 <= context.items[-1] < self.n_items:
            last = int(context.items[-1])
            start, end = self.transitions.indptr[last], self.transitions.indptr[last + 1]
            scores[self.transitions.indices[start:end]] += self.transitions.data[start:end]
        return subset(scores, candidates)

    def score_many(self, contexts: Sequence[Context]) -> np.ndarray:
        """`score` of each context, as one block (the same float32 sums)."""
        return transition_scores(
            transitions=self.transitions,
            fallback=self.fallback,
            inputs=[context.items for context in contexts],
        )

    def score_parts(self, contexts: Sequence[Context]) -> BasePlusSparse:
        """The fallback row, plus each context's transition row (none for an empty input or
        a last item outside the catalog)."""
        last = np.array(
            [context.items[-1] if len(context.items) else -1 for context in contexts],
            dtype=np.int64,
        )
        known = (last >= 0) & (last < self.n_items)
        taken = self.transitions[last[known]]
        counts = np.zeros(len(contexts), dtype=np.int64)
        counts[known] = np.diff(taken.indptr)
        rows = sp.csr_matrix(
            (taken.data, taken.indices, np.concatenate([[0], np.cumsum(counts)])),
            shape=(len(contexts), self.n_items),
        )
        return self._base_plus_sparse(self.fallback, rows)

    def arrays(self) -> dict[str, np.ndarray]:
        return {**csr_arrays("transitions", self.transitions), "fallback": self.fallback}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> MarkovScorer:
        return cls(transitions=csr_from_arrays("transitions", arrays), fallback=arrays["fallback"])


class SessionKNNScorer(Scorer):
    """V-SKNN (seq.baselines.SessionKNN): the `n_neighbours` training sessions most similar to
    the input vote for their items with their similarity.

    `session_items` (n_sessions x n_items, binary CSR) and its transpose, the inverted index
    from an item to the sessions that hold it, are all a request reads.
    """

    family = "session_knn"

    def __init__(
        self,
        *,
        session_items: sp.csr_matrix,
        n_neighbours: int,
        popularity_tiebreak: np.ndarray,
    ):
        self.session_items = sp.csr_matrix(session_items, dtype=np.float32, copy=True)
        self.session_items.sort_indices()
        self.item_sessions = self.session_items.T.tocsr()
        self.item_sessions.sort_indices()
        lengths = np.maximum(np.diff(self.session_items.indptr), 1).astype(np.float32)
        self.session_norms = np.sqrt(lengths)
        self.n_neighbours = int(n_neighbours)
        self.popularity_tiebreak = np.asarray(popularity_tiebreak, dtype=np.float32)
        self.n_items = int(self.session_items.shape[1])

    @classmethod
    def from_model(cls, session_knn) -> SessionKNNScorer:
        """From a seq.baselines.SessionKNN."""
        return cls(
            session_items=session_knn.train_matrix,
            n_neighbours=session_knn.n_neighbours,
            popularity_tiebreak=session_knn.popularity_tiebreak,
        )

    def _query(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each distinct input item and its weight: linear recency (position / length, its most
        recent occurrence), over sqrt(number of distinct items)."""
        items = items[(items >= 0) & (items < self.n_items)]
        if len(items) == 0:
            return items, np.zeros(0)
        position_weight = np.arange(1, len(items) + 1, dtype=np.float32) / len(items)
        unique_items, last_position = np.unique(items[::-1], return_index=True)
        weights = position_weight[::-1][last_position] / np.sqrt(len(unique_items))
        return unique_items, weights

    def neighbours(self, context: Context) -> tuple[np.ndarray, np.ndarray]:
        """(session rows, similarities) of the input's nearest training sessions."""
        items, weights = self._query(context.items)
        sessions, similarity = sparse_rows_sum(self.item_sessions, items, weights)
        own_session = getattr(context, "own_session", -1)
        if own_session >= 0:
            kept = sessions != own_session
            sessions, similarity = sessions[kept], similarity[kept]
        # float32 like SessionKNN, so equal similarities tie the same way (lower session row).
        similarity = similarity.astype(np.float32) / self.session_norms[sessions]
        if len(sessions) > self.n_neighbours:
            # Only the sessions at or above the n-th best similarity can be kept (a partition,
            # linear); among those, a stable order: equal similarities go to the lower session
            # row (the partition alone may keep either of two equal ones at the cut).
            cut = np.partition(similarity, len(similarity) - self.n_neighbours)[
                len(similarity) - self.n_neighbours
            ]
            above = np.flatnonzero(similarity >= cut)
            nearest = above[np.lexsort((sessions[above], -similarity[above]))[: self.n_neighbours]]
            sessions, similarity = sessions[nearest], similarity[nearest]
        return sessions, similarity

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        sessions, similarity = self.neighbours(context)
        items, votes = sparse_rows_sum(self.session_items, sessions, similarity)
        scores = np.zeros(self.n_items, dtype=np.float32)
        scores[items] = votes
        return subset(scores + self.popularity_tiebreak, candidates)

    def score_many(self, contexts: Sequence[Context]) -> np.ndarray:
        """`score` of each context, as one block (the same float32 sums)."""
        return self.score_parts(contexts).dense()

    def score_parts(self, contexts: Sequence[Context]) -> BasePlusSparse:
        """The popularity tie-break row, plus each context's votes from its nearest sessions."""
        columns, votes, counts = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)], []
        for context in contexts:
            sessions, similarity = self.neighbours(context)
            items, item_votes = sparse_rows_sum(self.session_items, sessions, similarity)
            columns.append(items)
            votes.append(item_votes.astype(np.float32))
            counts.append(len(items))
        rows = sp.csr_matrix(
            (
                np.concatenate(votes),
                np.concatenate(columns),
                np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]),
            ),
            shape=(len(contexts), self.n_items),
        )
        return self._base_plus_sparse(self.popularity_tiebreak, rows)

    def params(self) -> dict:
        return {"n_neighbours": self.n_neighbours}

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **csr_arrays("session_items", self.session_items),
            "popularity_tiebreak": self.popularity_tiebreak,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> SessionKNNScorer:
        return cls(
            session_items=csr_from_arrays("session_items", arrays),
            n_neighbours=params["n_neighbours"],
            popularity_tiebreak=arrays["popularity_tiebreak"],
        )
