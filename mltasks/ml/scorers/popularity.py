"""MostPop as a scorer: every context gets the items by how many training interactions they
have (the baseline every served pipeline must beat, and the fallback of a cold request)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mltasks.ml.scorers.base import BasePlusSparse, Context, Scorer, subset


class PopularityScorer(Scorer):
    """score(i) = `popularity[i]` whatever the context."""

    family = "popularity"

    def __init__(self, *, popularity: np.ndarray):
        self.popularity = np.asarray(popularity, dtype=np.float32).reshape(-1)
        self.n_items = int(self.popularity.shape[0])

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        return subset(self.popularity, candidates).copy()

    def score_many(self, contexts) -> np.ndarray:
        return np.tile(self.popularity, (len(contexts), 1))

    def score_parts(self, contexts) -> BasePlusSparse:
        """The popularity row, shared by every context (no entry of its own)."""
        return self._base_plus_sparse(
            self.popularity, sp.csr_matrix((len(contexts), self.n_items), dtype=np.float32)
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> PopularityScorer:
        return cls(popularity=arrays["popularity"])
