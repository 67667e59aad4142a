"""A model version's artifact files: the one place that names, writes and reads them (no Django).

A version's directory holds
- `VECTORS_FILE`: its `ServingVectors`, what every web process loads to serve it;
- `items.<kind>.faiss` (`faiss_index_path`): FAISS indexes over the item vectors;
- `MODEL_VERSION_FILE`: the version's id, kind and metrics;
- the user recommender's full result as `RECOMMENDER_ARTIFACT`.npz / .json
  (`save_recommender_artifact`), or the continuation model (`save_continuation_artifact`:
  `CONTINUATION_ARTIFACT_FILE`, `CONTINUATION_MODEL_FOLDER`, `CONTINUATION_EMBEDDINGS_FILE`);
- any scorer of mltasks.ml.scorers (`save_scorer` / `load_scorer`, one directory each):
  `SCORER_FILE` (family and parameters), `SCORER_ARRAYS_FILE` and, for a neural scorer, the
  network in `SCORER_MODEL_FOLDER`.

Nothing is pickled: arrays go to .npz / .npy, the rest to JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mltasks.ml.jsonable import json_default
from mltasks.ml.scorers.base import Scorer
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.ml.scorers.item_item import ItemItemScorer
from mltasks.ml.scorers.neural import NeuralSequenceScorer
from mltasks.ml.scorers.popularity import PopularityScorer
from mltasks.ml.scorers.sequence import MarkovScorer, SessionKNNScorer

if TYPE_CHECKING:
    from mltasks.ml.cf.recommender import RecommenderResult
    from mltasks.ml.seq.continuation import ContinuationResult

VECTORS_FILE = "vectors.npz"
MODEL_VERSION_FILE = "model_version.json"
RECOMMENDER_ARTIFACT = "recommender"
CONTINUATION_ARTIFACT_FILE = "artifact.json"
CONTINUATION_MODEL_FOLDER = "model"
CONTINUATION_EMBEDDINGS_FILE = "item_embeddings.npy"
SERVED_PIPELINE_FOLDER = "pipeline"  # a version's served scorer (`save_scorer`)
SCORER_FILE = "scorer.json"
SCORER_ARRAYS_FILE = "scorer.npz"
SCORER_MODEL_FOLDER = "model"
SCORER_COMPONENTS_FOLDER = "components"  # a ranker's scorers, one folder each
SCORER_BOOSTER_FILE = "ranker.txt"  # a ranker's LightGBM model (its text format)
# The scorers saved as arrays alone, by family (a neural scorer also has its network).
SCORER_FAMILIES: dict[str, type[Scorer]] = {
    scorer.family: scorer
    for scorer in (FactorScorer, ItemItemScorer, MarkovScorer, SessionKNNScorer, PopularityScorer)
}
RANKER_FAMILY = "ranker"  # mltasks.ml.scorers.ranker.RankerPipeline (imports LightGBM)


def faiss_index_path(directory: str | Path, kind: str) -> Path:
    """Where the FAISS index of `kind` (mltasks.indexes.FAISS_INDEX_KINDS) is written."""
    return Path(directory) / f"items.{kind}.faiss"


# ----------------------------------------------------------------------------- serving vectors


@dataclass(frozen=True, eq=False)
class ServingVectors:
    """What serving reads of a model version: item vectors by catalog track id and, for the
    user recommender, user vectors by user id (score = user vector · item vector).

    Arrays are normalised on creation: ids to int64, vectors to C-contiguous float32.
    """

    track_ids: np.ndarray  # (n_items,)
    item_vectors: np.ndarray  # (n_items, d)
    user_ids: np.ndarray | None = None  # (n_users,)
    user_vectors: np.ndarray | None = None  # (n_users, d)

    def __post_init__(self):
        track_ids = np.asarray(self.track_ids).astype(np.int64, copy=False)
        item_vectors = np.ascontiguousarray(self.item_vectors, dtype=np.float32)
        _check_rows(ids=track_ids, vectors=item_vectors, what="track")
        object.__setattr__(self, "track_ids", track_ids)
        object.__setattr__(self, "item_vectors", item_vectors)
        if (self.user_ids is None) != (self.user_vectors is None):
            raise ValueError("user_ids and user_vectors come together (or not at all)")
        if self.user_ids is None:
            return
        user_ids = np.asarray(self.user_ids).astype(np.int64, copy=False)
        user_vectors = np.ascontiguousarray(self.user_vectors, dtype=np.float32)
        _check_rows(ids=user_ids, vectors=user_vectors, what="user")
        if user_vectors.shape[1] != item_vectors.shape[1]:
            raise ValueError(
                f"user vectors have {user_vectors.shape[1]} dimensions, "
                f"item vectors {item_vectors.shape[1]}"
            )
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "user_vectors", user_vectors)

    @property
    def dim(self) -> int:
        return int(self.item_vectors.shape[1])

    @property
    def has_users(self) -> bool:
        return self.user_ids is not None


def _check_rows(*, ids: np.ndarray, vectors: np.ndarray, what: str) -> None:
    if ids.ndim != 1 or vectors.ndim != 2 or ids.shape[0] != vectors.shape[0]:
        raise ValueError(
            f"{what} ids {ids.shape} and vectors {vectors.shape} must be (n,) and (n, d)"
        )


def save_serving_vectors(vectors: ServingVectors, directory: str | Path) -> Path:
    """Write `VECTORS_FILE` into `directory`; returns its path."""
    path = Path(directory) / VECTORS_FILE
    arrays = {"track_ids": vectors.track_ids, "item_vectors": vectors.item_vectors}
    if vectors.has_users:
        arrays |= {"user_ids": vectors.user_ids, "user_vectors": vectors.user_vectors}
    np.savez(path, **arrays)
    return path


def load_serving_vectors(directory: str | Path) -> ServingVectors:
    """Read what `save_serving_vectors` wrote (OSError when missing, KeyError when broken)."""
    with np.load(Path(directory) / VECTORS_FILE) as arrays:
        has_users = "user_ids" in arrays and "user_vectors" in arrays
        return ServingVectors(
            track_ids=arrays["track_ids"],
            item_vectors=arrays["item_vectors"],
            user_ids=arrays["user_ids"] if has_users else None,
            user_vectors=arrays["user_vectors"] if has_users else None,
        )


# ----------------------------------------------------------------------------- user recommender

_RECOMMENDER_ARRAYS = ("user_vectors", "item_vectors", "user_ids", "item_ids", "popularity")
_RECOMMENDER_CONTENT_ARRAYS = ("content_vectors", "content_components", "content_idf")
_RECOMMENDER_REPORT = ("served_model", "fitted_on", "history", "timings", "split", "seed", "config")


def save_recommender_artifact(result: RecommenderResult, path: str | Path) -> Path:
    """Write `<path>.npz` (arrays) and `<path>.json` (metadata); returns the npz path."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".npz", ".json") else path
    base.parent.mkdir(parents=True, exist_ok=True)
    arrays = {key: getattr(result, key) for key in _RECOMMENDER_ARRAYS}
    arrays |= {
        "user_ids": _portable_ids(result.user_ids),
        "item_ids": _portable_ids(result.item_ids),
    }
    if result.content_vectors is not None:
        arrays |= {key: getattr(result, key) for key in _RECOMMENDER_CONTENT_ARRAYS}
    npz_path = base.with_suffix(".npz")
    np.savez(npz_path, **arrays)
    metadata = result.metadata()
    metadata["id_kinds"] = {
        "user_ids": result.user_ids.dtype.kind,
        "item_ids": result.item_ids.dtype.kind,
    }
    base.with_suffix(".json").write_text(json.dumps(metadata, indent=1, default=json_default))
    return npz_path


