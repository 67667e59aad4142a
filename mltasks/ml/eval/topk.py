"""The one top-k selection every ranking in TunedIn goes through (no ORM).

Exclusion is a score of -inf: `exclude_items` makes that copy of a score block (known items of
a user, the input of a sequence), `top_k_indices` never returns such an item.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

PAD = -1  # fills a row of a 2-D result when fewer than k items are rankable
TORCH_TOPK_MIN_ELEMENTS = 2_000_000  # a 2-D block this large is cut by torch.topk


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties go to the lower index.

    `scores` is 1-D (one list) or 2-D (one list per row). Items scored -inf (excluded) never
    appear: a 1-D result is shorter then, and a 2-D row is padded with PAD. Items tied at the
    k-th score are kept lowest index first. argpartition (torch.topk for a large block) keeps
    it O(n) per row; only the k survivors are sorted. Scores must not be NaN.
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
    candidates = _top_candidates(scores, n_candidates)
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    top = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    top[np.take_along_axis(candidate_scores, order, axis=1) == -np.inf] = PAD
    if n_candidates < k:
        top = np.hstack([top, np.full((n_rows, k - n_candidates), PAD, dtype=np.int64)])
    return top


def _top_candidates(scores: np.ndarray, n: int) -> np.ndarray:
    """n indices per row whose scores are the row's n highest, items tied at the cut kept
    lowest index first (up to which -inf items: those are never returned).

    A block of at least TORCH_TOPK_MIN_ELEMENTS floats (evaluation: hundreds of rows over a
    large catalog) is cut by torch.topk, imported only then: at 512 rows x 83,000 items it takes
    0.07-0.13 s where argpartition takes 0.27-0.75 s. It asks for n + 1 sorted values: a row
    whose (n + 1)-th value is below its n-th has no tie across the cut, and only the other rows
    are looked at again (comparing whole rows with their cut cost half as much as the cut
    itself). A serving request's single row stays in numpy, so a web process that serves no
    neural model never loads torch.
    """
    n_items = scores.shape[1]
    if scores.size >= TORCH_TOPK_MIN_ELEMENTS and scores.dtype in (np.float32, np.float64):
        import torch

        block = torch.from_numpy(np.require(scores, requirements=["C", "W"]))
        if n == n_items:
            return torch.topk(block, n, dim=1, sorted=False).indices.numpy()
        values, indices = (part.numpy() for part in torch.topk(block, n + 1, dim=1, sorted=True))
        cut = values[:, n - 1]
        crowded = np.flatnonzero((values[:, n] == cut) & (cut > -np.inf))
        return _lowest_indices_at_the_cut(scores, indices[:, :n], cut=cut, rows=crowded)
    candidates = np.argpartition(scores, n_items - n, axis=1)[:, n_items - n :]
    return _lowest_indices_at_the_cut(scores, candidates)


def _lowest_indices_at_the_cut(
    scores: np.ndarray,
    candidates: np.ndarray,
    *,
    cut: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """The first cut (argpartition or torch.topk) keeps any of several items tied at the k-th
    score; keep the lowest indices.

    Only rows with more items at the cut score than places left (`rows`, when the caller
    knows them) are redone, in O(n) each.
    """
    n_candidates = candidates.shape[1]
    if cut is None:
        cut = np.take_along_axis(scores, candidates, axis=1).min(axis=1)
    if rows is None:
        rows = np.nonzero((scores >= cut[:, None]).sum(axis=1) > n_candidates)[0]
    if rows.size == 0:
        return candidates
    candidates = candidates.copy()
    for row in rows:
        above = np.flatnonzero(scores[row] > cut[row])
        at_cut = np.flatnonzero(scores[row] == cut[row])[: n_candidates - above.size]
        candidates[row] = np.concatenate([above, at_cut])
    return candidates


def find_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(place, found): where each of `keys` is in the ascending `sorted_keys`, and whether it
    is there at all (`place` is meaningful only where found)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    place = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return place, sorted_keys[place] == keys


def base_order(base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank) of a shared score row for `top_k_of_base_plus_sparse`: the items best
    first, ties lowest index first, and each item's place in that order."""
    base = np.asarray(base)
    order = np.lexsort((np.arange(len(base)), -base)).astype(np.int64)
    rank = np.empty(len(base), dtype=np.int64)
    rank[order] = np.arange(len(base))
    return order, rank


