"""Factor models: score = query vector · item vector (LightGCN, EASE-SVD, the TunedIn blend)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mltasks.ml.scorers.base import Context, HistoryContext, Scorer, subset


class FactorScorer(Scorer):
    """Dot products with `item_vectors` (n_items x d).

    The query vector of a `HistoryContext` is the user's own row of `user_vectors` when the
    context names one and it is not all zeros (a user the fit saw); otherwise it is folded in as
    the mean of the vectors of the context's items, as serving folds in a user without a stored
    vector. With no usable item either, items score by `popularity` (zeros without it), the
    serving fallback for a cold user.
    """

    family = "factor"

    def __init__(
        self,
        *,
        item_vectors: np.ndarray,
        user_vectors: np.ndarray | None = None,
        popularity: np.ndarray | None = None,
    ):
        self.item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.n_items = int(self.item_vectors.shape[0])
        self.user_vectors = (
            None if user_vectors is None else np.ascontiguousarray(user_vectors, dtype=np.float32)
        )
        if self.user_vectors is not None and self.user_vectors.shape[1] != self.dim:
            raise ValueError("user and item vectors must have the same number of dimensions")
        self.popularity = (
            np.zeros(self.n_items, dtype=np.float32)
            if popularity is None
            else np.asarray(popularity, dtype=np.float32)
        )
        if self.popularity.shape != (self.n_items,):
            raise ValueError("popularity has one value per item")

    @property
    def dim(self) -> int:
        return int(self.item_vectors.shape[1])

    def query_vector(self, context: Context) -> np.ndarray | None:
        """The vector the context scores with, or None (no own vector and no known item)."""
        if isinstance(context, HistoryContext) and context.user is not None:
            own = self._user_vector(context.user)
            if own is not None:
                return own
        items = context.items[(context.items >= 0) & (context.items < self.n_items)]
        if len(items) == 0:
            return None
        return self.item_vectors[items].mean(axis=0)

    def _user_vector(self, user: int) -> np.ndarray | None:
        if self.user_vectors is None or not 0 <= user < len(self.user_vectors):
            return None
        vector = self.user_vectors[user]
        return vector if vector.any() else None

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        """Every item's score as `score_many` gives it in a batch, bit for bit; the scores of
        `candidates` only (one product with their vectors) agree with those to float32
        rounding."""
        if candidates is None:
            return self.score_many([context])[0]
        query = self.query_vector(context)
        if query is None:
            return subset(self.popularity, candidates).copy()
        return subset(self.item_vectors, candidates) @ query.astype(np.float32)

    def score_many(self, contexts: Sequence[Context]) -> np.ndarray:
        """(len(contexts), n_items): every context's query vector in one matrix product.

        One pass over the item vectors for the whole batch, where scoring context by context
        reads all of them once per context (at 300,000 items x 64 dimensions, 77 MB each time).
        Contexts without a query vector get `popularity`.

        A context's row does not depend on the others in its batch, bit for bit (the ranker's
        features of a request are those evaluation computed): the product is always a matrix
        product of at least two query rows (a single query is doubled), whose rows BLAS
        computes alike whatever their number, while a one-row product goes to a
        matrix-vector kernel that rounds differently.
        """
        block = np.empty((len(contexts), self.n_items), dtype=np.float32)
        queries = [self.query_vector(context) for context in contexts]
        known = [i for i, query in enumerate(queries) if query is not None]
        if known:
            rows = [queries[i] for i in known]
            matrix = np.vstack(rows if len(rows) > 1 else rows * 2).astype(np.float32, copy=False)
            block[known] = (matrix @ self.item_vectors.T)[: len(known)]
        cold = [i for i, query in enumerate(queries) if query is None]
        block[cold] = self.popularity
        return block

    def params(self) -> dict:
        return {"dim": self.dim, "has_user_vectors": self.user_vectors is not None}

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"item_vectors": self.item_vectors, "popularity": self.popularity}
        if self.user_vectors is not None:
            arrays["user_vectors"] = self.user_vectors
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> FactorScorer:
        return cls(
            item_vectors=arrays["item_vectors"],
            user_vectors=arrays.get("user_vectors"),
            popularity=arrays.get("popularity"),
        )
