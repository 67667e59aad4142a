"""The scorer contract: contexts, the `Scorer` base class and the sparse sums scorers share.

Every scorer returns float32 scores, higher is better; an item it cannot recommend scores -inf
(`eval.topk` never returns such an item). `top_k` is the one place a scorer's scores become a
ranking, through `eval.topk.top_k_indices`, so ties go to the lower item index everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.sequences import NEUTRAL_DOW, NEUTRAL_HOUR
from mltasks.ml.eval.topk import (
    base_order,
    exclude_items,
    find_sorted,
    top_k_indices,
    top_k_of_base_plus_sparse,
)


def _item_array(values) -> np.ndarray:
    return np.asarray(values if values is not None else (), dtype=np.int64).reshape(-1)


@dataclass(frozen=True, eq=False)
class HistoryContext:
    """A user as a CF scorer sees them: the items of their history and, optionally, how much
    each counts (summed event weights; None = 1 each) and their row in a factor model's user
    vectors (None: the model has no vector of its own for them)."""

    items: np.ndarray
    weights: np.ndarray | None = None
    user: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "items", _item_array(self.items))
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
            if weights.shape != self.items.shape:
                raise ValueError("a history has one weight per item")
            object.__setattr__(self, "weights", weights)

    def item_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(unique items, summed weights): a repeated item counts once, with its weights added."""
        weights = np.ones(len(self.items)) if self.weights is None else self.weights
        unique_items, inverse = np.unique(self.items, return_inverse=True)
        return unique_items, np.bincount(inverse.reshape(-1), weights=weights)


@dataclass(frozen=True, eq=False)
class SequenceContext:
    """A sequence to continue: its items oldest first, and the hour (0-23) and day of week
    (Monday = 0) of the prediction; the neutral buckets when unknown.

    `own_session` is for evaluation only: the sequence's own row among a session scorer's
    training sessions (its training prefix), never one of its neighbours, as seq.baselines'
    SessionKNN leaves it out when it is evaluated; -1 (serving) leaves nothing out."""

    items: np.ndarray
    hour: int = NEUTRAL_HOUR
    dow: int = NEUTRAL_DOW
    own_session: int = -1

    def __post_init__(self):
        object.__setattr__(self, "items", _item_array(self.items))


Context = HistoryContext | SequenceContext


# A batch of 256 rows over 100,000 items, 101 best kept (2 cores): from the entries 0.036 s
# at 1,000 entries a row, 0.057 s at 2,000, 0.096 s at 4,000 and 0.19 s at 8,000; the dense
# block (made, then cut by torch.topk) about 0.06-0.09 s whatever the entries.
SPARSE_TOP_K_MAX_DENSITY = 0.025


