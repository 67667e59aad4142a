"""Classical baselines of EVALUATION.md: MostPop, ItemKNN (cosine), EASE (closed form).

Every model has `fit(train_csr) -> self` and `score(user_indices) -> (len, n_items) float32`.
`train_csr` is a user x item matrix of positives whose values are raw weights (play counts);
`weighting` turns them into training values (see `interactions.training_weights`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from mltasks.ml.data.interactions import training_weights

logger = logging.getLogger(__name__)


def weighted(matrix: sp.csr_matrix, scheme: str) -> sp.csr_matrix:
    """`matrix` with each stored value replaced by its training weight."""
    result = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    result.data = training_weights(result.data, scheme).astype(np.float32)
    return result


# ----------------------------------------------------------------------------- sparse helpers

COOCCURRENCE_BLOCK_ENTRIES = 2**24  # items per X'X block: this many / n_items (at least 1)


def cooccurrence_blocks(
    matrix: sp.csr_matrix,
    *,
    block_entries: int = COOCCURRENCE_BLOCK_ENTRIES,
    sort_indices: bool = True,
) -> Iterator[tuple[int, sp.csr_matrix]]:
    """X'X a block of rows at a time: (start, rows start.. of X'X as CSR).

    A block has max(1, block_entries // n_items) rows, so it holds at most `block_entries`
    entries (fewer: only co-occurring pairs are stored). The cost over all blocks is that of
    X'X, sum over users of (items per user)^2; X'X itself is never held whole. Indices are
    sorted unless `sort_indices` is False (then in the product's own, deterministic order).
    """
    by_item = sp.csc_matrix(matrix)
    n_items = matrix.shape[1]
    step = max(1, int(block_entries) // max(n_items, 1))
    for start in range(0, n_items, step):
        block = (by_item[:, start : start + step].T.tocsr() @ matrix).tocsr()
        if sort_indices:
            block.sort_indices()
        yield start, block


def _top_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest `values`, in position order; at the k-th value, lower
    positions win (the choice of eval.topk.top_k_indices). O(len(values))."""
    if len(values) <= k:
        return np.arange(len(values))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(values, len(values) - k)[len(values) - k]
    candidates = np.flatnonzero(values >= cut)  # one pass: those above the cut and its ties
    if len(candidates) == k:
        return candidates
    above = values[candidates] > cut
    n_ties = k - int(above.sum())
    return candidates[above | (np.cumsum(~above) <= n_ties)]


def top_entries_per_row(
    block: sp.csr_matrix, k: int, *, diagonal_offset: int | None = None, ranked: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of the k largest stored values of each row of `block`; at the
    k-th value, lower positions in the row win (lower columns when indices are sorted).

    `diagonal_offset`: the block holds rows offset.. of a square matrix whose diagonal entries
    are skipped. Entries come row by row; within a row in position order, or, if `ranked`, by
    value (largest first, ties by position), so a row's first m entries are its top m.

    Rows short enough to be kept whole are taken together; every other row is cut alone. A
    co-occurrence block with tag pseudo-users is nearly dense, so nothing here makes a pass
    over the whole block beyond the rows' own cuts.
    """
    indptr, indices, data = block.indptr, block.indices, block.data
    lengths = np.diff(indptr)
    limit = 1 if ranked else k  # a row with more usable entries than this is cut alone
    # Rows that might be kept whole (the diagonal, when skipped, leaves one entry fewer).
    short = np.flatnonzero(lengths <= limit + (diagonal_offset is not None))
    short_lengths = lengths[short]
    entry_rows = np.repeat(short, short_lengths)
    positions = np.arange(int(short_lengths.sum())) + np.repeat(
        indptr[short] - np.cumsum(short_lengths) + short_lengths, short_lengths
    )
    usable = np.ones(len(positions), dtype=bool)
    if diagonal_offset is not None:
        usable = indices[positions] != entry_rows + diagonal_offset
    usable_counts = np.zeros(block.shape[0], dtype=np.int64)
    usable_counts[short] = np.bincount(
        np.repeat(np.arange(len(short)), short_lengths)[usable], minlength=len(short)
    )
    looped = np.ones(block.shape[0], dtype=bool)
    looped[short[usable_counts[short] <= limit]] = False
    whole = usable & ~looped[entry_rows]
    parts_rows, parts_columns = [entry_rows[whole]], [indices[positions[whole]]]
    parts_values = [data[positions[whole]]]
    for row in np.flatnonzero(looped).tolist():
        start, end = indptr[row], indptr[row + 1]
        values, n_usable = data[start:end], end - start
        if diagonal_offset is not None:
            diagonal = np.flatnonzero(indices[start:end] == row + diagonal_offset)
            if len(diagonal):  # never in the top k: it has more than k others, or it is cut
                values = values.copy()
                values[diagonal] = -np.inf
                n_usable -= len(diagonal)
        top = _top_positions(values, min(k, n_usable))
        if ranked:
            top = top[np.argsort(-values[top], kind="stable")]
        parts_rows.append(np.full(len(top), row))
        parts_columns.append(indices[start + top])
        parts_values.append(values[top])
    rows, columns, values = (np.concatenate(p) for p in (parts_rows, parts_columns, parts_values))
    order = np.argsort(rows, kind="stable")  # row by row, each row's own order kept
    return rows[order], columns[order], values[order]


def _csr_from_parts(rows, columns, values, shape) -> sp.csr_matrix:
    if not rows:
        return sp.csr_matrix(shape, dtype=np.float32)
    matrix = sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))), shape=shape
    )
    matrix.sort_indices()
    return matrix


def _user_rows(train: sp.csr_matrix, n_users: int | None) -> sp.csr_matrix:
    """The first `n_users` rows of a training matrix (EASE+tags appends tag pseudo-users)."""
    return train if n_users is None else train[:n_users]


@dataclass
class ScoreOperator:
    """A model's users x items score matrix S = X B as products, never as a dense array.

    `users` is X (users x items, weighted as in training); `item_times(M)` is B @ M and
    `item_transposed_times(M)` is B' @ M for an items x r block M. Memory is O((users + items) r)
    plus what B itself holds (sparse for the scalable forms).
    """

    users: sp.csr_matrix
    item_times: Callable[[np.ndarray], np.ndarray]
    item_transposed_times: Callable[[np.ndarray], np.ndarray]
    sparse: bool = False  # B is sparse: products beat a dense S even when S would fit

    @property
    def shape(self) -> tuple[int, int]:
        return self.users.shape

    def times(self, matrix: np.ndarray) -> np.ndarray:  # S @ matrix
        return np.asarray(self.users @ self.item_times(matrix))

    def transposed_times(self, matrix: np.ndarray) -> np.ndarray:  # S' @ matrix
        return np.asarray(self.item_transposed_times(np.asarray(self.users.T @ matrix)))


class MostPop:
    """Scores every item by the number of training users who have it, the same for every user."""

    name = "MostPop"

    def __init__(self) -> None:
        self.popularity: np.ndarray | None = None

    def params(self) -> dict:
        return {}

    def fit(self, train_csr: sp.csr_matrix) -> MostPop:
        self.popularity = np.diff(train_csr.tocsc().indptr).astype(np.float32)
        return self

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity, (len(user_indices), 1))


class ItemKNN:
    """Item-based kNN: cosine similarity between item columns, `n_neighbors` kept per item.

    score(u, j) = sum over u's items i of sim(i, j), restricted to j's `n_neighbors` most similar
    items. `shrink` damps similarities built on few co-listeners.

    The similarity is sparse from the start: X'X is computed a block of items at a time
    (`cooccurrence_blocks`) and each block keeps only its rows' top `n_neighbors`, so memory is
    O(items x n_neighbors) plus one block, never items x items.
    """

    name = "ItemKNN"

    def __init__(self, n_neighbors: int = 100, shrink: float = 0.0, weighting: str = "binary"):
        self.n_neighbors = n_neighbors
        self.shrink = shrink
        self.weighting = weighting
        self.similarity: sp.csr_matrix | None = None
        self.train: sp.csr_matrix | None = None

    def params(self) -> dict:
        return {"n_neighbors": self.n_neighbors, "shrink": self.shrink, "weighting": self.weighting}

    def fit(self, train_csr: sp.csr_matrix) -> ItemKNN:
        matrix = weighted(train_csr, self.weighting)
        rows, columns, values = _cosine_neighbours(matrix, self.n_neighbors, self.shrink)
        n_items = matrix.shape[1]
        return self._with_neighbours(
            matrix, _csr_from_parts([rows], [columns], [values], (n_items, n_items))
        )

    def _with_neighbours(self, matrix: sp.csr_matrix, kept: sp.csr_matrix) -> ItemKNN:
        """Fitted on `matrix` (weighted); row j of `kept` holds target j's neighbours."""
        self.train = matrix
        # As a score matrix, column j lists target j's neighbours.
        self.similarity = kept.T.tocsr()
        return self

    def score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores for arbitrary user rows (weighted like training), one sparse product."""
        return np.asarray((rows @ self.similarity).toarray(), dtype=np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self.score_rows(self.train[user_indices])

    def score_operator(self, n_users: int | None = None) -> ScoreOperator:
        """The users x items score matrix as products (see `ScoreOperator`)."""
        similarity = self.similarity
        return ScoreOperator(
            _user_rows(self.train, n_users),
            lambda m: similarity @ m,
            lambda m: similarity.T @ m,
            sparse=True,
        )


def _cosine_neighbours(
    matrix: sp.csr_matrix, k: int, shrink: float, *, ranked: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(targets, neighbours, similarities): each item's k most cosine-similar items, from X'X
    a block at a time. Row by row; within a row by position, or by similarity if `ranked`
    (largest first, ties by position), so that a row's first m entries are its top m."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    rows, columns, values = [], [], []
    # The similarity is symmetric, so row j of a block is also column j: item j's candidate
    # neighbours i, of which it keeps its k most similar.
    for start, block in cooccurrence_blocks(matrix):
        block_rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        denominator = norms[block_rows + start] * norms[block.indices] + shrink + 1e-12
        block.data = (block.data / denominator).astype(np.float32)
        kept_rows, kept_columns, kept_values = top_entries_per_row(
            block, k, diagonal_offset=start, ranked=ranked
        )
        rows.append((kept_rows + start).astype(np.int32))  # items < 2^31: half the memory
        columns.append(kept_columns)
        values.append(kept_values)
    if not rows:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)
    return tuple(np.concatenate(part) for part in (rows, columns, values))


def item_knn_grid(
    train_csr: sp.csr_matrix,
    *,
    neighbours: Iterable[int],
    shrink: float = 0.0,
    weighting: str = "binary",
) -> Iterator[ItemKNN]:
    """ItemKNN fitted with each of `neighbours`, in that order, from one pass over X'X.

    Each item's largest-k neighbours, ranked, are computed once for the largest k; a smaller
    setting keeps each row's first n_neighbors of them. That is the same set `ItemKNN.fit`
    keeps (the n_neighbors largest, ties by position), so every model equals its own fit, for
    the cost of one. Models come one at a time: only the ranked lists are held between them.
    """
    settings = [int(k) for k in neighbours]
    if not settings:
        return
    matrix = weighted(train_csr, weighting)
    n_items = matrix.shape[1]
    rows, columns, values = _cosine_neighbours(matrix, max(settings), shrink, ranked=True)
    counts = np.bincount(rows, minlength=n_items)
    del rows  # row by row already: a row's count is all a CSR needs
    index = np.int32 if len(columns) < 2**31 else np.int64
    starts = (np.cumsum(counts) - counts).astype(index)
    for k in settings:
        rank = np.arange(len(columns), dtype=index) - np.repeat(starts, counts)
        first = rank < k
        del rank
        indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, k))]).astype(index)
        kept = sp.csr_matrix((values[first], columns[first], indptr), shape=(n_items, n_items))
        del first
        kept.sort_indices()  # each row's neighbours by column, as ItemKNN.fit keeps them
        model = ItemKNN(n_neighbors=k, shrink=shrink, weighting=weighting)
        yield model._with_neighbours(matrix, kept)


@dataclass
class _EaseUserSpace:
    """EASE's solution kept in user space (Woodbury), for catalogs larger than the user base.

    With X (users x items), P = (X'X + lam I)^-1 = (I - X' K X) / lam where K = (XX' + lam I)^-1,
    so nothing of size items x items is ever formed: Y = K X is users x items.
    """

    train: sp.csr_matrix
    y: np.ndarray
    inverse_diagonal: np.ndarray
    lam: float

    def score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        dense_rows = np.asarray(rows.todense(), dtype=np.float64)
        rows_p = (dense_rows - (rows @ self.train.T).toarray() @ self.y) / self.lam
        return (dense_rows - rows_p * self.inverse_diagonal).astype(np.float32)


EXACT_MAX_ITEMS = 20_000  # EASE is exact up to this many items, the sparse form above
SPARSE_NEIGHBOURS = 50  # sparse EASE: regressors per item (its most co-occurring items)
SPARSE_GRAM_NEIGHBOURS = 100  # sparse EASE: co-occurrences kept per item in the pruned Gram
SPARSE_SOLVE_BLOCK = 32  # sparse EASE: items whose regressions are solved together


@dataclass
class _EaseSparse:
    """Sparse EASE: B (items x items CSR), column j holding item j's regression weights."""

    weights: sp.csr_matrix

    def score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray((rows @ self.weights).toarray(), dtype=np.float32)


class EASE:
    """EASE (Steck 2019): B = I - P diag(1/diag P) with P = (X'X + lam I)^-1, zero diagonal.

    Column j of B is the ridge regression of item j's column on every other item's:
    B[-j, j] = (G[-j,-j] + lam I)^-1 G[-j, j] with G = X'X.

    Two forms, recorded as params()["form"]:

    - "exact" (at most `max_exact_items` items, EXACT_MAX_ITEMS by default): item space (an
      items x items inverse) when items <= users, user space (Woodbury identity, a users x users
      inverse) otherwise; HetRec has 1,892 users and 17,632 artists, so its EASE costs a
      1,892 x 1,892 solve.
    - "sparse" (more items): each column's regression is restricted to the item's `neighbours`
      most co-occurring items (the feature selection of fsSLIM, Ning & Karypis 2011), over a
      Gram matrix pruned to each item's `gram_neighbours` largest co-occurrences (the
      sparsified Gram of SANSA, Spisak et al. 2023); the G[-j, j] right-hand sides and the
      diagonal are exact. With neighbours = items - 1 and nothing pruned it is exact EASE. B
      is sparse (<= `neighbours` entries per column) and memory is O(items x gram_neighbours)
      plus one X'X block: no items x items or users x items array. Demo world, lam 100,
      validation Recall@20: scale 1 (10k tracks) 0.168 sparse vs 0.155 exact (the sparsity
      regularises) and 0.134 ItemKNN; scale 10 (99k tracks) 0.157 sparse vs 0.115 ItemKNN.
    """

    name = "EASE"

    def __init__(
        self,
        lam: float = 300.0,
        weighting: str = "binary",
        item_side: sp.csr_matrix | None = None,
        side_weight: float = 0.0,
        *,
        max_exact_items: int = EXACT_MAX_ITEMS,
        neighbours: int = SPARSE_NEIGHBOURS,
        gram_neighbours: int = SPARSE_GRAM_NEIGHBOURS,
    ):
        self.lam = lam
        self.weighting = weighting
        # Side information (Jeunen et al. 2020, "closed-form models with side-information"):
        # item features (n_items x n_features) enter the Gram matrix as extra pseudo-users, so
        # items sharing tags get similar weights even with few co-listeners.
        self.item_side = item_side
        self.side_weight = side_weight
        self.max_exact_items = max_exact_items
        self.neighbours = neighbours
        self.gram_neighbours = max(gram_neighbours, neighbours)
        self.train: sp.csr_matrix | None = None
        self.item_weights: np.ndarray | None = None
        self.user_space: _EaseUserSpace | None = None
        self.sparse: _EaseSparse | None = None
        self.form: str | None = None  # "exact" or "sparse", once fitted

    def params(self) -> dict:
        params = {"lam": self.lam, "weighting": self.weighting}
        if self.item_side is not None and self.side_weight:
            params.update(side_weight=self.side_weight, n_side_features=self.item_side.shape[1])
        if self.form is not None:
            params["form"] = self.form
        if self.form == "sparse":
            params.update(neighbours=self.neighbours, gram_neighbours=self.gram_neighbours)
        return params

    def fit(self, train_csr: sp.csr_matrix) -> EASE:
        if self.lam <= 0:
            raise ValueError(f"EASE needs lam > 0, got {self.lam}")
        if train_csr.shape[1] > self.max_exact_items:
            return self._fit_sparse(train_csr)
        matrix = weighted(train_csr, self.weighting).astype(np.float64)
        if self.item_side is not None and self.side_weight:
            side = sp.csr_matrix(self.item_side.T, dtype=np.float64) * self.side_weight
            matrix = sp.vstack([matrix, side]).tocsr()
        self.train = matrix
        self.form, self.sparse = "exact", None
        n_users, n_items = matrix.shape
        if n_items <= n_users:
            gram = (matrix.T @ matrix).toarray()
            gram[np.diag_indices(n_items)] += self.lam
            precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
            weights = -precision / np.diag(precision)
            weights[np.diag_indices(n_items)] = 0.0
            self.item_weights = weights.astype(np.float32)
            self.user_space = None
        else:
            user_gram = (matrix @ matrix.T).toarray()
            user_gram[np.diag_indices(n_users)] += self.lam
            y = scipy.linalg.solve(user_gram, matrix.toarray(), assume_a="pos", check_finite=False)
            p_diagonal = (1.0 - np.asarray(matrix.multiply(y).sum(axis=0)).ravel()) / self.lam
            self.user_space = _EaseUserSpace(matrix, y, 1.0 / p_diagonal, self.lam)
            self.item_weights = None
        return self

    def _fit_sparse(self, train_csr: sp.csr_matrix) -> EASE:
        matrix = weighted(train_csr, self.weighting)  # float32: exact counts up to 2^24
        if self.item_side is not None and self.side_weight:
            side = sp.csr_matrix(self.item_side.T, dtype=np.float32) * np.float32(self.side_weight)
            matrix = sp.vstack([matrix, side]).tocsr()
        self.train = matrix
        self.item_weights, self.user_space = None, None
        self.sparse = _EaseSparse(
            sparse_ease_weights(matrix, self.lam, self.neighbours, self.gram_neighbours)
        )
        self.form = "sparse"
        return self

    def score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores for arbitrary user rows (e.g. a new user's items), weighted like training."""
        if self.sparse is not None:
            return self.sparse.score_rows(rows)
        if self.user_space is not None:
            return self.user_space.score_rows(rows)
        return np.asarray(rows @ self.item_weights, dtype=np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self.score_rows(self.train[user_indices])

    def score_operator(self, n_users: int | None = None) -> ScoreOperator:
        """The first `n_users` users' score matrix as products (see `ScoreOperator`)."""
        users = _user_rows(self.train, n_users)
        if self.sparse is not None:
            weights = self.sparse.weights
            return ScoreOperator(users, lambda m: weights @ m, lambda m: weights.T @ m, sparse=True)
        if self.item_weights is not None:
            dense = self.item_weights
            return ScoreOperator(users, lambda m: dense @ m, lambda m: dense.T @ m)
        space = self.user_space

        def p_times(m: np.ndarray) -> np.ndarray:  # P @ m, P = (I - X'Y) / lam, symmetric
            return (m - space.train.T @ (space.y @ m)) / space.lam

        inverse = space.inverse_diagonal[:, None]  # B = I - P diag(1/diag P)
        return ScoreOperator(
            users,
            lambda m: m - p_times(inverse * m),
            lambda m: m - inverse * p_times(m),
        )


def _neighbourhood_systems(
    kept_items: np.ndarray,
    kept_gram: np.ndarray,
    items: np.ndarray,
    mask: np.ndarray,
    slot_of: np.ndarray,
) -> np.ndarray:
    """(targets, width, width) float64: entry [t, a, c] = G[items[t, a], items[t, c]] when
    either item keeps the other among its largest Gram entries (`kept_items`/`kept_gram`, one
    padded row per item, -1 = none), for slots `mask`ed in; zero elsewhere, the diagonal left
    to the caller.

    Reads only the neighbours' kept rows (gram_neighbours entries each) and looks their items
    up in `slot_of` (items x targets, -1 everywhere, restored before returning), so nothing of
    size neighbourhood union x union is formed."""
    n_targets, width = items.shape
    owner, slot = np.nonzero(mask)
    needed = items[owner, slot]
    lookup = slot_of.reshape(-1)  # flat indices: much faster than 2-D fancy indexing
    member = needed * n_targets + owner
    lookup[member] = slot
    other_items = kept_items[needed]  # (pairs, gram_neighbours)
    other_slot = lookup.take(other_items * n_targets + owner[:, None])
    lookup[member] = -1
    hit_pair, hit_entry = np.nonzero((other_slot >= 0) & (other_items >= 0))
    entry_owner, entry_slot = owner[hit_pair], slot[hit_pair]
    other_slot = other_slot[hit_pair, hit_entry]
    value = kept_gram[needed[hit_pair], hit_entry]
    systems = np.zeros(n_targets * width * width, dtype=np.float64)
    base = entry_owner * (width * width)
    systems[base + entry_slot * width + other_slot] = value  # G is symmetric: a keeps c, or
    systems[base + other_slot * width + entry_slot] = value  # c keeps a, gives both entries
    return systems.reshape(n_targets, width, width)


@dataclass(frozen=True)
class SparseEaseStructure:
    """What the "sparse" EASE form needs of X besides lambda: the Gram diagonal, each item's
    neighbourhood (padded to `width`, `present` masking the padding) with its exact Gram
    entries, and each item's kept Gram row (padded with -1). Computing it is the X'X pass; a
    lambda grid reuses it (`sparse_ease_structure` keeps the last one)."""

    key: tuple
    diagonal: np.ndarray
    neighbour_items: np.ndarray
    neighbour_gram: np.ndarray
    present: np.ndarray
    kept_items: np.ndarray
    kept_gram: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.diagonal)

    @property
    def width(self) -> int:
        return self.neighbour_items.shape[1]


def _matrix_fingerprint(matrix: sp.csr_matrix) -> tuple:
    digest = hashlib.blake2b(digest_size=16)
    for part in (matrix.indptr, matrix.indices, matrix.data):
        digest.update(np.ascontiguousarray(part).view(np.uint8))
    return (matrix.shape, matrix.nnz, str(matrix.dtype), digest.hexdigest())


_last_structure: list[SparseEaseStructure] = []  # at most one: the last matrix's


def sparse_ease_structure(
    matrix: sp.csr_matrix,
    neighbours: int = SPARSE_NEIGHBOURS,
    gram_neighbours: int = SPARSE_GRAM_NEIGHBOURS,
) -> SparseEaseStructure:
    """The lambda-independent part of `sparse_ease_weights` for `matrix`: computed once per
    matrix (by content) and neighbourhood sizes, and kept until another one is asked for."""
    gram_neighbours = max(gram_neighbours, neighbours)
    key = (_matrix_fingerprint(matrix), neighbours, gram_neighbours)
    if _last_structure and _last_structure[0].key == key:
        return _last_structure[0]
    _last_structure.clear()  # the old one's memory is freed before the new one is built
    n_items = matrix.shape[1]
    diagonal = np.asarray(matrix.multiply(matrix).sum(axis=0), dtype=np.float64).ravel()
    # Neighbourhoods: each item's `neighbours` largest co-occurrences (ties: the product's
    # order), padded to a fixed width with a mask; the pruned Gram keeps `gram_neighbours`.
    width = max(min(neighbours, n_items - 1), 1)
    neighbour_items = np.zeros((n_items, width), dtype=np.int64)
    neighbour_gram = np.zeros((n_items, width), dtype=np.float64)
    present = np.zeros((n_items, width), dtype=bool)
    rows, columns, values = [], [], []
    for start, block in cooccurrence_blocks(matrix, sort_indices=False):
        block_rows, block_columns, block_values = top_entries_per_row(
            block, gram_neighbours, diagonal_offset=start, ranked=True
        )
        counts = np.bincount(block_rows, minlength=block.shape[0])
        rank = np.arange(len(block_rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        first = rank < width
        targets, slots = block_rows[first] + start, rank[first]
        neighbour_items[targets, slots] = block_columns[first]
        neighbour_gram[targets, slots] = block_values[first]
        present[targets, slots] = True
        rows.append(block_rows + start)
        columns.append(block_columns)
        values.append(block_values)
    # Each item's kept Gram entries as a padded row (-1: none), read a row per neighbour.
    rows, columns, values = (np.concatenate(part) for part in (rows, columns, values))
    counts = np.bincount(rows, minlength=n_items)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    kept_width = max(int(counts.max(initial=0)), 1)
    kept_items = np.full((n_items, kept_width), -1, dtype=np.int32)
    kept_gram = np.zeros((n_items, kept_width), dtype=np.float32)
    kept_items[rows, rank] = columns
    kept_gram[rows, rank] = values
    structure = SparseEaseStructure(
        key=key,
        diagonal=diagonal,
        neighbour_items=neighbour_items,
        neighbour_gram=neighbour_gram,
        present=present,
        kept_items=kept_items,
        kept_gram=kept_gram,
    )
    _last_structure.append(structure)
    return structure


def sparse_ease_weights(
    matrix: sp.csr_matrix,
    lam: float,
    neighbours: int = SPARSE_NEIGHBOURS,
    gram_neighbours: int = SPARSE_GRAM_NEIGHBOURS,
    *,
    solve_block: int = SPARSE_SOLVE_BLOCK,
) -> sp.csr_matrix:
    """The "sparse" EASE form's B (items x items CSR): column j = (G_NN + lam I)^-1 G_Nj.

    N = j's `neighbours` largest co-occurrences; G_NN's off-diagonal entries come from the
    Gram matrix pruned to each item's `gram_neighbours` largest co-occurrences (an entry is kept
    when either item keeps the other), its diagonal and G_Nj are exact. Items are solved
    `solve_block` at a time: one batched solve of (block, neighbours, neighbours) systems. The
    lambda-independent part comes from `sparse_ease_structure` (once for a lambda grid).
    """
    structure = sparse_ease_structure(matrix, neighbours, gram_neighbours)
    n_items, width = structure.n_items, structure.width
    diagonal_slots = np.arange(width)
    slot_of = np.full((n_items, solve_block), -1, dtype=np.int16 if width < 2**15 else np.int64)
    rows, columns, values = [], [], []
    for start in range(0, n_items, solve_block):
        targets = np.arange(start, min(start + solve_block, n_items))
        mask = structure.present[targets]
        if not mask.any():
            continue
        items = structure.neighbour_items[targets]
        systems = _neighbourhood_systems(
            structure.kept_items, structure.kept_gram, items, mask, slot_of
        )
        systems[:, diagonal_slots, diagonal_slots] = np.where(
            mask, structure.diagonal[items] + lam, 1.0
        )
        right = np.where(mask, structure.neighbour_gram[targets], 0.0)
        solution = np.linalg.solve(systems, right[:, :, None])[:, :, 0]
        keep = mask & (solution != 0)
        rows.append(items[keep])
        columns.append(np.broadcast_to(targets[:, None], items.shape)[keep])
        values.append(solution[keep].astype(np.float32))
    return _csr_from_parts(rows, columns, values, (n_items, n_items))


def factorize_scores(
    score: Callable[[np.ndarray], np.ndarray] | object,
    n_users: int,
    n_items: int,
    rank: int,
    *,
    seed: int = 2020,
    n_power_iterations: int = 4,
    oversampling: int = 16,
    batch_size: int = 1024,
    max_dense_entries: int = 2**28,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank-`rank` factors (user_vectors, item_vectors) of a model's full score matrix.

    Randomised SVD (Halko et al. 2011) of S = score(all users): S ~ (U s) V', returned as
    user_vectors = U s and item_vectors = V, so a non-factor model such as EASE becomes a
    dot-product model. `score` is a scorer (user indices -> scores) or a model with
    `score_operator` (EASE, ItemKNN), also reached through its bound `score` method.

    Products with S go through the model's `ScoreOperator` (S @ M = X (B @ M): memory
    O((users + items) x rank) beyond the model) when its B is sparse, or when S has more than
    `max_dense_entries` entries. Otherwise S is materialised when it has at most that many
    (HetRec: 33M, exact EASE: today's numbers), or a plain scorer re-scores the users
    `batch_size` at a time.
    """
    operator = _score_operator_of(score, n_users)
    if not callable(score):
        score = score.score
    rng = np.random.default_rng(seed)
    users = np.arange(n_users)
    small = n_users * n_items <= max_dense_entries
    if operator is not None and small and not operator.sparse:
        operator = None
    dense = None
    if operator is None and small:
        dense = np.vstack(
            [score(users[s : s + batch_size]) for s in range(0, n_users, batch_size)]
        ).astype(np.float32)

    def times(matrix: np.ndarray) -> np.ndarray:  # S @ matrix
        if dense is not None:
            return dense @ matrix
        if operator is not None:
            return operator.times(matrix).astype(np.float32)
        return np.vstack(
            [score(users[s : s + batch_size]) @ matrix for s in range(0, n_users, batch_size)]
        )

    def transposed_times(matrix: np.ndarray) -> np.ndarray:  # S' @ matrix
        if dense is not None:
            return dense.T @ matrix
        if operator is not None:
            return operator.transposed_times(matrix).astype(np.float32)
        result = np.zeros((n_items, matrix.shape[1]), dtype=np.float32)
        for s in range(0, n_users, batch_size):
            result += score(users[s : s + batch_size]).T @ matrix[s : s + batch_size]
        return result

    width = min(rank + oversampling, n_users, n_items)
    basis, _ = np.linalg.qr(times(rng.standard_normal((n_items, width)).astype(np.float32)))
    for _ in range(n_power_iterations):
        item_basis, _ = np.linalg.qr(transposed_times(basis))
        basis, _ = np.linalg.qr(times(item_basis))
    projected = transposed_times(basis).T  # width x n_items = basis' S
    left, singular, right_t = np.linalg.svd(projected, full_matrices=False)
    rank = min(rank, len(singular))
    user_vectors = (basis @ left[:, :rank]) * singular[:rank]
    return user_vectors.astype(np.float32), right_t[:rank].T.astype(np.float32).copy()


def _score_operator_of(score, n_users: int) -> ScoreOperator | None:
    """The ScoreOperator of a model, or of the model whose bound `score` method is given."""
    model = score if hasattr(score, "score_operator") else getattr(score, "__self__", None)
    if model is None or not hasattr(model, "score_operator"):
        return None
    if model is not score and getattr(score, "__func__", None) is not type(model).score:
        return None  # some other method of the model: not its scores
    return model.score_operator(n_users)
