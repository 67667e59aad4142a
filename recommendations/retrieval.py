"""Retrieval backends: the top-k tracks for a query vector, by inner product with the active
recommender's item vectors.

A backend is chosen once per request (`retrieval_backend(name)`: the API's `backend`
parameter, else settings.RETRIEVAL_BACKEND) and passed down as an object. Its `name` is what the
API accepts, what cache keys hold and what the `tunedin_ann_search_seconds` metric is labelled
with.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from django.conf import settings
from pgvector.django import MaxInnerProduct

from mltasks.ml.eval.topk import top_k_indices
from mltasks.models import TrackVector, padded_vector
from recommendations.serving import VectorState
from tunedin import metrics

Scored = list[tuple[int, float]]  # (track id, inner-product score), best first


class RetrievalBackend(Protocol):
    name: str

    def search(self, *, state: VectorState, query: np.ndarray, exclude: set[int], k: int) -> Scored:
        """The k best tracks for `query`, none of `exclude`."""
        ...


class ExactBackend:
    """Every item vector scored in numpy."""

    name = "exact"

    def search(self, *, state: VectorState, query: np.ndarray, exclude: set[int], k: int) -> Scored:
        scores = state.item_vectors @ query
        excluded_rows = [state.track_index[t] for t in exclude if t in state.track_index]
        scores[excluded_rows] = -np.inf
        return [(int(state.track_ids[i]), float(scores[i])) for i in top_k_indices(scores, k)]


class FaissBackend:
    """FAISS's exact inner-product index; excluded tracks are dropped from a deeper search."""

    name = "faiss"
    index_kind = "flat-ip"

    def search(self, *, state: VectorState, query: np.ndarray, exclude: set[int], k: int) -> Scored:
        index = state.faiss_index(self.index_kind)
        wanted = min(k + len(exclude), state.track_ids.shape[0])
        scores, rows = index.search(query.reshape(1, -1).astype(np.float32), wanted)
        found = [
            (int(state.track_ids[row]), float(score))
            for row, score in zip(rows[0], scores[0], strict=True)
            if row >= 0 and int(state.track_ids[row]) not in exclude
        ]
        return found[:k]


class FaissHnswBackend(FaissBackend):
    """FAISS's HNSW graph over the item vectors (approximate)."""

    name = "faiss-hnsw"
    index_kind = "hnsw-ip"


class PgvectorBackend:
    """pgvector's HNSW index over the stored item vectors, in Postgres."""

    name = "pgvector"

    def search(self, *, state: VectorState, query: np.ndarray, exclude: set[int], k: int) -> Scored:
        rows = (
            TrackVector.objects.filter(model_version_id=state.version_id)
            .exclude(track_id__in=exclude)
            .annotate(distance=MaxInnerProduct("embedding", padded_vector(query).tolist()))
            .order_by("distance", "track_id")
            .values_list("track_id", "distance")[:k]
        )
        return [(track_id, -float(distance)) for track_id, distance in rows]


class AutoBackend:
    """Exact search up to settings.RETRIEVAL_APPROXIMATE_ABOVE items, FAISS HNSW above (the
    default: exact is cheap on a small catalog, the graph keeps a large one fast; the scale
    bench reports HNSW's recall@100 against exact)."""

    name = "auto"

    def search(self, *, state: VectorState, query: np.ndarray, exclude: set[int], k: int) -> Scored:
        return self.chosen(state).search(state=state, query=query, exclude=exclude, k=k)

    @staticmethod
    def chosen(state: VectorState) -> RetrievalBackend:
        if state.track_ids.shape[0] > settings.RETRIEVAL_APPROXIMATE_ABOVE:
            return _BACKENDS[FaissHnswBackend.name]
        return _BACKENDS[ExactBackend.name]


_BACKENDS: dict[str, RetrievalBackend] = {
    backend.name: backend
    for backend in (
        AutoBackend(),
        ExactBackend(),
        FaissBackend(),
        FaissHnswBackend(),
        PgvectorBackend(),
    )
}
RETRIEVAL_BACKENDS = tuple(_BACKENDS)  # the names the API accepts


def retrieval_backend(name: str | None = None) -> RetrievalBackend:
    """The backend called `name`, settings.RETRIEVAL_BACKEND when None."""
    name = name or settings.RETRIEVAL_BACKEND
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown retrieval backend {name!r}; expected one of {RETRIEVAL_BACKENDS}"
        ) from None


def retrieve(
    *, backend: RetrievalBackend, state: VectorState, query: np.ndarray, exclude: set[int], k: int
) -> Scored:
    """`backend.search`, timed in the `tunedin_ann_search_seconds` histogram."""
    if isinstance(backend, AutoBackend):
        backend = backend.chosen(state)
    with metrics.ANN_SEARCH_SECONDS.labels(kind=state.kind, backend=backend.name).time():
        return backend.search(state=state, query=query, exclude=exclude, k=k)