@dataclass(frozen=True, eq=False)
class BasePlusSparse:
    """The scores of a batch of contexts as one shared row plus a sparse row each:
    score[i, j] = base[j] + rows[i, j], summed in float32 as the dense block sums them.

    Popularity, last-item transitions and session-kNN votes have this form. Evaluation ranks
    them with eval.topk.top_k_of_base_plus_sparse and reads the ranker's features from them
    (`at`), with no (contexts x catalog) block. `blocked[i]` (optional, sorted:
    `with_blocked`) are row i's items at -inf, as `exclude_items` leaves a dense block.
    """

    base: np.ndarray  # (n_items,) float32
    rows: sp.csr_matrix  # (n_contexts, n_items) float32, each row's columns sorted and unique
    blocked: Sequence[np.ndarray] | None = None
    order: tuple[np.ndarray, np.ndarray] | None = None  # eval.topk.base_order(base), if known

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def dense(self) -> np.ndarray:
        """The (contexts x catalog) float32 block, blocked items at -inf."""
        scores = np.tile(self.base, (len(self), 1))
        counts = np.diff(self.rows.indptr)
        scores[np.repeat(np.arange(len(self)), counts), self.rows.indices] += self.rows.data
        return exclude_items(scores, self.blocked, in_place=True)

    def with_blocked(self, blocked: Sequence[np.ndarray]) -> BasePlusSparse:
        """The same scores with row i's `blocked[i]` items at -inf (items outside the catalog
        block nothing)."""
        n_items = int(self.rows.shape[1])
        blocked = [_item_array(items) for items in blocked]
        # Already sorted and unique from blocked_items: sort only what is not.
        blocked = [b if (np.diff(b) > 0).all() else np.unique(b) for b in blocked]
        blocked = [items[(items >= 0) & (items < n_items)] for items in blocked]
        return BasePlusSparse(self.base, self.rows, blocked, self.order)

    def top_k(self, k: int) -> np.ndarray:
        """(contexts, k) best items of each row, blocked ones never (top_k_indices' order and
        padding): from the entries and the shared row's order only, unless the entries fill
        more than SPARSE_TOP_K_MAX_DENSITY of the block (then from the dense block)."""
        if self.rows.nnz > SPARSE_TOP_K_MAX_DENSITY * len(self) * self.rows.shape[1]:
            return top_k_indices(self.dense(), k)
        return top_k_of_base_plus_sparse(
            base=self.base,
            order=self.order or base_order(self.base),
            rows=self.rows,
            excluded=self.blocked or [np.zeros(0, np.int64)] * len(self),
            k=k,
        )

    def at(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 scores of the (row, item) pairs, blocked ones -inf: a dense block's
        `block[rows, items]` (the ranker's features of a batch's candidates)."""
        rows, items = _item_array(rows), _item_array(items)
        n_items = int(self.rows.shape[1])
        scores = self.base[items]
        keys = rows * n_items + items
        counts = np.diff(self.rows.indptr)
        entries = np.repeat(np.arange(len(self), dtype=np.int64), counts) * n_items
        entries += self.rows.indices
        place, found = find_sorted(entries, keys)
        scores[found] += self.rows.data[place[found]]
        if self.blocked is not None:
            sizes = [len(items) for items in self.blocked]
            blocked = np.repeat(np.arange(len(self), dtype=np.int64), sizes) * n_items
            blocked += np.concatenate([np.zeros(0, np.int64), *self.blocked])
            scores[find_sorted(blocked, keys)[1]] = -np.inf  # sorted: see with_blocked
        return scores


class Scorer:
    """Scores every item of a catalog of `n_items` for a context.

    Subclasses implement `score`; `params`, `arrays` and `from_arrays` describe what
    mltasks.ml.artifacts saves of them (JSON parameters and numpy arrays, nothing pickled).
    """

    family: ClassVar[str] = ""
    n_items: int = 0

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        """Float32 scores of every item, or of `candidates` (item indices) in their order."""
        raise NotImplementedError

    def score_many(self, contexts: Sequence[Context]) -> np.ndarray:
        """(len(contexts), n_items) scores, one row per context (for evaluation; a family that
        can batch, like the neural one, overrides this)."""
        if not contexts:
            return np.zeros((0, self.n_items), dtype=np.float32)
        return np.vstack([self.score(context) for context in contexts]).astype(
            np.float32, copy=False
        )

    def score_parts(self, contexts: Sequence[Context]) -> BasePlusSparse | None:
        """`score_many` as a BasePlusSparse when the family's scores have that form, else None."""
        return None

    def _base_plus_sparse(self, base: np.ndarray, rows: sp.csr_matrix) -> BasePlusSparse:
        """A BasePlusSparse whose shared row's order is computed once per scorer and row."""
        cached = getattr(self, "_shared_order", None)
        if cached is None or cached[0] is not base:
            cached = (base, base_order(base))
            self._shared_order = cached
        return BasePlusSparse(base, rows, order=cached[1])

    def top_k(
        self, context: Context, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best items (fewer when fewer can be ranked), best first, and their scores;
        items in `exclude` never appear."""
        scores = self.score(context)[None]
        excluded = _item_array(exclude)
        if len(excluded):
            scores = exclude_items(scores, [excluded])
        top = top_k_indices(scores[0], k)
        return top, scores[0, top]

    def params(self) -> dict:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} is not saved as arrays")

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> Scorer:
        raise NotImplementedError(f"{cls.__name__} is not loaded from arrays")


def subset(scores: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
    """`scores` of `candidates` only (all of them when None)."""
    if candidates is None:
        return scores
    return scores[_item_array(candidates)]


def sparse_rows_sum(
    matrix: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """sum_r weights[r] * matrix[rows[r]] as (columns, values), columns sorted and unique.

    Reads only the stored entries of the given rows: the cost is their number of entries (an
    item-item request: |history| x neighbours per item), not the matrix's width.
    """
    columns, values = _weighted_entries(matrix, rows, weights)
    if len(columns) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    columns, inverse = np.unique(columns, return_inverse=True)
    return columns.astype(np.int64), np.bincount(inverse.reshape(-1), weights=values)


def dense_rows_sum(matrix: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`sparse_rows_sum` as a dense float32 row over all of `matrix`'s columns (zero where no
    given row has an entry), the same float64 sums cast once.

    No sort of the entries: one bincount into the row. For an item-item request over a large
    catalog (|history| x 200 neighbours spread over 300,000 items) that is cheaper than
    `sparse_rows_sum`'s unique columns followed by a scatter into the same dense row.
    """
    columns, values = _weighted_entries(matrix, rows, weights)
    if len(columns) == 0:
        return np.zeros(matrix.shape[1], dtype=np.float32)
    return np.bincount(columns, weights=values, minlength=matrix.shape[1]).astype(np.float32)


def _weighted_entries(
    matrix: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(columns, float64 values) of every stored entry of the given rows, each row's values
    times its weight, row after row (the order both sums add them in)."""
    rows = _item_array(rows)
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    counts = ends - starts
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    positions = np.arange(int(counts.sum())) + offsets
    values = matrix.data[positions].astype(np.float64) * np.repeat(weights, counts)
    return matrix.indices[positions], values


def csr_arrays(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for an .npz file (read back with `csr_from_arrays`)."""
    return {
        f"{name}.data": matrix.data,
        f"{name}.indices": matrix.indices,
        f"{name}.indptr": matrix.indptr,
        f"{name}.shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_arrays(name: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    return sp.csr_matrix(
        (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]),
        shape=tuple(int(n) for n in arrays[f"{name}.shape"]),
    )
