"""Serving state: the active model version's vectors, loaded once per process.

Each web process keeps the active version's item vectors (and its FAISS indexes) in memory
and checks at most every `ACTIVE_VERSION_CHECK_SECONDS` whether another version became
active; a new state is built beside the old one and swapped in with one assignment, so a
request never sees half a model and never waits on training. User vectors are read from
pgvector per request (they change with online fold-in, which every process must see).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mltasks.models import ModelVersion

ACTIVE_VERSION_CHECK_SECONDS = 5.0
VECTORS_FILE = "vectors.npz"
META_FILE = "serving.json"


@dataclass
class VectorState:
    """Item-side serving data of one model version."""

    version_id: int
    kind: str
    algorithm: str
    track_ids: np.ndarray  # (n_items,) catalog track primary keys
    item_vectors: np.ndarray  # (n_items, d) float32: score = user_vector · item_vector
    directory: Path
    meta: dict = field(default_factory=dict)
    user_ids: np.ndarray | None = None  # (n_users,) user primary keys, as trained
    user_vectors: np.ndarray | None = None  # (n_users, d) float32, as trained
    _derived: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.track_index = {int(t): i for i, t in enumerate(self.track_ids)}
        users = self.user_ids if self.user_ids is not None else []
        self.user_index = {int(u): i for i, u in enumerate(users)}
        norms = np.linalg.norm(self.item_vectors, axis=1, keepdims=True)
        self.unit_item_vectors = self.item_vectors / np.maximum(norms, 1e-12)

    @property
    def dim(self) -> int:
        return int(self.item_vectors.shape[1])

    def derived(self, name: str, build):
        """A value computed once per model version and process (indexes, centroids, models)."""
        with self._lock:
            if name not in self._derived:
                self._derived[name] = build()
            return self._derived[name]

    def continuation_model(self):
        """The served sequence model and its item -> artist-index array (loaded on first use)."""

        def load():
            from mltasks.ml.seq.continuation import load_artifact

            artifact = load_artifact(self.directory)
            return artifact.served_model, artifact.item_artist

        return self.derived("model", load)

    def faiss_index(self, name: str):
        """`hnsw-ip` / `flat-ip` over item vectors, `hnsw-cos` over unit vectors (lazy)."""

        def load():
            import faiss

            path = self.directory / f"items.{name}.faiss"
            if path.exists():
                index = faiss.read_index(str(path))
            else:
                from mltasks.indexes import build_faiss_index

                vectors = self.unit_item_vectors if name.endswith("cos") else self.item_vectors
                index = build_faiss_index(vectors=vectors, kind=name)
            if hasattr(index, "hnsw"):
                index.hnsw.efSearch = 256
            return index

        return self.derived(f"faiss:{name}", load)


def load_vector_state(version: ModelVersion) -> VectorState:
    directory = Path(version.artifact_path)
    with np.load(directory / VECTORS_FILE) as arrays:
        track_ids = arrays["track_ids"].astype(np.int64)
        item_vectors = np.ascontiguousarray(arrays["item_vectors"], dtype=np.float32)
        user_ids = arrays["user_ids"].astype(np.int64) if "user_ids" in arrays else None
        user_vectors = (
            arrays["user_vectors"].astype(np.float32) if "user_vectors" in arrays else None
        )
    meta_path = directory / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return VectorState(
        version_id=version.pk,
        kind=version.kind,
        algorithm=version.algorithm,
        track_ids=track_ids,
        item_vectors=item_vectors,
        directory=directory,
        meta=meta,
        user_ids=user_ids,
        user_vectors=user_vectors,
    )


class _ActiveStates:
    def __init__(self):
        self._states: dict[str, VectorState | None] = {}
        self._checked_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, kind: str) -> VectorState | None:
        now = time.monotonic()
        if now - self._checked_at.get(kind, -1e9) < ACTIVE_VERSION_CHECK_SECONDS:
            return self._states.get(kind)
        with self._lock:
            active = (
                ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE)
                .only("pk", "kind", "algorithm", "artifact_path")
                .first()
            )
            current = self._states.get(kind)
            if active is None:
                self._states[kind] = None
            elif current is None or current.version_id != active.pk:
                try:
                    self._states[kind] = load_vector_state(active)
                except (OSError, KeyError, ValueError):
                    # Artifacts missing on this host: keep what we had (or nothing).
                    self._states[kind] = current
            self._checked_at[kind] = now
            return self._states.get(kind)

    def reset(self) -> None:
        with self._lock:
            self._states.clear()
            self._checked_at.clear()

    def loaded_kinds(self) -> dict[str, bool]:
        return {kind: self._states.get(kind) is not None for kind in ModelVersion.Kind.values}


active_states = _ActiveStates()


def active_state(kind: str) -> VectorState | None:
    return active_states.get(kind)


def loaded_kinds() -> dict[str, bool]:
    return active_states.loaded_kinds()