def load_recommender_artifact(path: str | Path) -> RecommenderResult:
    """Read what `save_recommender_artifact` wrote (ids come back as int64 or str arrays)."""
    # Imported here: the CF models pull in torch, which loading serving vectors does not need.
    from mltasks.ml.cf.recommender import ModelReport, RecommenderResult

    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".npz", ".json") else path
    metadata = json.loads(base.with_suffix(".json").read_text())
    with np.load(base.with_suffix(".npz"), allow_pickle=False) as arrays:
        data = {key: arrays[key] for key in arrays.files}
    models = [
        ModelReport(**{k: v for k, v in m.items() if k in ModelReport.__dataclass_fields__})
        for m in metadata["models"]
    ]
    return RecommenderResult(
        **{key: data[key] for key in _RECOMMENDER_ARRAYS},
        **{key: data.get(key) for key in _RECOMMENDER_CONTENT_ARRAYS},
        **{key: metadata[key] for key in _RECOMMENDER_REPORT},
        tag_names=metadata.get("tag_names", []),
        models=models,
        served_params=metadata.get("served_params", {}),
        selection=metadata.get("selection", {}),
        served_test=metadata.get("served_test", {}),
        vectors_model=metadata.get("vectors_model", ""),
        ranker=metadata.get("ranker", {}),
    )


