"""FAISS indexes over item vectors (no ORM): exact and HNSW inner product, HNSW cosine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mltasks.ml.artifacts import faiss_index_path

FAISS_INDEX_KINDS = ("flat-ip", "hnsw-ip", "hnsw-cos")


def build_faiss_index(*, vectors: np.ndarray, kind: str, hnsw_m: int = 32):
    """`flat-ip`: exact inner product; `hnsw-ip` / `hnsw-cos`: HNSW graphs (pass unit vectors
    for cosine)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if kind == "flat-ip":
        index = faiss.IndexFlatIP(dim)
    elif kind in ("hnsw-ip", "hnsw-cos"):
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 128
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}; expected one of {FAISS_INDEX_KINDS}")
    index.add(vectors)
    return index


def write_faiss_indexes(*, item_vectors: np.ndarray, directory: Path) -> list[Path]:
    """Write every index kind for these item vectors; returns the files written."""
    import faiss

    norms = np.linalg.norm(item_vectors, axis=1, keepdims=True)
    unit = item_vectors / np.maximum(norms, 1e-12)
    written = []
    for kind in FAISS_INDEX_KINDS:
        vectors = unit if kind.endswith("cos") else item_vectors
        path = faiss_index_path(directory, kind)
        faiss.write_index(build_faiss_index(vectors=vectors, kind=kind), str(path))
        written.append(path)
    return written
