"""Playlist / session continuation: the one entry point the training service calls.

    result = train_continuation_model(sequences=events, config=ContinuationConfig(), seed=2020)
    result.served_model.score(input_item_indices, hour, dow)   # (n_items,) exact scores
    result.served_model.sequence_vector(input_item_indices, hour, dow)
    result.output_item_embeddings                              # (n_items, d+1), FAISS IP-ready
    save_continuation_artifact(result, directory)              # in mltasks.ml.artifacts
    load_neural_model(directory)                               # a saved served model

It makes the SEQ-last split (sequences.py), trains the baselines (MostPop, Markov, session-kNN
tuned on validation), SASRec and GRU4Rec on the same split, evaluates every model on validation
and test with the same full-ranking code, and serves the embedding model (SASRec or GRU4Rec)
with the best validation metric: only those have the vector form that FAISS / pgvector serve.
The test split never influences a choice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mltasks.ml.data.seq_datasets import SequenceEvents
from mltasks.ml.data.sequences import SeqSplit, SequenceConfig, seq_last_split
from mltasks.ml.eval.seq_metrics import evaluate_rankings, rank_cases
from mltasks.ml.eval.topk import exclude_items, top_k_indices
from mltasks.ml.seq.baselines import (
    SKNN_NEIGHBOURS_GRID,
    MarkovTransitions,
    MostPop,
    tune_session_knn,
)
from mltasks.ml.seq.gru4rec import GRU4REC, GRU4RecConfig, train_gru4rec
from mltasks.ml.seq.sasrec import SASREC, SASRecConfig, train_sasrec
from mltasks.ml.seq.trainer import NeuralContinuationModel, torch_threads

logger = logging.getLogger(__name__)

NEURAL_ARCHITECTURES = (SASREC, GRU4REC)  # the servable models: only these have vectors
SERVABLE_MODELS = tuple(architecture.name for architecture in NEURAL_ARCHITECTURES)


@dataclass
class ContinuationConfig:
    sequences: SequenceConfig = field(default_factory=SequenceConfig)
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    gru4rec: GRU4RecConfig | None = field(default_factory=GRU4RecConfig)  # None: not trained
    sknn_neighbours_grid: tuple[int, ...] = SKNN_NEIGHBOURS_GRID
    selection_metric: str = "Recall@20"
    metric_names: tuple[str, ...] = ("Recall@20", "nDCG@10", "HR@10", "Coverage@100")
    sampled_negatives: int = 100  # for the labelled sampled-100 metrics; 0 = skip
    latency_requests: int = 200  # single requests timed per model on test inputs
    latency_k: int = 20
    show_progress: bool | None = None  # None: tqdm bars only on a terminal


@dataclass
class ContinuationResult:
    served_model_name: str
    served_model: NeuralContinuationModel
    output_item_embeddings: np.ndarray  # (n_items, d [+1]); score = sequence_vector · row
    item_ids: np.ndarray  # item index -> original id
    item_index: dict[str, int]  # original id -> item index
    item_artist: np.ndarray | None  # item index -> artist index (-1 unknown)
    artist_ids: np.ndarray | None  # artist index -> original id
    metrics: dict[str, dict[str, dict[str, float]]]  # model -> "valid" / "test" -> metric -> value
    history: dict[str, list[dict]]  # model -> per-epoch entries (neural models)
    timings: dict[str, dict[str, float]]  # model -> train_seconds, inference_ms_per_request
    params: dict  # configs and tuned hyper-parameters
    split_summary: dict
    seed: int
    models: dict[str, object] = field(default_factory=dict)  # every trained scorer, by name
    test_rankings: dict[str, np.ndarray] = field(default_factory=dict)  # model -> (n_test, 100)
    test_sequence_ids: np.ndarray | None = None
    split: SeqSplit | None = None


def _with_item_artist(split: SeqSplit, item_artist: Mapping[str, str]) -> None:
    artist_of_item = [item_artist.get(item_id, "") for item_id in split.item_ids.tolist()]
    known = np.array([artist != "" for artist in artist_of_item])
    artist_ids, codes = np.unique(
        np.array(artist_of_item, dtype=object)[known].astype(str), return_inverse=True
    )
    split.item_artist = np.full(split.n_items, -1, dtype=np.int64)
    split.item_artist[known] = codes.reshape(-1)
    split.artist_ids = artist_ids


def measure_latency_ms(model, cases, *, n_requests: int, k: int = 20) -> float:
    """Mean wall time of one request on one thread: score the catalog, exclude the input, top k."""
    n_requests = min(n_requests, len(cases))
    if n_requests == 0:
        return float("nan")
    with torch_threads(1):
        model.score(cases.inputs[0], int(cases.hours[0]), int(cases.dows[0]))  # warm-up
        started = time.perf_counter()
        for row in range(n_requests):
            scores = model.score(cases.inputs[row], int(cases.hours[row]), int(cases.dows[row]))
            top_k_indices(exclude_items(scores[None], [cases.inputs[row]]), k)
        return 1000.0 * (time.perf_counter() - started) / n_requests


def train_continuation_model(
    *,
    sequences: SequenceEvents | SeqSplit,
    item_artist: Mapping[str, str] | None = None,
    config: ContinuationConfig | None = None,
    seed: int = 2020,
) -> ContinuationResult:
    """Split, train every model on the same split, evaluate all, serve the best on validation.

    `sequences`: events from seq_datasets (or the caller's own arrays in a SequenceEvents), or
    an already made SeqSplit. `item_artist` maps original item id -> artist id when the events
    carry no artist ids (used by ArtistRepeat@K and artist-capped re-ranking).
    """
    config = config or ContinuationConfig()
    started = time.perf_counter()
    split = (
        sequences
        if isinstance(sequences, SeqSplit)
        else seq_last_split(sequences, config=config.sequences)
    )
    if item_artist is not None:
        _with_item_artist(split, item_artist)
    split_seconds = time.perf_counter() - started
    logger.info("split: %s", split.summary)
    if len(split.valid) == 0 or len(split.test) == 0:
        raise ValueError("no sequence has the three items SEQ-last needs (input, validation, test)")

    models: dict[str, object] = {}
    timings: dict[str, dict[str, float]] = {"split": {"seconds": split_seconds}}
    history: dict[str, list[dict]] = {}
    params: dict = {
        "sequences": asdict(config.sequences),
        "selection_metric": config.selection_metric,
        "exclude_seen": True,
        "ranking": "full catalog, items already in the sequence before the target removed",
    }

    def timed(name: str, build):
        fit_started = time.perf_counter()
        model = build()
        timings[name] = {"train_seconds": time.perf_counter() - fit_started}
        models[name] = model
        return model

    n_items = split.n_items
    timed("MostPop", lambda: MostPop(train_items=split.train_items, n_items=n_items))
    timed("Markov", lambda: MarkovTransitions(train_items=split.train_items, n_items=n_items))

    def fit_sknn():
        model, trials = tune_session_knn(
            train_items=split.train_items,
            n_items=n_items,
            valid_cases=split.valid,
            grid=config.sknn_neighbours_grid,
            metric=config.selection_metric,
        )
        params["SKNN"] = {"n_neighbours": model.n_neighbours, "recency": "linear", "trials": trials}
        return model

    timed("SKNN", fit_sknn)

    neural_configs = {SASREC.name: (config.sasrec, train_sasrec)}
    if config.gru4rec is not None:
        neural_configs[GRU4REC.name] = (config.gru4rec, train_gru4rec)
    for name, (model_config, train) in neural_configs.items():
        model_config = replace(
            model_config,
            selection_metric=config.selection_metric,
            max_seq_len=config.sequences.max_seq_len,
        )

        def fit(train=train, model_config=model_config, name=name):
            trained = train(
                split=split, config=model_config, seed=seed, show_progress=config.show_progress
            )
            history[name] = trained.history
            params[name] = {**asdict(model_config), "best_epoch": trained.best_epoch}
            return trained.model

        timed(name, fit)

    metrics: dict[str, dict[str, dict[str, float]]] = {}
    test_rankings: dict[str, np.ndarray] = {}
    for name, model in models.items():
        metrics[name] = {}
        for part, cases in (("valid", split.valid), ("test", split.test)):
            top_items, sampled_ranks = rank_cases(
                model, cases, k=100, sampled_negatives=config.sampled_negatives, seed=seed
            )
            metrics[name][part] = evaluate_rankings(
                top_items=top_items,
                cases=cases,
                n_items=n_items,
                item_artist=split.item_artist,
                metric_names=config.metric_names,
                sampled_ranks=sampled_ranks,
            )
            if part == "test":
                test_rankings[name] = top_items
        timings[name]["inference_ms_per_request"] = measure_latency_ms(
            model, split.test, n_requests=config.latency_requests, k=config.latency_k
        )
        logger.info("%s valid %s test %s", name, metrics[name]["valid"], metrics[name]["test"])

    candidates = [name for name in SERVABLE_MODELS if name in models]
    served_name = max(candidates, key=lambda name: metrics[name]["valid"][config.selection_metric])
    served = models[served_name]
    params["served_model"] = served_name
    timings["total"] = {"seconds": time.perf_counter() - started}
    return ContinuationResult(
        served_model_name=served_name,
        served_model=served,
        output_item_embeddings=served.output_item_embeddings,
        item_ids=split.item_ids,
        item_index=split.item_index(),
        item_artist=split.item_artist,
        artist_ids=split.artist_ids,
        metrics=metrics,
        history=history,
        timings=timings,
        params=params,
        split_summary=split.summary,
        seed=seed,
        models=models,
        test_rankings=test_rankings,
        test_sequence_ids=split.test.sequence_ids,
        split=split,
    )


def load_neural_model(directory: str | Path) -> NeuralContinuationModel:
    """Read a served model that NeuralContinuationModel.save wrote (SASRec or GRU4Rec)."""
    return NeuralContinuationModel.load(directory, architectures=NEURAL_ARCHITECTURES)
