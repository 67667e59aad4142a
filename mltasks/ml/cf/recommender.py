"""The user recommender TunedIn serves: one entry point that splits, trains, selects and refits.

`train_user_recommender` runs the CF-random protocol end to end:

1. Split (CF-random with `seed`, or the split a dataset gives).
2. Baselines: MostPop, ItemKNN (n_neighbors tuned on validation), EASE (lambda tuned on
   validation). With tags, also `EASE+tags`: EASE with the items' tags as side information
   (side weight tuned on validation, lambda from EASE); not servable as is (items x items).
3. Candidates the serving side can use, all of them dot-product models:
   - `LightGCN` (early-stopped on validation nDCG@20),
   - `EASE-SVD`: the better EASE (with or without tags, on validation) factorised to rank
     `ease_rank` from its full score matrix,
   - `TunedIn-blend`: LightGCN, EASE-SVD and tag-content blocks concatenated, each standardised per
     user and weighted, weights chosen on validation (see `hybrid.blend_factors`).
   LightGCN far below the baselines on validation (`lightgcn_min_baseline_share`) is dropped
   there: reported with its validation column and the reason, but neither refitted nor blended
   nor a ranker input (on 2 CPU cores a large catalog's budget buys it too few epochs).
4. The served model is the candidate with the best validation nDCG@20. Nothing is chosen on test.
5. Test metrics: every model is refitted on train+valid with its chosen hyper-parameters
   (LightGCN for its early-stopped number of epochs) and ranks with train+valid items excluded.
6. Served vectors: the selected model refitted on ALL interactions (train+valid+test) when
   `config.serve_fit == "all"` (the default), or the train+valid fit when "train+valid". Items with
   no interactions but with tags get CF vectors predicted from content (`content.fill_cold_items`);
   users with no interactions get zero vectors (serve them popularity or content instead).

Tags that users applied (HetRec) reveal (user, item) pairs: given as `item_tags.ItemTags` with the
taggers, every evaluation fit drops the tagging events on the pairs it holds out (validation fits:
valid+test pairs; test fits: test pairs). Only the serving fit sees every event.

Score contract: score(u, i) = user_vectors[u] . item_vectors[i], d <= 128.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np
import scipy.sparse as sp

from mltasks.ml.cf.baselines import (
    EASE,
    EXACT_MAX_ITEMS,
    ItemKNN,
    MostPop,
    factorize_scores,
    item_knn_grid,
)
from mltasks.ml.cf.content import (
    ContentModel,
    fill_cold_items,
    fit_tag_content,
    top_tag_features,
)
from mltasks.ml.cf.hybrid import balance_factors, blend_factors
from mltasks.ml.cf.lightgcn import FAST_CONFIG, LightGCNConfig, train_lightgcn
from mltasks.ml.cf.pipeline import (
    FACTOR_MODELS,
    ITEM_ITEM_MODELS,
    ITEM_NEIGHBOURS,
    StageScorers,
    evaluate_on,
    factor_scorer,
    history_contexts,
    item_item_scorer,
    item_popularity,
    rank_scorer_users,
    restrict_users,
    stage_item_features,
    targets_of,
    valid_users,
)
from mltasks.ml.cf.search import search_lightgcn
from mltasks.ml.data.interactions import IdIndex, Interactions
from mltasks.ml.data.item_tags import ItemTags
from mltasks.ml.data.splits import (
    DEFAULT_SEED,
    CFSplit,
    cf_random_split,
    held_out_items,
    sample_eval_users,
)
from mltasks.ml.eval.metrics import evaluate_top_items
from mltasks.ml.eval.ranking import CF_METRICS, evaluate_scorer, rank_users
from mltasks.ml.scorers.base import Scorer
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.ml.scorers.item_item import ItemItemScorer
from mltasks.ml.scorers.popularity import PopularityScorer
from mltasks.ml.scorers.ranker import (
    RANKER_NAME,
    RankerParams,
    candidate_rows,
    fit_ranker,
    rank_rows,
    split_halves,
)
from mltasks.ml.tuning import below_baseline, search_budget_seconds

logger = logging.getLogger(__name__)

SELECTION_METRIC = "nDCG@20"
MIN_HALF_USERS = 10  # fewer validation users per half: no ranker, no halves
MAX_SERVED_DIM = 128
ARTIFACT_VERSION = 1

# LightGCN as tuned on HetRec validation (the reasons are next to FAST_CONFIG).
TUNED_LIGHTGCN = FAST_CONFIG


@dataclass(frozen=True)
class RecommenderConfig:
    lightgcn: LightGCNConfig = TUNED_LIGHTGCN
    ease_lambdas: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0, 400.0)
    # Above baselines.EXACT_MAX_ITEMS items EASE runs in its sparse form (a minute or two per
    # fit at 100k items on 2 cores): fewer settings.
    ease_lambdas_sparse: tuple[float, ...] = (50.0, 100.0, 200.0)
    knn_neighbors: tuple[int, ...] = (50, 100, 200, 400)
    knn_shrink: float = 10.0
    ease_side_weights: tuple[float, ...] = (2.0, 3.0, 4.0)  # EASE+tags; () = no tag side info
    # None in the sparse form (a minute or more per EASE+tags fit at 100k items, two fits):
    # there the tags also choose each item's regressors and crowd out the listening data. Demo
    # scale 10, validation nDCG@20: 0.1246 at 2.0 (scale-20261201T010923Z run), 0.0380 at 3.0
    # (scale-20261201T041604Z run), plain EASE 0.1242; the served ranker scored 0.1271 over
    # EASE+tags at 2.0 (the first run) and 0.1304 over plain EASE (the second). The ranker
    # keeps its tag-similarity feature.
    ease_side_weights_sparse: tuple[float, ...] = ()
    ease_side_max_tags: int = 3000
    ease_rank: int = 48  # EASE-SVD block; LightGCN (64) + EASE (48) + content (16) = 128
    content_dim: int = 64  # content vectors returned for cold-start scoring
    content_block_dim: int = 16  # content block inside the blend
    blend_ease_weights: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0)
    blend_content_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
    serve_fit: str = "all"  # "all", or "train+valid" (benchmarks: no extra serving refit)
    collect_test_top_k: int = 0  # keep each model's top-K per test user (for dumps), 0 = no
    show_progress: bool = True
    ranker: RankerParams = field(default_factory=RankerParams)
    # The models the served pipeline may be (every servable model when empty).
    served_candidates: tuple[str, ...] = ()
    max_valid_users: int = 5000  # more validation users than this: a seeded sample of them
    # Base seconds of LightGCN's hyper-parameter search (tuning.search_budget_seconds scales it
    # with the data); 0 = no search, FAST_CONFIG as tuned on HetRec.
    search_seconds: float = 0.0
    # LightGCN is dropped when its validation nDCG@20 is below this share of the best baseline's
    # (ItemKNN, EASE): its validation column and the reason stay in the report, but it is not
    # refitted for the test or for serving and is left out of the blend and the ranker. On 2 CPU
    # cores a large catalog's epoch takes a minute, and its time budget buys too few of them
    # (demo scale 10: 0.048 against EASE's 0.124), while each refit costs minutes. 0 = never;
    # nor when `served_candidates` names LightGCN.
    lightgcn_min_baseline_share: float = 0.5

    def to_dict(self) -> dict:
        result = asdict(self)
        result["lightgcn"] = self.lightgcn.to_dict()
        return result


@dataclass
class ModelReport:
    """How one model did: its chosen parameters, validation and test metrics, timings."""

    name: str
    params: dict
    valid: dict[str, float]
    test: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0  # fit(s) on train, tuning included
    refit_seconds: float = 0.0  # fit on train+valid for the test
    servable: bool = False  # a scorer the serving side can use
    dim: int | None = None
    tuning: list[dict] = field(default_factory=list)  # validation score of every setting tried
    # Its metrics on the selection half of the validation users, as it would be served: what
    # the served pipeline is chosen on (empty for a model that is not a candidate).
    selection: dict[str, float] = field(default_factory=dict)
    test_top_items: np.ndarray | None = None  # (n_test_users, K) item indices, if collected

    def to_dict(self) -> dict:
        result = asdict(self)
        result.pop("test_top_items")
        return result


@dataclass
class RecommenderResult:
    served_model: str
    user_vectors: np.ndarray  # n_users x d, every user in `user_ids`
    item_vectors: np.ndarray  # n_items x d, every item in `item_ids`
    user_ids: np.ndarray
    item_ids: np.ndarray
    fitted_on: str  # "all" or "train+valid"
    popularity: np.ndarray  # interactions per item in the data the vectors were fitted on
    content_vectors: np.ndarray | None = None  # n_items x content_dim, zero rows without tags
    content_components: np.ndarray | None = None  # n_tags x content_dim, folds tags in
    content_idf: np.ndarray | None = None
    tag_names: list[str] = field(default_factory=list)
    models: list[ModelReport] = field(default_factory=list)
    history: dict[str, list[dict]] = field(default_factory=dict)  # per-epoch logs by model
    timings: dict[str, float] = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    seed: int = DEFAULT_SEED
    config: dict = field(default_factory=dict)
    served_params: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)  # how the served pipeline was chosen
    served_test: dict[str, float] = field(default_factory=dict)  # the served form's test metrics
    # Its top-K per test user (held_out_items(split.test) order), when collect_test_top_k is set.
    served_test_top_items: np.ndarray | None = None
    vectors_model: str = ""  # the factor model whose vectors are kept (similar items, ANN)
    ranker: dict = field(default_factory=dict)  # the ranker's fit and feature importances
    # In memory only (the served scorer is saved by mltasks.ml.artifacts.save_scorer):
    served_scorer: Scorer | None = None  # the served pipeline over the serving fit
    # The served pipeline as fitted on the training split (a ranker: fitted on the fitting half),
    # and the selection half's users: the activation rule scores it on held-out pairs an older
    # version never saw, among those users only.
    valid_scorer: Scorer | None = None
    selection_users: np.ndarray | None = None

    @property
    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """{model: {"valid", "test", "selection"}} for every model, baselines included."""
        return {
            m.name: {"valid": m.valid, "test": m.test, "selection": m.selection}
            for m in self.models
        }

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self.user_vectors[user_indices] @ self.item_vectors.T

    def content_model(self) -> ContentModel | None:
        if self.content_vectors is None:
            return None
        return ContentModel(
            item_vectors=self.content_vectors,
            components=self.content_components,
            idf=self.content_idf,
            tag_names=self.tag_names,
        )

    def metadata(self) -> dict:
        return {
            "artifact_version": ARTIFACT_VERSION,
            "served_model": self.served_model,
            "served_params": self.served_params,
            "dim": int(self.user_vectors.shape[1]),
            "fitted_on": self.fitted_on,
            "score": "user_vectors[u] . item_vectors[i]",
            "metrics": self.metrics,
            "models": [m.to_dict() for m in self.models],
            "history": self.history,
            "timings": self.timings,
            "split": self.split,
            "seed": self.seed,
            "config": self.config,
            "tag_names": self.tag_names,
            "selection": self.selection,
            "served_test": self.served_test,
            "vectors_model": self.vectors_model,
            "ranker": self.ranker,
        }


# ----------------------------------------------------------------------------- factor blocks


@dataclass
class _Blocks:
    """The dot-product blocks of one fit (on train, or train+valid, or all)."""

    lightgcn: tuple[np.ndarray, np.ndarray] | None  # None: LightGCN was dropped
    ease: tuple[np.ndarray, np.ndarray]
    content: tuple[np.ndarray, np.ndarray] | None


def _blend(blocks: _Blocks, ease_weight: float, content_weight: float):
    """LightGCN (weight 1) + EASE-SVD + content; without LightGCN, EASE-SVD and content."""
    parts, weights = [blocks.ease], [ease_weight]
    if blocks.lightgcn is not None:
        parts.insert(0, blocks.lightgcn)
        weights.insert(0, 1.0)
    if blocks.content is not None:
        parts.append(blocks.content)
        weights.append(content_weight)
    return blend_factors(parts, weights)


def _factor_scorer(vectors: tuple[np.ndarray, np.ndarray]):
    user_vectors, item_vectors = vectors
    return lambda users: user_vectors[users] @ item_vectors.T


@dataclass
class _Stage:
    """What one fit sees: its interactions and the tag counts it may use.

    Tag counts drop the tagging events on the pairs this stage holds out (see
    `item_tags.ItemTags`): validation fits drop valid+test pairs, test fits drop test pairs, the
    serving fit uses every event.
    """

    name: str
    interactions: sp.csr_matrix
    tag_counts: sp.csr_matrix | None
    config: RecommenderConfig
    seed: int

    def content(self, dim: int) -> ContentModel | None:
        if self.tag_counts is None or not self.tag_counts.nnz:
            return None
        names = [str(i) for i in range(self.tag_counts.shape[1])]
        return fit_tag_content(self.tag_counts, names, dim=dim, seed=self.seed)

    def content_block(self) -> tuple[np.ndarray, np.ndarray] | None:
        content = self.content(self.config.content_block_dim)
        if content is None:
            return None
        return content.user_profiles(self.interactions).astype(np.float32), content.item_vectors

    def ease(self, lam: float, side_weight: float) -> EASE:
        side = None
        if side_weight and self.tag_counts is not None and self.tag_counts.nnz:
            side = top_tag_features(self.tag_counts, self.config.ease_side_max_tags)
        return EASE(lam=lam, item_side=side, side_weight=side_weight if side is not None else 0.0)


# ----------------------------------------------------------------------------- entry point


def train_user_recommender(
    *,
    interactions: Interactions,
    item_tags: sp.csr_matrix | ItemTags | None = None,
    tag_names: list[str] | None = None,
    friends: sp.csr_matrix | None = None,
    item_artist: np.ndarray | None = None,
    config: RecommenderConfig | None = None,
    seed: int = DEFAULT_SEED,
    split: CFSplit | None = None,
) -> RecommenderResult:
    """Split, train baselines and candidates, select on validation, test, refit for serving.

    `item_tags` (an n_items x n_tags count matrix with rows aligned with `interactions.items`, or
    an `ItemTags` that also keeps who tagged what) enables tag side information, the content
    block and cold-item vectors; `friends` (n_users x n_users) adds friend edges to LightGCN when
    `config.lightgcn.friend_weight > 0`; `item_artist` (item index -> artist index, -1 unknown)
    gives the ranker its artist features.
    """
    config = config or RecommenderConfig()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    split = split or cf_random_split(interactions, seed=seed)
    train, train_valid = split.train, split.train_valid()
    full = (train_valid + split.test).tocsr()
    logger.info("split %s", split.summary())
    for part in ("valid", "test"):
        if getattr(split, part).nnz == 0:
            raise ValueError(
                f"the {part} split is empty ({split.summary()}): too few interactions per user "
                "to select and evaluate models (validation needs users with >= 5 positives)"
            )
    reports: list[ModelReport] = []
    test_users, _ = held_out_items(split.test)
    if item_tags is not None and not isinstance(item_tags, ItemTags):
        names = tag_names or [str(i) for i in range(item_tags.shape[1])]
        item_tags = ItemTags(counts=sp.csr_matrix(item_tags), tag_names=names)
    if item_tags is not None and not item_tags.counts.nnz:
        item_tags = None

    def stage(name: str, fit_csr: sp.csr_matrix, held: sp.csr_matrix | None) -> _Stage:
        tag_counts = None if item_tags is None else item_tags.counts_without(held)
        return _Stage(name, fit_csr, tag_counts, config, seed)

    valid_stage = stage("valid", train, (split.valid + split.test).tocsr())
    # Validation (tuning, early stopping, the ranker, selection) on a fixed, seeded sample of
    # users when there are more than config.max_valid_users (EVALUATION.md); test uses all.
    valid_sample = sample_eval_users(split.valid, max_users=config.max_valid_users, seed=seed)
    valid_target = valid_sample.matrix
    if valid_sample.sampled:
        logger.info("%s", valid_sample.note)
    test_stage = stage("test", train_valid, split.test)

    def valid_metrics(scorer) -> dict[str, float]:
        """A model's (user indices -> score block) function, or a `Scorer` (ranked from its
        own form: MostPop's one shared row needs no users x catalog block)."""
        if isinstance(scorer, Scorer):
            return evaluate_on(scorer, train=train, target=valid_target)
        return evaluate_scorer(scorer, target=valid_target, exclude=train)

    def test_metrics(scorer, report: ModelReport) -> None:
        k = config.collect_test_top_k
        if isinstance(scorer, Scorer):
            report.test = evaluate_on(scorer, train=train_valid, target=split.test)
            if k:
                report.test_top_items = rank_scorer_users(
                    scorer, train=train_valid, users=test_users, k=k
                )
        else:
            report.test = evaluate_scorer(scorer, target=split.test, exclude=train_valid)
            if k:
                report.test_top_items = rank_users(scorer, test_users, k=k, exclude=train_valid)
        logger.info("%s test %s", report.name, _short(report.test))

    # --- MostPop: its scores are one popularity row, ranked as PopularityScorer serves it
    clock = time.perf_counter()
    most_pop = MostPop().fit(train)
    report = ModelReport(
        "MostPop", {}, valid_metrics(PopularityScorer(popularity=most_pop.popularity))
    )
    report.train_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    most_pop.fit(train_valid)
    report.refit_seconds = time.perf_counter() - clock
    test_metrics(PopularityScorer(popularity=most_pop.popularity), report)
    reports.append(report)

    # --- ItemKNN, n_neighbors on validation
    report, knn_train, knn_test = _tune_and_test(
        "ItemKNN",
        # One X'X pass for the whole grid (each model equals its own ItemKNN fit).
        lambda matrix: item_knn_grid(
            matrix, neighbours=config.knn_neighbors, shrink=config.knn_shrink
        ),
        lambda best, matrix: ItemKNN(n_neighbors=best.n_neighbors, shrink=best.shrink).fit(matrix),
        train,
        train_valid,
        valid_metrics,
        test_metrics,
    )
    reports.append(report)
    knn_factory = partial(ItemKNN, n_neighbors=knn_train.n_neighbors, shrink=config.knn_shrink)
    train_scorers: dict[str, Scorer] = {
        "MostPop": PopularityScorer(popularity=item_popularity(train)),
        "ItemKNN": item_item_scorer(knn_train, "ItemKNN"),
    }
    test_scorers: dict[str, Scorer] = {
        "MostPop": PopularityScorer(popularity=item_popularity(train_valid)),
        "ItemKNN": item_item_scorer(knn_test, "ItemKNN"),
    }
    del knn_train, knn_test

    # --- EASE, lambda on validation
    lambdas = (
        config.ease_lambdas if split.n_items <= EXACT_MAX_ITEMS else config.ease_lambdas_sparse
    )
    report, ease_train, ease_test = _tune_and_test(
        "EASE",
        lambda matrix: (EASE(lam=lam).fit(matrix) for lam in lambdas),
        lambda best, matrix: EASE(lam=best.lam).fit(matrix),
        train,
        train_valid,
        valid_metrics,
        test_metrics,
    )
    # The served EASE's fit on train+valid, kept for the test blocks below (EASE-SVD, the
    # ranker's item-item scorer): the same model, not fitted twice.
    ease_test_fit = (ease_test, report.refit_seconds)
    del ease_test
    reports.append(report)
    best_lambda = ease_train.lam
    ease_name = "EASE"

    # --- EASE with tag side information, side weight on validation (lambda from plain EASE)
    side_weight = 0.0
    side_weights = (
        config.ease_side_weights
        if split.n_items <= EXACT_MAX_ITEMS
        else config.ease_side_weights_sparse
    )
    if item_tags is not None and side_weights:
        clock = time.perf_counter()
        tuning, best_value = [], report.valid[SELECTION_METRIC]
        previous = best_value  # plain EASE: side weight 0
        weights = sorted(side_weights)
        for index, weight in enumerate(weights):
            model = valid_stage.ease(best_lambda, weight).fit(train)
            metrics = valid_metrics(model.score)
            tuning.append({"side_weight": weight, **metrics})
            logger.info("EASE+tags side weight %.2f valid %s", weight, _short(metrics))
            if metrics[SELECTION_METRIC] > best_value:
                ease_train, side_weight, best_value = model, weight, metrics[SELECTION_METRIC]
                side_metrics = metrics
            del model
            if metrics[SELECTION_METRIC] < previous and index + 1 < len(weights):
                # Validation fell as the weight grew: heavier tags only drown the listening
                # data further (at scale 10 each of these fits takes minutes).
                logger.info(
                    "EASE+tags: validation fell at side weight %.2f; %s not tried",
                    weight, ", ".join(f"{w:.2f}" for w in weights[index + 1 :]),
                )  # fmt: skip
                break
            previous = metrics[SELECTION_METRIC]
        if side_weight:
            ease_name = "EASE+tags"
            side_report = ModelReport(
                "EASE+tags",
                {**ease_train.params(), "max_tags": config.ease_side_max_tags},
                side_metrics,
                train_seconds=time.perf_counter() - clock,
                tuning=tuning,
            )
            clock = time.perf_counter()
            refitted = test_stage.ease(best_lambda, side_weight).fit(train_valid)
            side_report.refit_seconds = time.perf_counter() - clock
            test_metrics(refitted.score, side_report)
            ease_test_fit = (refitted, side_report.refit_seconds)
            del refitted
            reports.append(side_report)
    clock = time.perf_counter()
    train_scorers[ease_name] = item_item_scorer(ease_train, ease_name)
    timings["item_item_prune_seconds"] = time.perf_counter() - clock

    # --- LightGCN, early-stopped on validation
    lightgcn_config = replace(config.lightgcn, show_progress=config.show_progress)
    clock = time.perf_counter()
    lightgcn = None
    if config.search_seconds:
        # A time-boxed search of LightGCN's settings on validation (its budget grows with the
        # data); every trial is reported under timings["lightgcn_search"].
        search = search_lightgcn(
            train, valid_target, base=lightgcn_config, seed=seed,
            budget_seconds=search_budget_seconds(train.nnz, base_seconds=config.search_seconds),
            friends=friends, item_tags=valid_stage.tag_counts,
        )  # fmt: skip
        lightgcn_config = replace(search.best_config, show_progress=config.show_progress)
        timings["lightgcn_search"] = search.to_dict()
        lightgcn = search.final_model
        if lightgcn is not None:
            logger.info("LightGCN: the search's best trial is kept (trained as final)")
    if lightgcn is None:
        lightgcn = train_lightgcn(
            train,
            config=lightgcn_config,
            valid_csr=valid_target,
            seed=seed,
            friends=friends,
            item_tags=valid_stage.tag_counts,
        )
    lightgcn_seconds = time.perf_counter() - clock
    lightgcn_vectors = (lightgcn.user_vectors, lightgcn.item_vectors)
    lightgcn_report = ModelReport(
        "LightGCN",
        {**lightgcn_config.to_dict(), "best_epoch": lightgcn.best_epoch},
        valid_metrics(_factor_scorer(lightgcn_vectors)),
        train_seconds=lightgcn_seconds,
        servable=True,
        dim=lightgcn_config.embedding_dim,
    )
    history = {"LightGCN": lightgcn.history}
    timings["lightgcn_time_to_quality"] = lightgcn.time_to_quality
    lightgcn_dropped = ""
    if "LightGCN" not in config.served_candidates:  # asked for: never dropped
        lightgcn_dropped = _lightgcn_dropped(
            lightgcn_report, reports, share=config.lightgcn_min_baseline_share
        )
    if lightgcn_dropped:
        logger.info("LightGCN dropped: %s", lightgcn_dropped)
        lightgcn_report.params["dropped"] = lightgcn_dropped
        lightgcn_report.servable = False
        lightgcn_vectors = None
    else:
        train_scorers["LightGCN"] = factor_scorer(lightgcn_vectors, item_popularity(train))

    # --- the validation users in two seeded halves: blends and the ranker are fitted on the
    # first and every candidate is selected on the second (EVALUATION.md)
    users_with_valid = valid_users(valid_target)
    halves = len(users_with_valid) >= 2 * MIN_HALF_USERS
    if halves:
        fit_half, select_half = split_halves(len(users_with_valid), seed=seed)
        fit_users, select_users = users_with_valid[fit_half], users_with_valid[select_half]
    else:  # too few to halve: no ranker, and the blend is chosen on what it is fitted on
        fit_users = select_users = users_with_valid
    valid_fit_target = restrict_users(valid_target, fit_users)
    valid_select_target = restrict_users(valid_target, select_users)

    # --- EASE-SVD (of the best EASE above) and the blend, on train
    clock = time.perf_counter()
    ease_rank = min(config.ease_rank, MAX_SERVED_DIM - lightgcn_config.embedding_dim)
    ease_vectors = balance_factors(
        *factorize_scores(ease_train.score, split.n_users, split.n_items, ease_rank, seed=seed)
    )
    del ease_train
    ease_svd_seconds = time.perf_counter() - clock
    ease_params = {"lam": best_lambda, "side_weight": side_weight, "rank": ease_rank}
    ease_svd_report = ModelReport(
        "EASE-SVD",
        ease_params,
        valid_metrics(_factor_scorer(ease_vectors)),
        train_seconds=ease_svd_seconds,
        servable=True,
        dim=ease_rank,
    )
    train_scorers["EASE-SVD"] = factor_scorer(ease_vectors, item_popularity(train))
    clock = time.perf_counter()
    train_blocks = _Blocks(lightgcn_vectors, ease_vectors, valid_stage.content_block())
    content_weights = config.blend_content_weights if train_blocks.content is not None else (0.0,)
    # Without LightGCN the blend is EASE-SVD (weight 1) and content.
    ease_weights = config.blend_ease_weights if not lightgcn_dropped else (1.0,)
    tuning = []
    for ease_weight, content_weight in itertools.product(ease_weights, content_weights):
        vectors = _blend(train_blocks, ease_weight, content_weight)
        metrics = evaluate_scorer(_factor_scorer(vectors), target=valid_fit_target, exclude=train)
        tuning.append({"ease_weight": ease_weight, "content_weight": content_weight, **metrics})
        logger.info(
            "blend ease %.2f content %.2f valid (fitting half) %s",
            ease_weight,
            content_weight,
            _short(metrics),
        )
    best_blend = max(tuning, key=lambda row: row[SELECTION_METRIC])
    blend_weights = {
        "ease_weight": best_blend["ease_weight"],
        "content_weight": best_blend["content_weight"],
    }
    blend_vectors = _blend(train_blocks, **blend_weights)
    blend_report = ModelReport(
        "TunedIn-blend",
        {
            **blend_weights,
            "lightgcn_weight": 0.0 if lightgcn_dropped else 1.0,
            **{f"ease_{k}": v for k, v in ease_params.items()},
            "content_dim": config.content_block_dim if train_blocks.content is not None else 0,
            "weights_chosen_on": "the fitting half of the validation users",
        },
        # Its weights were chosen on the fitting half: its validation column is the other half.
        evaluate_scorer(_factor_scorer(blend_vectors), target=valid_select_target, exclude=train),
        train_seconds=lightgcn_seconds + ease_svd_seconds + time.perf_counter() - clock,
        servable=True,
        dim=int(blend_vectors[0].shape[1]),
        tuning=tuning,
    )
    train_scorers["TunedIn-blend"] = factor_scorer(blend_vectors, item_popularity(train))

    # --- the ranker over the train fits: fitted on the first half, scored on the second, then
    # refitted on every validation user for the test and for serving
    clock = time.perf_counter()
    content_train = train_blocks.content[1] if train_blocks.content is not None else None
    train_stage = StageScorers(
        train_scorers,
        stage_item_features(fit_csr=train, content=content_train, item_artist=item_artist),
    )
    ranker = train_stage.ranker(ease_name)
    ranker_report, ranker_half, full_fit, ranker_skipped = None, None, None, ""
    try:
        if not halves:
            raise ValueError(
                f"fewer than {2 * MIN_HALF_USERS} validation users: too few to fit a ranker on "
                "one half and select on the other"
            )
        # Stage 1 and the features of every validation user, computed once for both fits and
        # for ranking the selection half.
        contexts = history_contexts(train, users_with_valid)
        valid_rows = candidate_rows(ranker, contexts, [c.items for c in contexts])
        targets = targets_of(valid_target, users_with_valid)
        position = {int(user): row for row, user in enumerate(users_with_valid.tolist())}
        fit_rows = np.array([position[int(u)] for u in fit_users], dtype=np.int64)
        select_rows = np.array([position[int(u)] for u in select_users], dtype=np.int64)
        half_fit = fit_ranker(
            ranker,
            rows=valid_rows.take(fit_rows),
            targets=[targets[r] for r in fit_rows.tolist()],
            seed=seed,
            params=config.ranker,
        )
        full_fit = fit_ranker(
            ranker, rows=valid_rows, targets=targets, seed=seed, params=config.ranker
        )
    except ValueError as why:
        ranker_skipped = str(why)
        logger.warning("no ranker in this run: %s", why)
    if full_fit is not None:
        ranker_half = ranker.with_booster(half_fit.booster)
        top = rank_rows(ranker_half, valid_rows.take(select_rows), k=_largest_k())
        ranker_valid = evaluate_top_items(
            top_items=top,
            test_items=[targets[r] for r in select_rows.tolist()],
            n_items=split.n_items,
            metric_names=CF_METRICS,
        )
        ranker_report = ModelReport(
            RANKER_NAME,
            {
                **full_fit.params,
                "scorers": list(ranker.scorers),
                "candidate_scorers": list(ranker.candidate_scorers),
                "features": ranker.feature_names,
                "fitted_on": "the fitting half of the validation users (validation column); "
                "every validation user (test and serving)",
                "fitting_half": half_fit.summary(),
                "all_validation": full_fit.summary(),
            },
            ranker_valid,
            train_seconds=time.perf_counter() - clock,
            servable=True,
        )
        logger.info("ranker valid (selection half) %s", _short(ranker_valid))

    # --- selection: every servable candidate on the selection half, as it would be served
    clock = time.perf_counter()
    candidates = {report.name: report for report in [*reports, lightgcn_report, ease_svd_report]}
    candidates["TunedIn-blend"] = blend_report
    served_forms = dict(train_scorers)
    if ranker_report is not None:
        candidates[RANKER_NAME] = ranker_report
        served_forms[RANKER_NAME] = ranker_half
    for name, report in candidates.items():
        if name == RANKER_NAME:
            report.selection = dict(ranker_report.valid)  # already on the selection half
        elif name in served_forms:
            report.selection = evaluate_on(
                served_forms[name], train=train, target=valid_select_target
            )
            report.servable = True
    scored = [r for r in candidates.values() if r.selection]
    allowed = [
        r for r in scored if not config.served_candidates or r.name in config.served_candidates
    ]
    if not allowed:
        raise ValueError(
            f"none of the served candidates {list(config.served_candidates)} was trained; "
            f"choose among {sorted(r.name for r in scored)}"
        )
    served = max(allowed, key=lambda r: r.selection[SELECTION_METRIC])
    timings["selection_seconds"] = time.perf_counter() - clock
    best_single = max(
        (r for r in scored if r.name not in (RANKER_NAME, "TunedIn-blend")),
        key=lambda r: r.selection[SELECTION_METRIC],
    )
    selection = {
        "metric": SELECTION_METRIC,
        "users": int(len(select_users)),
        "fitting_users": int(len(fit_users)),
        "scores": {r.name: r.selection[SELECTION_METRIC] for r in scored},
        "served": served.name,
        "best_single": best_single.name,
        "ranker": "trained" if ranker_report is not None else f"not trained: {ranker_skipped}",
        "halves": halves,
        "candidates": [r.name for r in allowed],
        "validation_sample": valid_sample.note,
        "reason": f"{served.name} has the best validation {SELECTION_METRIC} "
        f"({served.selection[SELECTION_METRIC]:.4f}) on the selection half "
        f"({len(select_users)} users) among {len(allowed)} servable candidates; the best single "
        f"model is {best_single.name} ({best_single.selection[SELECTION_METRIC]:.4f})",
        "protocol": "validation users split in two seeded halves: blend weights and the ranker "
        "are fitted on the first, every candidate is scored on the second as it would be "
        f"served (item-item models pruned to {ITEM_NEIGHBOURS} neighbours per item); "
        "single models' hyper-parameters and LightGCN's epochs were tuned on every validation "
        "user, which can only favour them",
    }
    logger.info("served pipeline: %s", selection["reason"])
    valid_scorer = served_forms[served.name]

    # --- refit every candidate on train+valid for the test
    def fit_blocks(
        fit_stage: _Stage,
        n_epochs: float,
        *,
        item_item: bool,
        ease_fit: tuple[EASE, float] | None = None,
    ) -> tuple[_Blocks, ItemItemScorer | None, float, float]:
        """The stage's blocks; `ease_fit` is its served EASE when already fitted (with the
        seconds that fit took), else it is fitted here."""
        clock = time.perf_counter()
        refit = None
        if not lightgcn_dropped:
            refit = train_lightgcn(
                fit_stage.interactions,
                config=lightgcn_config,
                seed=seed,
                friends=friends,
                item_tags=fit_stage.tag_counts,
                fixed_epochs=n_epochs,
            )
        lightgcn_fit_seconds = time.perf_counter() - clock
        clock = time.perf_counter()
        if ease_fit is None:
            ease, earlier_seconds = fit_stage.ease(best_lambda, side_weight), 0.0
            ease.fit(fit_stage.interactions)
        else:
            ease, earlier_seconds = ease_fit
        vectors = balance_factors(
            *factorize_scores(ease.score, split.n_users, split.n_items, ease_rank, seed=seed)
        )
        ease_item_item = item_item_scorer(ease, ease_name) if item_item else None
        del ease, ease_fit
        ease_fit_seconds = time.perf_counter() - clock + earlier_seconds
        blocks = _Blocks(
            None if refit is None else (refit.user_vectors, refit.item_vectors),
            vectors,
            fit_stage.content_block(),
        )
        return blocks, ease_item_item, lightgcn_fit_seconds, ease_fit_seconds

    test_blocks, test_ease, lightgcn_refit, ease_refit = fit_blocks(
        test_stage, lightgcn.best_epoch, item_item=True, ease_fit=ease_test_fit
    )
    del ease_test_fit
    if not lightgcn_dropped:
        lightgcn_report.refit_seconds = lightgcn_refit
        test_metrics(_factor_scorer(test_blocks.lightgcn), lightgcn_report)
        test_scorers["LightGCN"] = factor_scorer(test_blocks.lightgcn, item_popularity(train_valid))
    ease_svd_report.refit_seconds = ease_refit
    test_metrics(_factor_scorer(test_blocks.ease), ease_svd_report)
    blend_report.refit_seconds = lightgcn_refit + ease_refit
    test_metrics(_factor_scorer(_blend(test_blocks, **blend_weights)), blend_report)
    reports.extend([lightgcn_report, ease_svd_report, blend_report])
    test_scorers[ease_name] = test_ease
    test_scorers["TunedIn-blend"] = factor_scorer(
        _blend(test_blocks, **blend_weights), item_popularity(train_valid)
    )
    clock = time.perf_counter()
    content_test = test_blocks.content[1] if test_blocks.content is not None else None
    test_stage_scorers = StageScorers(
        test_scorers,
        stage_item_features(fit_csr=train_valid, content=content_test, item_artist=item_artist),
    )
    ranker_test = None
    if ranker_report is not None:
        ranker_test = test_stage_scorers.ranker(ease_name, full_fit.booster)
        ranker_report.test = evaluate_on(ranker_test, train=train_valid, target=split.test)
        ranker_report.refit_seconds = time.perf_counter() - clock
        if config.collect_test_top_k:
            ranker_report.test_top_items = rank_scorer_users(
                ranker_test, train=train_valid, users=test_users, k=config.collect_test_top_k
            )
        logger.info("%s test %s", RANKER_NAME, _short(ranker_report.test))
        reports.append(ranker_report)
    served_test = dict(served.test)
    if served.name in ITEM_ITEM_MODELS:
        served_test = evaluate_on(test_scorers[served.name], train=train_valid, target=split.test)
    # The served form's own top-K lists of the test users (the ranker's, or the pruned
    # item-item scorer's rather than the dense model's): what diversity reports read.
    served_test_top_items = None
    if config.collect_test_top_k:
        served_test_scorer = (
            ranker_test if served.name == RANKER_NAME else test_scorers.get(served.name)
        )
        if served_test_scorer is not None:
            served_test_top_items = rank_scorer_users(
                served_test_scorer, train=train_valid, users=test_users,
                k=config.collect_test_top_k,
            )  # fmt: skip
    timings["ranker_test_seconds"] = time.perf_counter() - clock

    # The vectors every process keeps for similar tracks, users and artists (and the retrieval
    # backends): the served model's when it is a factor model, else the best factor model's.
    factor_reports = [r for r in (lightgcn_report, ease_svd_report, blend_report) if r.selection]
    vectors_model = (
        served.name
        if served.name in FACTOR_MODELS
        else max(factor_reports, key=lambda r: r.selection[SELECTION_METRIC]).name
    )

    def stage_vectors(blocks: _Blocks) -> tuple[np.ndarray, np.ndarray]:
        if vectors_model == "LightGCN":
            return blocks.lightgcn
        if vectors_model == "EASE-SVD":
            return blocks.ease
        return _blend(blocks, **blend_weights)

    # --- the served fit
    if config.serve_fit == "all":
        serve_stage = stage("all", full, None)
        clock = time.perf_counter()
        needs_item_item = served.name in (RANKER_NAME, ease_name)
        serve_blocks, serve_ease, _, _ = fit_blocks(
            serve_stage, lightgcn.best_epoch, item_item=needs_item_item
        )
        serve_scorers: dict[str, Scorer] = {
            "MostPop": PopularityScorer(popularity=item_popularity(full)),
            "TunedIn-blend": factor_scorer(
                _blend(serve_blocks, **blend_weights), item_popularity(full)
            ),
        }
        if not lightgcn_dropped:
            serve_scorers["LightGCN"] = factor_scorer(serve_blocks.lightgcn, item_popularity(full))
        if needs_item_item:
            serve_scorers[ease_name] = serve_ease
        if served.name in (RANKER_NAME, "ItemKNN"):
            serve_scorers["ItemKNN"] = item_item_scorer(knn_factory().fit(full), "ItemKNN")
        timings["serve_refit_seconds"] = time.perf_counter() - clock
        fitted_on = "all"
    else:
        serve_stage, serve_blocks, fitted_on = test_stage, test_blocks, "train+valid"
        serve_scorers = test_scorers
    user_vectors, item_vectors = stage_vectors(serve_blocks)
    fit_csr = serve_stage.interactions
    content_full = serve_stage.content(config.content_dim)
    if content_full is not None:
        content_full.tag_names = list(item_tags.tag_names)
        warm_items = np.flatnonzero(np.diff(fit_csr.tocsc().indptr))
        item_vectors, filled = fill_cold_items(item_vectors, content_full, warm_items)
        timings["cold_items_filled"] = int(len(filled))
    warm_users = np.diff(fit_csr.indptr) > 0
    user_vectors = np.where(warm_users[:, None], user_vectors, 0.0).astype(np.float32)
    popularity = item_popularity(fit_csr)
    if served.name == RANKER_NAME:
        serve_content = serve_blocks.content[1] if serve_blocks.content is not None else None
        features = stage_item_features(
            fit_csr=fit_csr, content=serve_content, item_artist=item_artist
        )
        served_scorer = StageScorers(serve_scorers, features).ranker(ease_name, full_fit.booster)
    elif served.name in FACTOR_MODELS:
        served_scorer = FactorScorer(
            item_vectors=item_vectors, user_vectors=user_vectors, popularity=popularity
        )
    else:
        served_scorer = serve_scorers[served.name]
    timings["total_seconds"] = time.perf_counter() - started

    users = interactions.users if interactions.users is not None else IdIndex(np.arange(0))
    return RecommenderResult(
        served_model=served.name,
        user_vectors=np.ascontiguousarray(user_vectors, dtype=np.float32),
        item_vectors=np.ascontiguousarray(item_vectors, dtype=np.float32),
        user_ids=users.ids,
        item_ids=interactions.items.ids,
        fitted_on=fitted_on,
        popularity=popularity.astype(np.int64),
        content_vectors=None if content_full is None else content_full.item_vectors,
        content_components=None if content_full is None else content_full.components,
        content_idf=None if content_full is None else content_full.idf,
        tag_names=[] if content_full is None else content_full.tag_names,
        models=reports,
        history=history,
        timings=timings,
        split=split.summary(),
        seed=seed,
        config=config.to_dict(),
        served_params=served.params,
        selection=selection,
        served_test=served_test,
        served_test_top_items=served_test_top_items,
        vectors_model=vectors_model,
        ranker={}
        if ranker_report is None
        else {
            "feature_importances": ranker_test.feature_importances(),
            "fitting_half": ranker_report.params["fitting_half"],
            "all_validation": ranker_report.params["all_validation"],
        },
        served_scorer=served_scorer,
        valid_scorer=valid_scorer,
        selection_users=select_users,
    )


def _largest_k() -> int:
    return max(int(name.partition("@")[2]) for name in CF_METRICS)


def _tune_and_test(name, fit_grid, refit, train, train_valid, valid_metrics, test_metrics):
    """Fit each setting on train, keep the best on validation, refit it on train+valid, test it.

    `fit_grid(train)` yields the fitted models one at a time; `refit(best, train_valid)` fits
    the best one's setting again. Returns the report, the best model fitted on train and the
    same setting fitted on train+valid.
    """
    clock = time.perf_counter()
    tuning, best, best_metrics = [], None, None
    for model in fit_grid(train):
        metrics = valid_metrics(model.score)
        tuning.append({**model.params(), **metrics})
        logger.info("%s %s valid %s", name, model.params(), _short(metrics))
        if best is None or metrics[SELECTION_METRIC] > best_metrics[SELECTION_METRIC]:
            best, best_metrics = model, metrics
        del model  # keep one fitted setting in memory at a time (EASE holds users x items)
    report = ModelReport(
        name, best.params(), best_metrics, train_seconds=time.perf_counter() - clock
    )
    report.tuning = tuning
    clock = time.perf_counter()
    refitted = refit(best, train_valid)
    report.refit_seconds = time.perf_counter() - clock
    test_metrics(refitted.score, report)
    return report, best, refitted


def _lightgcn_dropped(lightgcn: ModelReport, reports: list[ModelReport], *, share: float) -> str:
    """Why LightGCN is dropped (see RecommenderConfig.lightgcn_min_baseline_share), or ""."""
    baselines = [r for r in reports if r.name != "MostPop" and SELECTION_METRIC in r.valid]
    if not share or not baselines:
        return ""
    best = max(baselines, key=lambda r: r.valid[SELECTION_METRIC])
    reason = below_baseline(
        metric=SELECTION_METRIC, value=lightgcn.valid[SELECTION_METRIC], share=share,
        baseline=best.name, baseline_value=best.valid[SELECTION_METRIC],
    )  # fmt: skip
    if not reason:
        return ""
    return f"{reason}: not refitted for the test or serving, not in the blend or the ranker"


def _short(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
