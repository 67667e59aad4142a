"""Full-catalog top-K with each user's known items removed, in user batches.

Memory is one (batch_size x n_items) float32 score block at a time, and only each block's top-K
is kept. The batch shrinks with the catalog so a block stays near `SCORE_BLOCK_ENTRIES` scores
(64 MB): 951 users x 17,632 HetRec artists, 169 users x 99,000 tracks at demo scale 10. A
scorer is called once per batch with that batch's user indices only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.splits import held_out_items
from mltasks.ml.eval.metrics import evaluate_top_items
from mltasks.ml.eval.topk import exclude_items, top_k_indices

CF_METRICS = ("Recall@20", "nDCG@20", "nDCG@10", "HR@10", "Coverage@100")
DEFAULT_BATCH_SIZE = 1024  # the most users scored at once
SCORE_BLOCK_ENTRIES = 2**24  # the most scores (users x items) in one block

Scorer = Callable[[np.ndarray], np.ndarray]


def batch_size_for(n_items: int, batch_size: int | None = None) -> int:
    """Users per score block: `batch_size` if given, else as many as keep a block within
    SCORE_BLOCK_ENTRIES (at most DEFAULT_BATCH_SIZE, at least 1)."""
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return int(batch_size)
    return int(max(1, min(DEFAULT_BATCH_SIZE, SCORE_BLOCK_ENTRIES // max(int(n_items), 1))))


def rank_users(
    scorer: Scorer,
    user_indices: np.ndarray,
    *,
    k: int,
    exclude: sp.csr_matrix | None,
    batch_size: int | None = None,
    n_items: int | None = None,
) -> np.ndarray:
    """(len(user_indices), k) top items for each user, best first, `exclude`d items never.

    Scores `batch_size` users at a time (default: `batch_size_for` the catalog, whose size is
    `n_items` or `exclude`'s width; DEFAULT_BATCH_SIZE when neither is known); a row with fewer
    than k rankable items is padded with topk.PAD (-1), which the metrics ignore.

    `scorer` returns a new block on each call (a product, a fancy-indexed copy): known items
    are masked in that block, not in a copy of it (at 300,000 items the copies alone cost
    minutes of a 60,000-user test).
    """
    user_indices = np.asarray(user_indices, dtype=np.int64)
    if n_items is None and exclude is not None:
        n_items = exclude.shape[1]
    if batch_size is None and n_items is None:
        batch_size = DEFAULT_BATCH_SIZE
    batch_size = batch_size_for(n_items or 1, batch_size)
    blocks = []
    for start in range(0, len(user_indices), batch_size):
        batch = user_indices[start : start + batch_size]
        known = None if exclude is None else exclude[batch]
        blocks.append(top_k_indices(exclude_items(scorer(batch), known, in_place=True), k))
    if not blocks:
        return np.zeros((0, k), dtype=np.int64)
    return np.concatenate(blocks).astype(np.int64)


def evaluate_scorer(
    scorer: Scorer,
    *,
    target: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    metric_names: Sequence[str] = CF_METRICS,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Metrics over the users with at least one item in `target`, known items excluded."""
    users, items = held_out_items(target)
    if len(users) == 0:
        raise ValueError("no user has a held-out item to evaluate on")
    k = max(int(name.partition("@")[2]) for name in metric_names)
    top_items = rank_users(
        scorer, users, k=k, exclude=exclude, batch_size=batch_size, n_items=target.shape[1]
    )
    return evaluate_top_items(
        top_items=top_items, test_items=items, n_items=target.shape[1], metric_names=metric_names
    )
