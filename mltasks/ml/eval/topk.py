"""The one top-k selection every ranking in TunedIn goes through (no ORM)."""

from __future__ import annotations

import numpy as np

PAD = -1  # fills a row of a 2-D result when fewer than k items are rankable


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties go to the lower index.

    `scores` is 1-D (one list) or 2-D (one list per row). Items scored -inf (excluded) never
    appear: a 1-D result is shorter then, and a 2-D row is padded with PAD. argpartition keeps
    it O(n) per row; only the k survivors are sorted.
    """
    scores = np.asarray(scores)
    if scores.ndim == 1:
        top = top_k_indices(scores.reshape(1, -1), k)[0]
        return top[top != PAD]
    n_rows, n_items = scores.shape
    k = max(int(k), 0)
    n_candidates = min(k, n_items)
    if n_candidates == 0:
        return np.full((n_rows, k), PAD, dtype=np.int64)
    candidates = np.argpartition(-scores, n_candidates - 1, axis=1)[:, :n_candidates]
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    top = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    top[np.take_along_axis(candidate_scores, order, axis=1) == -np.inf] = PAD
    if n_candidates < k:
        top = np.hstack([top, np.full((n_rows, k - n_candidates), PAD, dtype=np.int64)])
    return top