def _portable_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return ids.astype(str)


# ----------------------------------------------------------------------------- continuation

_CONTINUATION_REPORT = ("metrics", "history", "timings", "params", "split_summary", "seed")
_CONTINUATION_SELECTION = ("selection", "ranker", "vectors_model_name")


def save_continuation_artifact(result: ContinuationResult, directory: str | Path) -> Path:
    """Write the served model (state_dict + JSON config), item ids/embeddings and the report."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result.served_model.save(directory / CONTINUATION_MODEL_FOLDER)
    if result.served_scorer is not None:
        save_scorer(result.served_scorer, directory / SERVED_PIPELINE_FOLDER)
    np.save(
        directory / CONTINUATION_EMBEDDINGS_FILE,
        result.output_item_embeddings.astype(np.float32),
    )
    payload = {
        "served_model_name": result.served_model_name,
        # Which target each sequence's validation case had: a later run's activation check
        # counts how many of its own validation cases this model chose its epoch on.
        "valid_targets": None if result.split is None else _valid_targets(result.split),
        "item_ids": result.item_ids.tolist(),
        "item_artist": None if result.item_artist is None else result.item_artist.tolist(),
        "artist_ids": None if result.artist_ids is None else result.artist_ids.tolist(),
        **{key: getattr(result, key) for key in _CONTINUATION_REPORT},
        **{key: getattr(result, key) for key in _CONTINUATION_SELECTION},
    }
    (directory / CONTINUATION_ARTIFACT_FILE).write_text(
        json.dumps(payload, indent=1, default=json_default)
    )
    return directory


def _valid_targets(split) -> dict[str, str]:
    cases = split.valid
    return {
        str(sequence_id): str(split.item_ids[target])
        for sequence_id, target in zip(cases.sequence_ids.tolist(), cases.targets, strict=True)
    }


def load_continuation_valid_targets(directory: str | Path) -> dict[str, str] | None:
    """{sequence id: validation target item id} of the run that saved the artifact, or None
    when it did not record them."""
    payload = json.loads((Path(directory) / CONTINUATION_ARTIFACT_FILE).read_text())
    return payload.get("valid_targets")


def load_continuation_artifact(directory: str | Path) -> ContinuationResult:
    """Inverse of save_continuation_artifact; `models` holds only the vectors model, no test
    rankings and no served scorer (`load_served_scorer` reads it)."""
    # Imported here: the sequence models pull in torch, which loading serving vectors does not
    # need (a web process pays for it when it first continues a sequence).
    from mltasks.ml.seq.continuation import ContinuationResult, load_neural_model

    directory = Path(directory)
    payload = json.loads((directory / CONTINUATION_ARTIFACT_FILE).read_text())
    model = load_neural_model(directory / CONTINUATION_MODEL_FOLDER)
    item_ids = np.array(payload["item_ids"], dtype=str)
    item_artist = payload["item_artist"]
    artist_ids = payload["artist_ids"]
    return ContinuationResult(
        served_model_name=payload["served_model_name"],
        served_model=model,
        output_item_embeddings=model.output_item_embeddings,
        item_ids=item_ids,
        item_index={item_id: index for index, item_id in enumerate(item_ids.tolist())},
        item_artist=None if item_artist is None else np.array(item_artist, dtype=np.int64),
        artist_ids=None if artist_ids is None else np.array(artist_ids, dtype=str),
        **{key: payload[key] for key in _CONTINUATION_REPORT},
        **{key: payload[key] for key in _CONTINUATION_SELECTION if key in payload},
        models={payload.get("vectors_model_name") or payload["served_model_name"]: model},
    )


def load_served_scorer(directory: str | Path) -> Scorer | None:
    """The served pipeline a version saved under `SERVED_PIPELINE_FOLDER`, None when it saved
    none (a version from before pipelines: serve its vectors)."""
    folder = Path(directory) / SERVED_PIPELINE_FOLDER
    if not (folder / SCORER_FILE).exists():
        return None
    return load_scorer(folder)


# ----------------------------------------------------------------------------- scorers


def save_scorer(scorer: Scorer, directory: str | Path) -> Path:
    """Write `scorer` into `directory` (created if needed); `load_scorer` reads it back."""
    savable = scorer.family in SCORER_FAMILIES or scorer.family == RANKER_FAMILY
    if not savable and not isinstance(scorer, NeuralSequenceScorer):
        raise ValueError(f"a {type(scorer).__name__} cannot be saved (family {scorer.family!r})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(scorer, NeuralSequenceScorer):
        scorer.model.save(directory / SCORER_MODEL_FOLDER)
    if scorer.family == RANKER_FAMILY:
        for position, component in enumerate(scorer.scorers.values()):
            save_scorer(component, directory / SCORER_COMPONENTS_FOLDER / str(position))
        if scorer.booster is not None:
            scorer.booster.save_model(str(directory / SCORER_BOOSTER_FILE))
    np.savez(directory / SCORER_ARRAYS_FILE, **scorer.arrays())
    payload = {"family": scorer.family, "n_items": scorer.n_items, "params": scorer.params()}
    (directory / SCORER_FILE).write_text(json.dumps(payload, indent=1, default=json_default))
    return directory


def load_scorer(directory: str | Path) -> Scorer:
    """Read what `save_scorer` wrote (OSError when missing, ValueError for an unknown family)."""
    directory = Path(directory)
    payload = json.loads((directory / SCORER_FILE).read_text())
    with np.load(directory / SCORER_ARRAYS_FILE, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    family = payload["family"]
    if family == NeuralSequenceScorer.family:
        # Imported here: the sequence models pull in torch.
        from mltasks.ml.seq.continuation import load_neural_model

        model = load_neural_model(directory / SCORER_MODEL_FOLDER)
        return NeuralSequenceScorer(model=model, popularity=arrays.get("popularity"))
    if family == RANKER_FAMILY:
        return _load_ranker(directory, payload["params"], arrays)
    if family not in SCORER_FAMILIES:
        raise ValueError(f"unknown scorer family {family!r}")
    return SCORER_FAMILIES[family].from_arrays(arrays, payload["params"])


def _load_ranker(directory: Path, params: dict, arrays: dict[str, np.ndarray]) -> Scorer:
    # Imported here: LightGBM loads only where a ranker is served.
    import lightgbm

    from mltasks.ml.scorers.ranker import ItemFeatures, RankerPipeline

    scorers = {
        name: load_scorer(directory / SCORER_COMPONENTS_FOLDER / str(position))
        for position, name in enumerate(params["scorers"])
    }
    booster_path = directory / SCORER_BOOSTER_FILE
    booster = lightgbm.Booster(model_file=str(booster_path)) if booster_path.exists() else None
    pipeline = RankerPipeline(
        scorers=scorers,
        item_features=ItemFeatures.from_arrays(arrays),
        context_kind=params["context_kind"],
        booster=booster,
        n_candidates=params["n_candidates"],
        candidate_scorers=params["candidate_scorers"],
        name=params.get("name", "TunedIn-ranker"),
    )
    if pipeline.feature_names != params["feature_names"]:
        raise ValueError("the saved ranker's features do not match this code's")
    return pipeline
