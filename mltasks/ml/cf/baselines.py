"""Classical baselines of EVALUATION.md: MostPop, ItemKNN (cosine), EASE (closed form).

Every model has `fit(train_csr) -> self` and `score(user_indices) -> (len, n_items) float32`.
`train_csr` is a user x item matrix of positives whose values are raw weights (play counts);
`weighting` turns them into training values (see `interactions.training_weights`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from mltasks.ml.data.interactions import training_weights
from mltasks.ml.eval.topk import keep_top_per_row

logger = logging.getLogger(__name__)


def weighted(matrix: sp.csr_matrix, scheme: str) -> sp.csr_matrix:
    """`matrix` with each stored value replaced by its training weight."""
    result = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    result.data = training_weights(result.data, scheme).astype(np.float32)
    return result


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
        self.train = matrix
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
        cooccurrence = (matrix.T @ matrix).tocsr().astype(np.float32)
        cooccurrence.setdiag(0)
        cooccurrence.eliminate_zeros()
        coo = cooccurrence.tocoo()
        denominator = norms[coo.row] * norms[coo.col] + self.shrink + 1e-12
        similarity = sp.csr_matrix(
            ((coo.data / denominator).astype(np.float32), (coo.row, coo.col)),
            shape=cooccurrence.shape,
        )
        # Keep, for each target item j (a column), its n_neighbors most similar items.
        self.similarity = keep_top_per_row(similarity.T.tocsr(), self.n_neighbors).T.tocsr()
        return self

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return np.asarray((self.train[user_indices] @ self.similarity).todense(), dtype=np.float32)


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


class EASE:
    """EASE (Steck 2019): B = I - P diag(1/diag P) with P = (X'X + lam I)^-1, zero diagonal.

    Exact in either form: item space (an items x items inverse) when items <= users, user space
    (Woodbury identity, a users x users inverse) otherwise; HetRec has 1,892 users and 17,632
    artists, so its EASE costs a 1,892 x 1,892 solve.
    """

    name = "EASE"

    def __init__(
        self,
        lam: float = 300.0,
        weighting: str = "binary",
        item_side: sp.csr_matrix | None = None,
        side_weight: float = 0.0,
    ):
        self.lam = lam
        self.weighting = weighting
        # Side information (Jeunen et al. 2020, "closed-form models with side-information"):
        # item features (n_items x n_features) enter the Gram matrix as extra pseudo-users, so
        # items sharing tags get similar weights even with few co-listeners.
        self.item_side = item_side
        self.side_weight = side_weight
        self.train: sp.csr_matrix | None = None
        self.item_weights: np.ndarray | None = None
        self.user_space: _EaseUserSpace | None = None

    def params(self) -> dict:
        params = {"lam": self.lam, "weighting": self.weighting}
        if self.item_side is not None and self.side_weight:
            params.update(side_weight=self.side_weight, n_side_features=self.item_side.shape[1])
        return params

    def fit(self, train_csr: sp.csr_matrix) -> EASE:
        matrix = weighted(train_csr, self.weighting).astype(np.float64)
        if self.item_side is not None and self.side_weight:
            side = sp.csr_matrix(self.item_side.T, dtype=np.float64) * self.side_weight
            matrix = sp.vstack([matrix, side]).tocsr()
        self.train = matrix
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

    def score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores for arbitrary user rows (e.g. a new user's items), weighted like training."""
        if self.user_space is not None:
            return self.user_space.score_rows(rows)
        return np.asarray(rows @ self.item_weights, dtype=np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self.score_rows(self.train[user_indices])


def factorize_scores(
    score: Callable[[np.ndarray], np.ndarray],
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
    dot-product model. S is materialised when it has at most `max_dense_entries` entries (HetRec:
    33M); otherwise every product with S re-scores the users in batches.
    """
    rng = np.random.default_rng(seed)
    users = np.arange(n_users)
    dense = None
    if n_users * n_items <= max_dense_entries:
        dense = np.vstack(
            [score(users[s : s + batch_size]) for s in range(0, n_users, batch_size)]
        ).astype(np.float32)

    def times(matrix: np.ndarray) -> np.ndarray:  # S @ matrix
        if dense is not None:
            return dense @ matrix
        return np.vstack(
            [score(users[s : s + batch_size]) @ matrix for s in range(0, n_users, batch_size)]
        )

    def transposed_times(matrix: np.ndarray) -> np.ndarray:  # S' @ matrix
        if dense is not None:
            return dense.T @ matrix
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
