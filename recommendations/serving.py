"""Serving state: the active model versions, loaded whole, once per process.

A version's state is everything a request reads of it: the served pipeline (any scorer of
mltasks.ml.scorers: item-item, sequence, neural, factor, or the learned ranker over several),
the vectors of its factor / neural model, the FAISS indexes, the artist centroids. It is built
beside the old one and swapped in with one assignment, so a request never sees half a model and
never waits on training.

A web worker loads every active version at boot and then follows activations with a watcher
thread (`serving_watch_start`, from gunicorn's post_worker_init): every few seconds it reads the
active version ids (one query) and loads whatever changed before a request asks for it; requests
only read what is in memory. A process without a watcher (tests, runserver, Celery, commands)
checks on the request path instead, at most every `ACTIVE_VERSION_CHECK_SECONDS`.
User vectors are read from pgvector per request (they change with online fold-in, which every
process must see).

While an interleaved A/B test runs (mltasks.models.InterleavingTest), the process also holds its
challenger's state, loaded the same way and followed the same way (`interleaving_tests`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.db import close_old_connections

from catalog.models import Track
from mltasks.artifact_store import artifact_directory_of
from mltasks.indexes import build_faiss_index
from mltasks.ml.artifacts import (
    ServingVectors,
    faiss_index_path,
    load_continuation_artifact,
    load_served_scorer,
    load_serving_vectors,
)
from mltasks.models import InterleavingTest, ModelVersion

logger = logging.getLogger(__name__)

ACTIVE_VERSION_CHECK_SECONDS = 5.0
INTERLEAVING_CHECK_SECONDS = 5.0  # how stale a process's view of the running test may get
# The FAISS indexes requests search, by kind (retrieval backends, similar tracks, continuation).
SERVED_FAISS_INDEXES = {
    ModelVersion.Kind.RECOMMENDER: ("flat-ip", "hnsw-ip", "hnsw-cos"),
    ModelVersion.Kind.CONTINUATION: ("hnsw-ip",),
}


@dataclass
class VectorState:
    """Item-side serving data of one model version (user vectors as trained, for fold-in)."""

    version_id: int
    kind: str
    algorithm: str
    vectors: ServingVectors
    directory: Path
    _derived: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.track_index = {int(t): i for i, t in enumerate(self.track_ids)}
        users = self.vectors.user_ids if self.vectors.has_users else []
        self.user_index = {int(u): i for i, u in enumerate(users)}
        norms = np.linalg.norm(self.item_vectors, axis=1, keepdims=True)
        self.unit_item_vectors = self.item_vectors / np.maximum(norms, 1e-12)

    @property
    def track_ids(self) -> np.ndarray:
        """(n_items,) catalog track primary keys."""
        return self.vectors.track_ids

    @property
    def item_vectors(self) -> np.ndarray:
        """(n_items, d) float32: score = user vector · item vector."""
        return self.vectors.item_vectors

    @property
    def user_vectors(self) -> np.ndarray | None:
        """(n_users, d) float32 as trained, rows by `user_index`."""
        return self.vectors.user_vectors

    @property
    def dim(self) -> int:
        return self.vectors.dim

    def derived(self, name: str, build):
        """A value computed once per model version and process (indexes, centroids, models)."""
        with self._lock:
            if name not in self._derived:
                self._derived[name] = build()
            return self._derived[name]

    def continuation_model(self):
        """The served sequence model and its item -> artist-index array (loaded on first use)."""

        def load():
            artifact = load_continuation_artifact(self.directory)
            return artifact.served_model, artifact.item_artist

        return self.derived("model", load)

    def pipeline(self):
        """The version's served pipeline (a mltasks.ml.scorers Scorer over this state's track
        order), None for a version that saved none (its vectors are its model)."""
        return self.derived("pipeline", lambda: load_served_scorer(self.directory))

    def faiss_index(self, name: str):
        """`hnsw-ip` / `flat-ip` over item vectors, `hnsw-cos` over unit vectors (lazy)."""

        def load():
            import faiss

            path = faiss_index_path(self.directory, name)
            if path.exists():
                index = faiss.read_index(str(path))
            else:
                vectors = self.unit_item_vectors if name.endswith("cos") else self.item_vectors
                index = build_faiss_index(vectors=vectors, kind=name)
            if hasattr(index, "hnsw"):
                index.hnsw.efSearch = 256
            return index

        return self.derived(f"faiss:{name}", load)

    def artist_centroids(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted artist ids, unit mean of each artist's unit item vectors); -1 = unknown."""

        def load():
            artist_of = dict(
                Track.objects.filter(pk__in=self.track_ids.tolist()).values_list("pk", "artist_id")
            )
            artist_ids = np.array([artist_of.get(int(t), -1) for t in self.track_ids])
            unique_artists, inverse = np.unique(artist_ids, return_inverse=True)
            centroids = np.zeros((len(unique_artists), self.dim), dtype=np.float32)
            np.add.at(centroids, inverse, self.unit_item_vectors)
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
            return unique_artists, centroids

        return self.derived("artist-centroids", load)

    def preload(self) -> VectorState:
        """Load now what requests would otherwise load on first use."""
        for name in SERVED_FAISS_INDEXES.get(self.kind, ()):
            self.faiss_index(name)
        self.pipeline()
        if self.kind == ModelVersion.Kind.CONTINUATION:
            self.continuation_model()
        else:
            self.artist_centroids()
        return self