def top_k_of_base_plus_sparse(
    *,
    base: np.ndarray,
    order: tuple[np.ndarray, np.ndarray],
    rows: sp.csr_matrix,
    excluded: Sequence[np.ndarray],
    k: int,
) -> np.ndarray:
    """`top_k_indices` of the block whose row i is `base + rows[i]` (float32 sums) with row i's
    `excluded` items at -inf, without making that (rows x catalog) block.

    `order` is `base_order(base)`. An item without an entry in row i scores `base` alone, so
    row i's top k is among its k best entries and the first k items of `order` that are
    neither its entries nor excluded; only those 2k are sorted. The cost grows with the
    entries and k, not the catalog. Same result as the dense block, PAD included.
    """
    n_rows, n_items = rows.shape
    k = max(int(k), 0)
    if n_rows == 0 or k == 0:
        return np.full((n_rows, k), PAD, dtype=np.int64)
    base = np.asarray(base, dtype=np.float32)
    base_items, base_rank = order
    indptr = rows.indptr.astype(np.int64)
    counts = np.diff(indptr)
    entry_row = np.repeat(np.arange(n_rows), counts)
    entry_items = rows.indices.astype(np.int64)
    entry_scores = base[entry_items] + rows.data.astype(np.float32, copy=False)
    excluded = [np.asarray(items, dtype=np.int64).reshape(-1) for items in excluded]
    excluded = [items[(items >= 0) & (items < n_items)] for items in excluded]
    excluded_row = np.repeat(np.arange(n_rows), [len(items) for items in excluded])
    excluded_items = np.concatenate([np.zeros(0, np.int64), *excluded])
    if len(excluded_items):
        excluded_keys = np.sort(excluded_row * n_items + excluded_items)
        entry_scores[find_sorted(excluded_keys, entry_row * n_items + entry_items)[1]] = -np.inf

    # The first k items of the shared order that row i may take. With row i's taken places
    # (its entries' and excluded items' places in `order`) sorted, b_0 < b_1 < ..., its j-th
    # free place is j + #{m: b_m - m <= j}.
    stride = max(n_items, k) + 1
    taken = np.sort(
        np.concatenate([entry_row, excluded_row]) * stride
        + base_rank[np.concatenate([entry_items, excluded_items])]
    )
    taken = taken[np.concatenate([[True], taken[1:] != taken[:-1]])] if len(taken) else taken
    taken_row = taken // stride
    row_start = np.searchsorted(taken_row, np.arange(n_rows))
    shifted = taken - (np.arange(len(taken)) - row_start[taken_row])
    wanted = np.arange(n_rows)[:, None] * stride + np.arange(k)[None, :]
    before = np.searchsorted(shifted, wanted, side="right") - row_start[:, None]
    place = np.arange(k)[None, :] + before
    head = base_items[np.minimum(place, n_items - 1)]
    head_scores = np.where(place < n_items, base[head], np.float32(-np.inf))

    # Each row's k best entries (ties to the lower item: a row's columns are sorted).
    width = int(counts.max(initial=0))
    slot = np.arange(len(entry_items)) - np.repeat(indptr[:-1], counts)
    entry_block = np.full((n_rows, width), n_items, dtype=np.int64)
    score_block = np.full((n_rows, width), -np.inf, dtype=np.float32)
    entry_block[entry_row, slot] = entry_items
    score_block[entry_row, slot] = entry_scores
    if width > k:
        best = top_k_indices(score_block, k)
        missing = best == PAD  # fewer than k entries that are not excluded
        best[missing] = 0
        entry_block = np.take_along_axis(entry_block, best, axis=1)
        score_block = np.take_along_axis(score_block, best, axis=1)
        entry_block[missing], score_block[missing] = n_items, -np.inf

    candidates = np.hstack([entry_block, head])
    scores = np.hstack([score_block, head_scores])
    chosen = np.lexsort((candidates, -scores), axis=1)[:, :k]
    top = np.take_along_axis(candidates, chosen, axis=1)
    top[np.take_along_axis(scores, chosen, axis=1) == -np.inf] = PAD
    if top.shape[1] < k:
        top = np.hstack([top, np.full((n_rows, k - top.shape[1]), PAD, dtype=np.int64)])
    return top


def exclude_items(
    scores: np.ndarray,
    excluded: Iterable[np.ndarray] | sp.spmatrix | None,
    *,
    in_place: bool = False,
) -> np.ndarray:
    """A float32 copy of the 2-D `scores` with the excluded items of each row at -inf.

    `excluded`: one array of item indices per row, or a sparse matrix of the same shape whose
    stored entries are the excluded (row, item) pairs; None excludes nothing. The input is
    never modified, unless `in_place`: then a writable float32 block (a fresh score block
    that only the caller holds, in evaluation) is masked where it is and returned, with no
    copy of hundreds of megabytes.
    """
    maskable = isinstance(scores, np.ndarray) and scores.dtype == np.float32
    if not (in_place and maskable and scores.flags.writeable):
        scores = np.array(scores, dtype=np.float32, copy=True)
    if excluded is None:
        return scores
    if sp.issparse(excluded):
        pairs = sp.coo_matrix(excluded)
        scores[pairs.row, pairs.col] = -np.inf
        return scores
    for row, items in enumerate(excluded):
        if len(items):
            scores[row, items] = -np.inf
    return scores


def keep_top_per_row(matrix: sp.spmatrix, k: int) -> sp.csr_matrix:
    """A CSR copy of `matrix` with only the k largest stored values of each row (ties: lower
    column position first), e.g. an item's k nearest neighbours or strongest tags."""
    matrix = sp.csr_matrix(matrix)
    rows, columns, values = [], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        data = matrix.data[start:end]
        keep = top_k_indices(data, k) if len(data) > k else np.arange(len(data))
        rows.append(np.full(len(keep), row))
        columns.append(matrix.indices[start:end][keep])
        values.append(data[keep])
    if not rows:
        return matrix.copy()
    return sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=matrix.shape,
    )
