"""An interaction log in plain arrays, and the user x item matrices built from it.

Weighting (what counts as a positive, and how strongly it trains):

- Every row is one (user, item, weight[, timestamp]) event. ``weight > 0`` is a positive: a play
  count (HetRec's ``weight`` column is the number of plays), a like (the Django side sends a like as
  weight 1), an add-to-playlist. ``weight <= 0`` encodes a skip or a dislike: such rows are kept in
  the log (a future model may use them as explicit negatives) but are never positives, never test
  items and never training signal here.
- Repeated (user, item) rows are merged: a pair is one positive, whatever its number of events
  (EVALUATION.md: "any positive interaction counts once"); merged weights add up.
- Relevance of a held-out item is always binary. Play counts may only *weight training*:
  ``training_weights(..., scheme="log")`` gives ``1 + log(weight)`` so a 10,000-play artist counts
  about 10x a single play instead of 10,000x (``"binary"`` gives 1 for every positive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

WEIGHT_SCHEMES = ("binary", "log")


@dataclass
class IdIndex:
    """A bijection between raw ids (ints or strings) and contiguous indices 0..n-1."""

    ids: np.ndarray
    _positions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids)
        self._positions = {raw_id: index for index, raw_id in enumerate(self.ids.tolist())}
        if len(self._positions) != len(self.ids):
            raise ValueError("ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, raw_ids) -> np.ndarray:
        """Indices of `raw_ids`; raises KeyError on an unknown id."""
        return np.fromiter(
            (self._positions[raw_id] for raw_id in np.asarray(raw_ids).tolist()),
            dtype=np.int64,
            count=len(raw_ids),
        )

    def get(self, raw_id, default: int = -1) -> int:
        return self._positions.get(raw_id, default)


@dataclass
class Interactions:
    """An interaction log. Arrays are parallel, one entry per event.

    `user_ids`/`item_ids` hold raw ids; `users`/`items` map them to contiguous indices. The
    mappings may list users or items that have no event (e.g. catalog artists nobody played), so
    `n_items` is the catalog size used for full ranking.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray | None = None
    users: IdIndex | None = None
    items: IdIndex | None = None

    def __post_init__(self) -> None:
        self.user_ids = np.asarray(self.user_ids)
        self.item_ids = np.asarray(self.item_ids)
        self.weights = np.asarray(self.weights, dtype=np.float64)
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        lengths = {len(self.user_ids), len(self.item_ids), len(self.weights)}
        if self.timestamps is not None:
            lengths.add(len(self.timestamps))
        if len(lengths) != 1:
            raise ValueError("user_ids, item_ids, weights (and timestamps) must have equal length")
        if self.users is None:
            self.users = IdIndex(_sorted_unique(self.user_ids))
        if self.items is None:
            self.items = IdIndex(_sorted_unique(self.item_ids))
        self.user_index = self.users.index_of(self.user_ids)
        self.item_index = self.items.index_of(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return len(self.weights)

    def positive_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unique positive (user index, item index, summed weight), sorted by user then item."""
        keep = self.weights > 0
        return merge_pairs(
            self.user_index[keep], self.item_index[keep], self.weights[keep], self.n_items
        )

    def to_csr(self, scheme: str = "binary") -> sp.csr_matrix:
        """The n_users x n_items matrix of positives, weighted by `scheme`."""
        users, items, weights = self.positive_pairs()
        return build_csr(
            users, items, training_weights(weights, scheme), self.n_users, self.n_items
        )


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    try:
        return np.unique(values)
    except TypeError:  # mixed types: keep first-seen order
        return np.array(list(dict.fromkeys(values.tolist())), dtype=object)


def merge_pairs(
    users: np.ndarray, items: np.ndarray, weights: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge repeated (user, item) pairs, summing weights; output sorted by (user, item)."""
    keys = users.astype(np.int64) * n_items + items.astype(np.int64)
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=weights, minlength=len(unique_keys))
    return unique_keys // n_items, unique_keys % n_items, summed


def training_weights(weights: np.ndarray, scheme: str = "binary") -> np.ndarray:
    """Per-positive training weight: 1 (`binary`) or 1 + log(weight) (`log`, weights >= 1)."""
    if scheme == "binary":
        return np.ones(len(weights), dtype=np.float64)
    if scheme == "log":
        return 1.0 + np.log(np.maximum(weights, 1.0))
    raise ValueError(f"unknown weight scheme {scheme!r}; choose from {WEIGHT_SCHEMES}")


def build_csr(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """A float32 CSR matrix with duplicate entries summed and indices sorted."""
    matrix = sp.csr_matrix(
        (np.asarray(values, dtype=np.float32), (users, items)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix
