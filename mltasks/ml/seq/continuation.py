"""Playlist / session continuation: the one entry point the training service calls.

    result = train_continuation_model(sequences=events, config=ContinuationConfig(), seed=2020)
    result.served_model.score(input_item_indices, hour, dow)   # (n_items,) exact scores
    result.served_model.sequence_vector(input_item_indices, hour, dow)
    result.output_item_embeddings                              # (n_items, d+1), FAISS IP-ready
    save_continuation_artifact(result, directory)              # in mltasks.ml.artifacts
    load_neural_model(directory)                               # a saved served model

It makes the SEQ-last split (sequences.py), trains the baselines (MostPop, Markov, session-kNN
tuned on validation), SASRec and GRU4Rec on the same split, evaluates every model on validation
and test with the same full-ranking code, and trains a LightGBM ranker (scorers.ranker) over the
candidates of Markov, session-kNN and the neural models, with hour, day of week and artist
features. The validation cases are split in two seeded halves: the ranker is fitted on the
first, and every model is scored on the second as it would be served (mltasks.ml.scorers);
the best there is the served pipeline (`served_scorer`), the ranker refitted on every
validation case. The test split never influences a choice. A neural model far below
session-kNN on validation (`neural_min_baseline_share`) is reported and left out of both passes
and the ranker.

`served_model` stays the neural model with the best validation metric: its output item vectors
are what FAISS / pgvector index (approximate search, similar tracks).
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
from mltasks.ml.eval.seq_metrics import evaluate_rankings
from mltasks.ml.eval.topk import exclude_items, top_k_indices
from mltasks.ml.scorers.base import Scorer
from mltasks.ml.scorers.evaluation import rank_cases_in_one_pass
from mltasks.ml.scorers.neural import NeuralSequenceScorer
from mltasks.ml.scorers.popularity import PopularityScorer
from mltasks.ml.scorers.ranker import (
    RANKER_NAME,
    ItemFeatures,
    RankerParams,
    RankerPipeline,
    fit_ranker,
    rank_rows,
    sequence_contexts,
    split_halves,
)
from mltasks.ml.scorers.sequence import MarkovScorer, SessionKNNScorer
from mltasks.ml.seq.baselines import (
    SKNN_NEIGHBOURS_GRID,
    MarkovTransitions,
    MostPop,
    tune_session_knn,
)
from mltasks.ml.seq.gru4rec import GRU4REC, GRU4RecConfig, train_gru4rec
from mltasks.ml.seq.sasrec import SASREC, SASRecConfig, train_sasrec
from mltasks.ml.seq.search import search_sequence_model
from mltasks.ml.seq.trainer import NeuralContinuationModel, torch_threads
from mltasks.ml.tuning import below_baseline, search_budget_seconds

logger = logging.getLogger(__name__)

NEURAL_ARCHITECTURES = (SASREC, GRU4REC)  # the models with vectors (FAISS, pgvector)
VECTOR_MODELS = tuple(architecture.name for architecture in NEURAL_ARCHITECTURES)
RANKER_CANDIDATES = 100  # per candidate scorer
MIN_HALF_CASES = 10  # fewer validation cases per half: no ranker, selection on every case
MAX_VALID_CASES = 25_000  # validation cases kept (a seeded sample) when a split has more


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
    ranker: RankerParams | None = field(default_factory=RankerParams)  # None: no ranker
    # Base seconds of each neural model's hyper-parameter search (scaled with the data by
    # tuning.search_budget_seconds); 0 = no search.
    search_seconds: float = 0.0
    # The models the served pipeline may be (every model scored on the selection half, the
    # ranker included, when empty); e.g. ("SASRec", "GRU4Rec") to serve only vector models.
    served_candidates: tuple[str, ...] = ()
    # Validation cases kept when a split has more (a seeded sample; 0 = all): model selection,
    # early stopping, the searches and the ranker's fit read validation many times, and at
    # demo scale 10 (201,636 cases) one session-kNN setting took 5.6 min to score them all.
    # Test cases are never sampled.
    max_valid_cases: int = MAX_VALID_CASES
    # A neural model whose best validation metric (from its own training) is below this share of
    # session-kNN's (tuned on the same cases) is dropped: its validation column and the reason
    # stay in the report and its vectors may still be published, but it is not a ranker input
    # or a candidate, and the validation and test passes do not score it. On 2 CPU cores a large
    # catalog's epoch takes a minute or more (demo scale 10: SASRec 0.016, GRU4Rec 0.010 against
    # session-kNN's 0.357 after their budgets), and scoring them costs minutes of the test pass.
    # 0 = never; a model named in `served_candidates` is never dropped.
    neural_min_baseline_share: float = 0.25


def sample_valid_cases(split: SeqSplit, *, max_cases: int, seed: int) -> SeqSplit:
    """`split` with at most `max_cases` validation cases, a seeded sample kept in case order;
    its summary says how many there were. Unchanged when there are not more."""
    total = len(split.valid)
    if not max_cases or total <= max_cases:
        return split
    rows = np.sort(np.random.default_rng(seed).choice(total, size=max_cases, replace=False))
    summary = {
        **split.summary,
        "valid_cases": max_cases,
        "valid_cases_before_sampling": total,
        "valid_sample": f"a seeded sample of {max_cases:,} of the {total:,} validation cases",
    }
    return replace(split, valid=split.valid.subset(rows), summary=summary)


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
    timings: dict[str, dict[str, float]]  # model -> train_seconds (search included), inference_ms
    params: dict  # configs and tuned hyper-parameters
    split_summary: dict
    seed: int
    models: dict[str, object] = field(default_factory=dict)  # every trained scorer, by name
    test_rankings: dict[str, np.ndarray] = field(default_factory=dict)  # model -> (n_test, 100)
    test_sequence_ids: np.ndarray | None = None
    split: SeqSplit | None = None
    served_scorer: Scorer | None = None  # the served pipeline (in memory; saved by artifacts)
    selection: dict = field(default_factory=dict)  # how it was chosen
    ranker: dict = field(default_factory=dict)  # the ranker's fit and feature importances
    vectors_model_name: str = ""  # the neural model whose vectors are indexed
    # The validation cases the served pipeline was not fitted on (the activation rule compares
    # versions on those): positions in split.valid.
    selection_cases: np.ndarray | None = None


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


def scorer_latency_ms(scorer: Scorer, cases, *, n_requests: int, k: int = 20) -> float:
    """Mean wall time of one `top_k` request of a scorer on one thread, its input excluded."""
    n_requests = min(n_requests, len(cases))
    if n_requests == 0:
        return float("nan")
    contexts = sequence_contexts(cases)
    with torch_threads(1):
        scorer.top_k(contexts[0], k, exclude=cases.inputs[0])  # warm-up
        started = time.perf_counter()
        for row in range(n_requests):
            scorer.top_k(contexts[row], k, exclude=cases.inputs[row])
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
    split = sample_valid_cases(split, max_cases=config.max_valid_cases, seed=seed)
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

    neural_valid: dict[str, dict[str, float]] = {}
    neural_configs = {SASREC.name: (config.sasrec, train_sasrec)}
    if config.gru4rec is not None:
        neural_configs[GRU4REC.name] = (config.gru4rec, train_gru4rec)
    # The searches' budget grows with the training interactions.
    search_budget = config.search_seconds and search_budget_seconds(
        sum(len(items) for items in split.train_items), base_seconds=config.search_seconds
    )
    for name, (model_config, train) in neural_configs.items():
        model_config = replace(
            model_config,
            selection_metric=config.selection_metric,
            max_seq_len=config.sequences.max_seq_len,
        )

        # Timed with its search, as the recommender's models are: a search whose best trial is
        # kept trains nothing after it, and the model cost the search's seconds.
        def fit(train=train, model_config=model_config, name=name):
            trained = None
            if search_budget:
                search = search_sequence_model(
                    split, architecture=name, base=model_config, seed=seed,
                    budget_seconds=search_budget,
                )  # fmt: skip
                model_config = search.best_config
                params[f"{name}_search"] = search.to_dict()
                trained = search.final_model  # trained as `train` would: kept, not trained again
            if trained is not None:
                logger.info("%s: the search's best trial is kept (trained as final)", name)
            else:
                trained = train(
                    split=split, config=model_config, seed=seed, show_progress=config.show_progress
                )
            history[name] = trained.history
            params[name] = {**asdict(model_config), "best_epoch": trained.best_epoch}
            neural_valid[name] = dict(trained.best_valid)
            return trained.model

        timed(name, fit)

    # Neural models far below session-kNN on validation leave the passes and the ranker.
    dropped: dict[str, object] = {}
    sknn_value = max(trial[config.selection_metric] for trial in params["SKNN"]["trials"])
    for name, valid in neural_valid.items():
        if name in config.served_candidates:  # asked for: never dropped
            continue
        reason = below_baseline(
            metric=config.selection_metric, value=valid.get(config.selection_metric, 0.0),
            share=config.neural_min_baseline_share, baseline="SKNN", baseline_value=sknn_value,
        )  # fmt: skip
        if reason:
            reason += ": not scored on test, not a ranker input or a served candidate"
            logger.info("%s dropped: %s", name, reason)
            params[name]["dropped"] = reason
            dropped[name] = models.pop(name)

    metrics: dict[str, dict[str, dict[str, float]]] = {}
    test_rankings: dict[str, np.ndarray] = {}
    served_scorer, selection, ranker_info, selection_cases = _evaluate_and_select(
        split=split, models=models, metrics=metrics, config=config, seed=seed, timings=timings,
        test_rankings=test_rankings,
    )  # fmt: skip
    for name, model in models.items():
        timings[name]["inference_ms_per_request"] = measure_latency_ms(
            model, split.test, n_requests=config.latency_requests, k=config.latency_k
        )
    for name in dropped:  # the validation its own training measured; no test column
        metrics[name] = {"valid": neural_valid[name], "test": {}, "selection": {}}
    models = {**models, **dropped}
    vector_models = [name for name in VECTOR_MODELS if name in models]
    vectors_name = max(
        vector_models, key=lambda name: metrics[name]["valid"][config.selection_metric]
    )
    params["served_model"] = selection["served"]
    params["vectors_model"] = vectors_name
    timings["total"] = {"seconds": time.perf_counter() - started}
    return ContinuationResult(
        served_model_name=selection["served"],
        served_model=models[vectors_name],
        output_item_embeddings=models[vectors_name].output_item_embeddings,
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
        served_scorer=served_scorer,
        selection=selection,
        ranker=ranker_info,
        vectors_model_name=vectors_name,
        selection_cases=selection_cases,
    )


def model_scorers(models: dict[str, object], split: SeqSplit) -> dict[str, Scorer]:
    """Every trained model as a scorer of mltasks.ml.scorers, as serving would ask it."""
    popularity = np.bincount(
        np.concatenate([np.zeros(0, np.int64), *split.train_items]), minlength=split.n_items
    ).astype(np.float32)
    scorers: dict[str, Scorer] = {"MostPop": PopularityScorer(popularity=popularity)}
    if "Markov" in models:
        scorers["Markov"] = MarkovScorer.from_model(models["Markov"])
    if "SKNN" in models:
        scorers["SKNN"] = SessionKNNScorer.from_model(models["SKNN"])
    for name in VECTOR_MODELS:
        if name in models:
            scorers[name] = NeuralSequenceScorer(model=models[name], popularity=popularity)
    return scorers


def _evaluate_and_select(*, split, models, metrics, config, seed, timings, test_rankings):
    """Every model and the ranker on validation and test, and the served pipeline.

    One scoring pass over the validation cases gives every model's metrics and the ranker's
    stage 1 (`rank_cases_in_one_pass`); the ranker is fitted on one seeded half of them, every
    candidate is scored on the other half as it would be served, and the best there is served
    (the ranker refitted on every validation case). Then one pass over the test cases gives
    every model's test lists and the served ranker's. The test cases never influence a choice.
    """
    metric = config.selection_metric
    k = max(RANKER_CANDIDATES, *(int(name.partition("@")[2]) for name in config.metric_names))
    scorers = model_scorers(models, split)
    n_valid = len(split.valid)
    halves = n_valid >= 2 * MIN_HALF_CASES
    if halves:
        fit_rows, select_rows = split_halves(n_valid, seed=seed)
    else:
        fit_rows = select_rows = np.arange(n_valid)
    select_cases = split.valid.subset(select_rows)
    ranker = RankerPipeline(
        scorers=scorers,
        item_features=ItemFeatures.build(
            popularity=scorers["MostPop"].popularity, artist=split.item_artist
        ),
        context_kind="sequence",
        n_candidates=RANKER_CANDIDATES,
        candidate_scorers=[name for name in scorers if name != "MostPop"],
    )
    ranker_skipped = ""
    if config.ranker is None:
        ranker_skipped = "the configuration has no ranker"
    elif not halves:
        ranker_skipped = (
            f"fewer than {2 * MIN_HALF_CASES} validation cases: too few to fit a ranker on one "
            "half and select on the other"
        )

    def metrics_of(top_items, cases, sampled_ranks=None, metric_names=config.metric_names):
        return evaluate_rankings(
            top_items=top_items, cases=cases, n_items=split.n_items, metric_names=metric_names,
            item_artist=split.item_artist, sampled_ranks=sampled_ranks,
        )  # fmt: skip

    clock = time.perf_counter()
    valid = rank_cases_in_one_pass(
        ranker, split.valid, k=k, keep_rows=not ranker_skipped,
        sampled_negatives=config.sampled_negatives, seed=seed,
    )  # fmt: skip
    timings["evaluation"] = {"valid_pass_seconds": time.perf_counter() - clock}
    logger.info(
        "validation: %d cases scored by %d models in %.1fs",
        len(split.valid), len(scorers), timings["evaluation"]["valid_pass_seconds"],
    )  # fmt: skip
    for name in models:
        metrics[name] = {
            "valid": metrics_of(valid.top_items[name], split.valid, valid.sampled_ranks.get(name))
        }
    half_fit = full_fit = None
    if not ranker_skipped:
        clock = time.perf_counter()
        targets = [np.array([t]) for t in split.valid.targets.tolist()]

        def fit(rows):
            return fit_ranker(
                ranker,
                rows=valid.ranker_rows.take(rows),
                targets=[targets[r] for r in rows.tolist()],
                seed=seed,
                params=config.ranker,
            )

        try:
            half_fit, full_fit = fit(fit_rows), fit(np.arange(n_valid))
        except ValueError as why:  # no held-out item among any candidates: nothing to learn
            ranker_skipped, half_fit, full_fit = str(why), None, None
        fit_seconds = time.perf_counter() - clock
    if ranker_skipped:
        logger.warning("no ranker in this run: %s", ranker_skipped)
    else:
        logger.info("ranker fitted on both halves in %.1fs", fit_seconds)
    served_ranker = ranker
    if full_fit is not None:
        served_ranker = ranker.with_booster(full_fit.booster)
        half_ranker = ranker.with_booster(half_fit.booster)
        select_top = rank_rows(half_ranker, valid.ranker_rows.take(select_rows), k=k)
    # Done with the validation features: at demo scale 10, 25,000 cases x ~370 candidates x 22
    # float32 features, about 800 MB that the test pass need not hold as well.
    valid.ranker_rows = None

    clock = time.perf_counter()
    test = rank_cases_in_one_pass(
        served_ranker, split.test, k=k, rank_by_booster=full_fit is not None,
        sampled_negatives=config.sampled_negatives, seed=seed,
    )  # fmt: skip
    timings["evaluation"]["test_pass_seconds"] = time.perf_counter() - clock
    logger.info(
        "test: %d cases scored by %d models%s in %.1fs",
        len(split.test), len(scorers), " and the ranker" if full_fit is not None else "",
        timings["evaluation"]["test_pass_seconds"],
    )  # fmt: skip
    for name in models:
        metrics[name]["test"] = metrics_of(
            test.top_items[name], split.test, test.sampled_ranks.get(name)
        )
        test_rankings[name] = test.top_items[name]
        logger.info("%s valid %s test %s", name, metrics[name]["valid"], metrics[name]["test"])
        metrics[name]["selection"] = metrics_of(
            valid.top_items[name][select_rows], select_cases, metric_names=(metric,)
        )

    candidates: dict[str, Scorer] = dict(scorers)
    ranker_info: dict = {}
    if full_fit is not None:
        test_rankings[RANKER_NAME] = test.ranker_top
        metrics[RANKER_NAME] = {
            "valid": metrics_of(select_top, select_cases),
            "test": metrics_of(test.ranker_top, split.test),
        }
        metrics[RANKER_NAME]["selection"] = {metric: metrics[RANKER_NAME]["valid"][metric]}
        ranker_info = {
            "feature_importances": served_ranker.feature_importances(),
            "fitting_half": half_fit.summary(),
            "all_validation": full_fit.summary(),
            "params": {**full_fit.params, "features": ranker.feature_names},
        }
        timings[RANKER_NAME] = {
            # Its features of the validation cases and its two fits; the scorers' scoring of
            # those cases is shared with their own evaluation.
            "train_seconds": valid.ranker_seconds + fit_seconds,
            "inference_ms_per_request": scorer_latency_ms(
                served_ranker, split.test, n_requests=config.latency_requests, k=config.latency_k
            ),
        }
        logger.info(
            "%s valid %s test %s",
            RANKER_NAME, metrics[RANKER_NAME]["valid"], metrics[RANKER_NAME]["test"],
        )  # fmt: skip
        candidates[RANKER_NAME] = half_ranker
    scores = {name: metrics[name]["selection"][metric] for name in candidates}
    allowed = [n for n in scores if not config.served_candidates or n in config.served_candidates]
    if not allowed:
        raise ValueError(
            f"none of the served candidates {list(config.served_candidates)} was trained; "
            f"choose among {sorted(scores)}"
        )
    served = max(allowed, key=scores.get)
    singles = {name: value for name, value in scores.items() if name != RANKER_NAME}
    best_single = max(singles, key=singles.get)
    selection = {
        "metric": metric,
        "cases": int(len(select_rows)),
        "fitting_cases": int(len(fit_rows)),
        "halves": halves,
        "scores": scores,
        "served": served,
        "best_single": best_single,
        "ranker": "trained" if RANKER_NAME in candidates else f"not trained: {ranker_skipped}",
        "candidates": allowed,
        "reason": f"{served} has the best validation {metric} ({scores[served]:.4f}) on the "
        f"selection half ({len(select_rows)} cases) among {len(allowed)} servable candidates; "
        f"the best single model is {best_single} ({scores[best_single]:.4f})",
        "protocol": "validation cases split in two seeded halves: the ranker is fitted on the "
        "first, every candidate is scored on the second as it would be served; session-kNN's "
        "neighbourhood size and the neural models' epochs were chosen on every validation "
        "case, which can only favour them",
    }
    logger.info("served pipeline: %s", selection["reason"])
    served_scorer = served_ranker if served == RANKER_NAME else scorers[served]
    return served_scorer, selection, ranker_info, np.asarray(select_rows)


def load_neural_model(directory: str | Path) -> NeuralContinuationModel:
    """Read a served model that NeuralContinuationModel.save wrote (SASRec or GRU4Rec)."""
    return NeuralContinuationModel.load(directory, architectures=NEURAL_ARCHITECTURES)
