"""A scorer trained on one item index, scored in another (e.g. an older model version on a
newer catalog)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mltasks.ml.scorers.base import Context, HistoryContext, Scorer, subset


class RemappedScorer(Scorer):
    """`inner` seen through `to_inner`: item i of the outer index is item `to_inner[i]` of
    `inner`, -1 where `inner` does not know it.

    Context items `inner` does not know are dropped, as serving drops tracks its model has no
    vector for; items it does not know score -inf, so it never recommends them. A history's
    `user` passes through unchanged: it names a row of `inner`'s own user vectors.
    """

    family = "remapped"

    def __init__(self, *, inner: Scorer, to_inner: np.ndarray):
        self.inner = inner
        self.to_inner = np.asarray(to_inner, dtype=np.int64)
        if (self.to_inner >= inner.n_items).any():
            raise ValueError("to_inner points past the inner scorer's items")
        self.n_items = len(self.to_inner)
        self.known = np.flatnonzero(self.to_inner >= 0)

    @classmethod
    def by_ids(cls, *, inner: Scorer, inner_ids: np.ndarray, outer_ids: np.ndarray):
        """Items matched by id (compared as strings, so int and str ids of a track agree)."""
        position = {str(item_id): index for index, item_id in enumerate(np.asarray(inner_ids))}
        to_inner = np.array([position.get(str(i), -1) for i in np.asarray(outer_ids)], np.int64)
        return cls(inner=inner, to_inner=to_inner)

    def inner_context(self, context: Context) -> Context:
        items = context.items[(context.items >= 0) & (context.items < self.n_items)]
        keep = self.to_inner[items] >= 0
        if isinstance(context, HistoryContext) and context.weights is not None:
            weights = context.weights[(context.items >= 0) & (context.items < self.n_items)]
            return replace(context, items=self.to_inner[items[keep]], weights=weights[keep])
        return replace(context, items=self.to_inner[items[keep]])

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        return subset(self.score_many([context])[0], candidates)

    def score_many(self, contexts: Sequence[Context]) -> np.ndarray:
        inner_scores = self.inner.score_many([self.inner_context(c) for c in contexts])
        scores = np.full((len(contexts), self.n_items), -np.inf, dtype=np.float32)
        scores[:, self.known] = inner_scores[:, self.to_inner[self.known]]
        return scores