def load_vector_state(version: ModelVersion) -> VectorState:
    """The version's whole serving state, loaded (OSError, KeyError or ValueError when its
    artifacts are missing or broken)."""
    directory = artifact_directory_of(version_id=version.pk, artifact_path=version.artifact_path)
    return VectorState(
        version_id=version.pk,
        kind=version.kind,
        algorithm=version.algorithm,
        vectors=load_serving_vectors(directory),
        directory=directory,
    ).preload()


class _ActiveStates:
    def __init__(self):
        self._states: dict[str, VectorState | None] = {}
        self._checked_at: dict[str, float] = {}
        self._failed: dict[str, int] = {}  # kind -> the version id that would not load
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    def get(self, kind: str) -> VectorState | None:
        if self._watcher is not None:
            return self._states.get(kind)  # kept current by the watcher: no query here
        now = time.monotonic()
        if now - self._checked_at.get(kind, -1e9) < ACTIVE_VERSION_CHECK_SECONDS:
            return self._states.get(kind)
        active = (
            ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE)
            .only("pk", "kind", "algorithm", "artifact_path")
            .first()
        )
        with self._lock:
            self._follow(kind, active)
            self._checked_at[kind] = now
            return self._states.get(kind)

    def refresh(self) -> dict[str, int | None]:
        """Load every kind's active version that is not loaded yet (one query); returns
        `served_versions()`."""
        active = {
            version.kind: version
            for version in ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).only(
                "pk", "kind", "algorithm", "artifact_path"
            )
        }
        with self._lock:
            for kind in ModelVersion.Kind.values:
                self._follow(kind, active.get(kind))
                self._checked_at[kind] = time.monotonic()
        return self.served_versions()

    def _follow(self, kind: str, active: ModelVersion | None) -> None:
        """Serve `active` (None: no model), loading it unless it is loaded already."""
        current = self._states.get(kind)
        if active is None:
            self._states[kind] = None
            return
        if current is not None and current.version_id == active.pk:
            return
        try:
            state = load_vector_state(active)
        except Exception:
            # Artifacts missing or broken on this host: keep what we had (or nothing).
            if self._failed.get(kind) != active.pk:
                logger.warning(
                    "model version %s (%s) could not be loaded", active.pk, kind, exc_info=True
                )
                self._failed[kind] = active.pk
            return
        self._states[kind] = state
        self._failed.pop(kind, None)
        logger.info("serving model version %s (%s)", active.pk, kind)

    def watch(self, *, interval_s: float) -> None:
        """Load every active version now, then follow activations from a daemon thread."""
        if self._watcher is not None:
            return
        try:
            self.refresh()
            interleaving_tests.refresh()
        except Exception:
            logger.warning("serving models not loaded at start", exc_info=True)
        finally:
            close_old_connections()
        interleaving_tests.watched = True
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._watch, args=(interval_s,), name="serving-watcher", daemon=True
        )
        self._watcher.start()

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
                interleaving_tests.refresh()
            except Exception:
                logger.warning("active model versions not checked", exc_info=True)
            finally:
                close_old_connections()  # this thread's connection, as after a request

    def unwatch(self) -> None:
        """Stop the watcher thread (tests); requests check on their own again."""
        watcher, self._watcher = self._watcher, None
        interleaving_tests.watched = False
        if watcher is not None:
            self._stop.set()
            watcher.join(timeout=30)

    def reset(self) -> None:
        with self._lock:
            self._states.clear()
            self._checked_at.clear()
            self._failed.clear()

    def served_versions(self) -> dict[str, int | None]:
        """{kind: the version id this process serves, None when it serves none}."""
        states = dict(self._states)
        return {
            kind: (state.version_id if (state := states.get(kind)) is not None else None)
            for kind in ModelVersion.Kind.values
        }


