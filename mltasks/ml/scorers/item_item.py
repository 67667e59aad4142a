"""Sparse item-item models: score(j) = sum over history items i of w(i) * W[i, j].

W keeps, for each history item i, only its `k` largest weights (its k nearest neighbours), as a
CSR matrix: a request reads |history| rows of at most k entries each, never an items x items
block. With k >= n_items nothing is pruned and the scores are exactly the model's.

Builders: `from_ease` (EASE and EASE+tags: exact in item space, exact in the user-space form of
cf.baselines.EASE, whose rows are computed a block at a time, or its sparse form, pruned
directly), `from_item_knn` (cf.baselines.ItemKNN's similarity) and `from_dense` (any items x
items array).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.interactions import training_weights
from mltasks.ml.eval.topk import keep_top_per_row, top_k_indices
from mltasks.ml.scorers.base import (
    Context,
    HistoryContext,
    Scorer,
    csr_arrays,
    csr_from_arrays,
    dense_rows_sum,
    subset,
)

DEFAULT_NEIGHBOURS = 200
BLOCK_ROWS = 512  # items x n_items float32 per block while pruning: 512 x 20k items = 40 MB


class ItemItemScorer(Scorer):
    """`weights` (n_items x n_items CSR): row i holds item i's neighbours j and W[i, j].

    History weights go through `weighting` (interactions.training_weights) as the model's
    training matrix did: "binary" counts every history item once.
    """

    family = "item_item"

    def __init__(self, *, weights: sp.csr_matrix, weighting: str = "binary", source: str = ""):
        weights = sp.csr_matrix(weights, dtype=np.float32, copy=True)
        if weights.shape[0] != weights.shape[1]:
            raise ValueError(f"item-item weights must be square, got {weights.shape}")
        weights.sort_indices()
        self.weights = weights
        self.weighting = weighting
        self.source = source
        self.n_items = int(weights.shape[0])

    @property
    def neighbours_per_item(self) -> int:
        """The most entries any item's row keeps (the k a request pays per history item)."""
        return int(np.diff(self.weights.indptr).max(initial=0))

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        if isinstance(context, HistoryContext):
            items, raw_weights = context.item_weights()
        else:
            items = np.unique(context.items)
            raw_weights = np.ones(len(items))
        keep = (items >= 0) & (items < self.n_items)
        history_weights = training_weights(raw_weights[keep], self.weighting)
        return subset(dense_rows_sum(self.weights, items[keep], history_weights), candidates)

    def params(self) -> dict:
        return {
            "weighting": self.weighting,
            "source": self.source,
            "neighbours_per_item": self.neighbours_per_item,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return csr_arrays("weights", self.weights)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> ItemItemScorer:
        return cls(
            weights=csr_from_arrays("weights", arrays),
            weighting=params.get("weighting", "binary"),
            source=params.get("source", ""),
        )

    # -- builders ------------------------------------------------------------------------------
    @classmethod
    def from_dense(
        cls,
        weights: np.ndarray,
        *,
        k: int = DEFAULT_NEIGHBOURS,
        weighting: str = "binary",
        source: str = "",
    ) -> ItemItemScorer:
        """Prune a dense items x items weight matrix to its k largest entries per row."""
        n_items = weights.shape[0]
        blocks = (
            _pruned_block(weights[start : start + BLOCK_ROWS], start, k)
            for start in range(0, n_items, BLOCK_ROWS)
        )
        return cls(weights=_stack_blocks(blocks, n_items), weighting=weighting, source=source)

    @classmethod
    def from_ease(
        cls, ease, *, k: int = DEFAULT_NEIGHBOURS, source: str = "EASE"
    ) -> ItemItemScorer:
        """From a fitted cf.baselines.EASE (with or without tag side information).

        Item space: its weight matrix pruned. User space (more items than users): rows of
        B = I - P diag(1/diag P), P = (I - X'Y) / lam, are computed BLOCK_ROWS at a time from
        the fit's X and Y, so B is never held whole. Sparse form (large catalogs): its sparse B
        pruned row by row, nothing dense.
        """
        if getattr(ease, "sparse", None) is not None:
            return cls(
                weights=keep_top_per_row(ease.sparse.weights, k),
                weighting=ease.weighting,
                source=source,
            )
        if ease.item_weights is not None:
            return cls.from_dense(ease.item_weights, k=k, weighting=ease.weighting, source=source)
        user_space = ease.user_space
        by_item = user_space.train.T.tocsr()  # rows: items, columns: users (and tag rows)
        n_items = by_item.shape[0]

        def rows_of_b(start: int) -> np.ndarray:
            stop = min(start + BLOCK_ROWS, n_items)
            block = -(by_item[start:stop] @ user_space.y)
            block[np.arange(stop - start), np.arange(start, stop)] += 1.0
            block *= -user_space.inverse_diagonal[None, :] / user_space.lam
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0
            return block

        blocks = (
            _pruned_block(rows_of_b(start), start, k) for start in range(0, n_items, BLOCK_ROWS)
        )
        return cls(weights=_stack_blocks(blocks, n_items), weighting=ease.weighting, source=source)

    @classmethod
    def from_item_knn(
        cls, knn, *, k: int = DEFAULT_NEIGHBOURS, source: str = "ItemKNN"
    ) -> ItemItemScorer:
        """From a fitted cf.baselines.ItemKNN: its similarity, k neighbours kept per row."""
        return cls(
            weights=keep_top_per_row(knn.similarity, k), weighting=knn.weighting, source=source
        )


def _pruned_block(block: np.ndarray, row_offset: int, k: int):
    """(rows, columns, values) of the k largest entries of each row of a dense block, zeros
    dropped (they add nothing to a score)."""
    block = np.asarray(block, dtype=np.float32)
    top = top_k_indices(block, min(k, block.shape[1]))
    values = np.take_along_axis(block, top, axis=1)
    rows = np.broadcast_to(np.arange(block.shape[0])[:, None] + row_offset, top.shape)
    keep = values != 0
    return rows[keep], top[keep], values[keep]


def _stack_blocks(blocks, n_items: int) -> sp.csr_matrix:
    rows, columns, values = zip(*blocks, strict=True) if n_items else ((), (), ())
    return sp.csr_matrix(
        (
            np.concatenate([*values, np.zeros(0, np.float32)]),
            (
                np.concatenate([*rows, np.zeros(0, np.int64)]),
                np.concatenate([*columns, np.zeros(0, np.int64)]),
            ),
        ),
        shape=(n_items, n_items),
    )