active_states = _ActiveStates()


# ----------------------------------------------------------------------------- interleaving


@dataclass(frozen=True)
class ServedInterleavingTest:
    """The running interleaved test as serving needs it (mltasks.models.InterleavingTest)."""

    test_id: int
    control_id: int
    challenger_id: int
    share: float


class _InterleavingTests:
    """The running test and its challenger's serving state, per process.

    The test is read with one query at most every INTERLEAVING_CHECK_SECONDS on the request
    path, or by the watcher thread where one runs (which also loads the challenger before a
    request asks for it); a start, stop or promotion in this process is followed at once
    (mltasks.interleaving_signals). The challenger is loaded like an active version
    (`load_vector_state`), once per process, and dropped when its test ends.
    """

    def __init__(self):
        self._running: ServedInterleavingTest | None = None
        self._checked_at = -1e9
        self._challengers: dict[int, VectorState] = {}
        self._failed: set[int] = set()
        self._lock = threading.Lock()
        self.watched = False

    def running(self) -> ServedInterleavingTest | None:
        if not self.watched and time.monotonic() - self._checked_at >= INTERLEAVING_CHECK_SECONDS:
            self.refresh()
        return self._running

    def refresh(self) -> ServedInterleavingTest | None:
        """Read the running test (one query); preload its challenger where a watcher runs."""
        row = (
            InterleavingTest.objects.filter(status=InterleavingTest.Status.RUNNING)
            .values_list("pk", "control_id", "challenger_id", "share")
            .first()
        )
        running = None if row is None else ServedInterleavingTest(*row)
        with self._lock:
            self._running = running
            self._checked_at = time.monotonic()
            keep = set() if running is None else {running.challenger_id}
            for version_id in set(self._challengers) - keep:
                del self._challengers[version_id]
            self._failed &= keep
        if running is not None and self.watched:
            self.challenger_state(running)
        return running

    def challenger_state(self, test: ServedInterleavingTest) -> VectorState | None:
        """The challenger's serving state (loaded on first use; None when it cannot load)."""
        state = self._challengers.get(test.challenger_id)
        if state is not None or test.challenger_id in self._failed:
            return state
        with self._lock:
            if (state := self._challengers.get(test.challenger_id)) is not None:
                return state
            version = (
                ModelVersion.objects.filter(pk=test.challenger_id)
                .only("pk", "kind", "algorithm", "artifact_path")
                .first()
            )
            try:
                if version is None:
                    raise KeyError(f"model version {test.challenger_id} no longer exists")
                state = load_vector_state(version)
            except Exception:
                logger.warning(
                    "challenger version %s of interleaving test %s could not be loaded",
                    test.challenger_id, test.test_id, exc_info=True,
                )  # fmt: skip
                self._failed.add(test.challenger_id)
                return None
            self._challengers[test.challenger_id] = state
            logger.info("serving challenger version %s (test %s)", state.version_id, test.test_id)
            return state

    def reset(self) -> None:
        with self._lock:
            self._running = None
            self._checked_at = -1e9
            self._challengers.clear()
            self._failed.clear()


interleaving_tests = _InterleavingTests()


def running_interleaving_test() -> ServedInterleavingTest | None:
    """The interleaved test that runs now, as this process last read it (within seconds)."""
    return interleaving_tests.running()


def interleaving_challenger_state(test: ServedInterleavingTest) -> VectorState | None:
    return interleaving_tests.challenger_state(test)


def interleaving_test_changed_receiver(sender, **kwargs) -> None:
    """A test started, stopped or was promoted in this process: follow it now (other processes
    follow within the watcher's interval). Connected in RecommendationsConfig.ready()."""
    interleaving_tests.refresh()


def active_state(kind: str) -> VectorState | None:
    return active_states.get(kind)


def served_versions() -> dict[str, int | None]:
    return active_states.served_versions()


def serving_watch_start(*, interval_s: float) -> None:
    """Load the active versions now and follow activations (a web worker, once at boot)."""
    active_states.watch(interval_s=interval_s)
