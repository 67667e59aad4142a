"""The two-stage ranker (mltasks.ml.scorers.ranker) and explanations (scorers.explain)."""

import numpy as np
import pytest
import scipy.sparse as sp

from mltasks.ml.artifacts import load_scorer, save_scorer
from mltasks.ml.eval.topk import PAD, exclude_items, top_k_indices
from mltasks.ml.scorers.base import HistoryContext, SequenceContext
from mltasks.ml.scorers.evaluation import rank_contexts
from mltasks.ml.scorers.explain import explain
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.ml.scorers.item_item import ItemItemScorer
from mltasks.ml.scorers.popularity import PopularityScorer
from mltasks.ml.scorers.ranker import (
    ItemFeatures,
    RankerPipeline,
    candidate_rows,
    fit_ranker,
    rank_rows,
    split_halves,
)

N_ITEMS, DIM = 300, 8


@pytest.fixture(scope="module")
def world():
    """Each user's next item is close to their history (a factor model sees that) AND popular
    (a popularity scorer sees that); neither alone ranks it well, the two together do."""
    rng = np.random.default_rng(7)
    item_vectors = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    popularity = rng.pareto(1.5, size=N_ITEMS) * 10
    contexts, targets = [], []
    for _ in range(600):
        history = rng.choice(N_ITEMS, 8, replace=False)
        truth = item_vectors @ item_vectors[history].mean(axis=0) + 0.6 * np.log1p(popularity)
        truth[history] = -np.inf
        contexts.append(HistoryContext(items=history))
        targets.append(np.argsort(-truth)[:2])
    scorers = {
        "F": FactorScorer(item_vectors=item_vectors),
        "MostPop": PopularityScorer(popularity=popularity),
    }
    pipeline = RankerPipeline(
        scorers=scorers,
        item_features=ItemFeatures.build(popularity=popularity),
        context_kind="history",
        n_candidates=60,
    )
    return pipeline, contexts, targets


def hit_rate(top: np.ndarray, targets) -> float:
    found = [len(np.intersect1d(row, t)) / len(t) for row, t in zip(top, targets, strict=True)]
    return float(np.mean(found))


def test_the_ranker_combines_its_scorers_better_than_either_on_held_out_contexts(world):
    pipeline, contexts, targets = world
    fit_rows, held_rows = split_halves(len(contexts), seed=3)
    rows = candidate_rows(pipeline, contexts, [c.items for c in contexts])
    fit = fit_ranker(
        pipeline, rows=rows.take(fit_rows), targets=[targets[r] for r in fit_rows], seed=3
    )
    ranker = pipeline.with_booster(fit.booster)

    ranked = rank_rows(ranker, rows.take(held_rows), k=10)
    held_targets = [targets[r] for r in held_rows]
    alone = {
        name: hit_rate(
            np.vstack(
                [scorer.top_k(contexts[r], 10, exclude=contexts[r].items)[0] for r in held_rows]
            ),  # fmt: skip
            held_targets,
        )
        for name, scorer in pipeline.scorers.items()
    }
    assert hit_rate(ranked, held_targets) > max(alone.values()) + 0.1
    assert fit.groups <= len(fit_rows) and 0 < fit.candidate_recall <= 1


def test_excluded_and_history_items_are_never_candidates_and_the_rest_score_minus_inf(world):
    pipeline, contexts, targets = world
    fit = fit_ranker(pipeline, contexts=contexts[:200], targets=targets[:200], seed=1)
    ranker = pipeline.with_booster(fit.booster)
    context = contexts[300]
    exclude = np.arange(0, 40)

    top, scores = ranker.top_k(context, 50, exclude=exclude)

    assert not set(top) & (set(exclude) | set(context.items))
    assert np.all(np.diff(scores) <= 0)
    full = ranker.score_many([context], [exclude])[0]
    candidates = np.flatnonzero(np.isfinite(full))
    assert len(candidates) <= 2 * pipeline.n_candidates
    assert not set(candidates) & set(exclude)


def test_evaluation_orders_only_the_candidates_and_ranks_as_a_full_catalog_row_would(world):
    """rank_contexts takes a ranker's top items from its candidates alone; the lists equal those
    of its catalog-wide scores with the excluded items removed, ties to the lower index."""
    pipeline, contexts, targets = world
    ranker = pipeline.with_booster(
        fit_ranker(pipeline, contexts=contexts[:200], targets=targets[:200], seed=2).booster
    )
    held = contexts[200:500]
    excluded = [np.union1d(c.items, np.arange(i % 7)) for i, c in enumerate(held)]

    ranked = rank_contexts(ranker, held, excluded, k=150)

    full = exclude_items(ranker.score_many(held, excluded), excluded)
    assert ranked.tolist() == top_k_indices(full, 150).tolist()
    assert (ranked == PAD).any()  # rows with fewer candidates than k are padded


def test_a_saved_ranker_scores_exactly_as_before(world, tmp_path):
    pipeline, contexts, targets = world
    ranker = pipeline.with_booster(
        fit_ranker(pipeline, contexts=contexts[:150], targets=targets[:150], seed=2).booster
    )
    save_scorer(ranker, tmp_path / "ranker")
    loaded = load_scorer(tmp_path / "ranker")

    assert loaded.feature_names == ranker.feature_names
    np.testing.assert_allclose(loaded.score(contexts[400]), ranker.score(contexts[400]))


def test_an_unfitted_ranker_refuses_to_score(world):
    pipeline, contexts, _ = world
    with pytest.raises(ValueError, match="not fitted"):
        pipeline.score(contexts[0])


def test_halves_are_seeded_disjoint_and_cover_everything():
    first, second = split_halves(101, seed=5)
    assert not set(first) & set(second) and len(first) + len(second) == 101
    assert split_halves(101, seed=5)[0].tolist() == first.tolist()
    assert split_halves(101, seed=6)[0].tolist() != first.tolist()


def test_sequence_features_carry_the_prediction_time_and_the_last_artist():
    popularity = np.arange(10, dtype=float)
    artist = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    pipeline = RankerPipeline(
        scorers={"MostPop": PopularityScorer(popularity=popularity)},
        item_features=ItemFeatures.build(popularity=popularity, artist=artist),
        context_kind="sequence",
        n_candidates=10,
    )
    context = SequenceContext(items=np.array([5, 2]), hour=21, dow=4)
    block = pipeline.candidate_block([context])
    features = dict(zip(pipeline.feature_names, block.features.T, strict=True))
    items = block.candidates[0].tolist()

    assert 2 not in items and 5 not in items
    assert set(features["hour"]) == {21} and set(features["dow"]) == {4}
    same = features["same_artist_as_last"]
    assert same[items.index(3)] == 1 and same[items.index(4)] == 0  # the last item is 2
    assert features["artist_in_history"][items.index(4)] == 1  # item 5's artist


@pytest.mark.parametrize("context_kind", ["history", "sequence"])
def test_a_batch_of_contexts_gets_the_feature_rows_each_context_gets_alone(context_kind):
    """Features are built for a whole batch at once: no context's rows may depend on the others
    (scores, ranks, gaps, tags, artists in the history and in the slate, time, last artist)."""
    rng = np.random.default_rng(11)
    n_items = 80
    popularity = rng.pareto(1.5, size=n_items) * 10
    content = rng.normal(size=(n_items, 5)) * (rng.random((n_items, 1)) > 0.2)  # some untagged
    artist = rng.integers(-1, 12, size=n_items)  # -1: unknown
    pipeline = RankerPipeline(
        scorers={
            "F": FactorScorer(item_vectors=rng.normal(size=(n_items, 4)).astype(np.float32)),
            "MostPop": PopularityScorer(popularity=popularity),
        },
        item_features=ItemFeatures.build(popularity=popularity, content=content, artist=artist),
        context_kind=context_kind,
        n_candidates=15,
    )
    make = HistoryContext if context_kind == "history" else SequenceContext
    contexts = [
        make(items=rng.choice(n_items, size=size, replace=bool(size % 2)))
        for size in (3, 0, 1, 8, 5, 2, 12)
    ]
    if context_kind == "sequence":
        contexts.append(SequenceContext(items=[4, 4, 7], hour=5, dow=6))
    excluded = [rng.choice(n_items, size=2, replace=False) for _ in contexts]

    together = pipeline.candidate_block(contexts, excluded)
    for i, context in enumerate(contexts):
        alone = pipeline.candidate_block([context], [excluded[i]])
        np.testing.assert_array_equal(together.candidates[i], alone.candidates[0])
        np.testing.assert_array_equal(together.features[together.rows(i)], alone.features)
    assert together.features.shape == (together.offsets[-1], len(pipeline.feature_names))


def reference_features(pipeline, context, items, scores, tops) -> np.ndarray:
    """One context's feature rows straight from the definitions in ranker's docstring."""
    features, n = pipeline.item_features, pipeline.n_candidates
    history = context.items[(context.items >= 0) & (context.items < pipeline.n_items)]
    columns = []
    for name in pipeline.scorers:
        values = scores[name][items].astype(np.float32)
        best = values[np.isfinite(values)].max() if np.isfinite(values).any() else 0.0
        values[~np.isfinite(values)] = np.nan
        shown = tops[name][tops[name] >= 0].tolist()
        ranks = [shown.index(item) if item in shown else n for item in items.tolist()]
        columns += [values, np.array(ranks, np.float32), values - best]
    columns.append(features.log_popularity[items])
    if features.content is not None:
        profile = features.content[history].mean(axis=0) if len(history) else np.zeros(1)
        similarity = np.zeros(len(items), np.float32)
        if profile.any():
            similarity = features.content[items] @ (profile / np.linalg.norm(profile))
        columns.append(similarity)
    if features.artist is not None:
        artists, shown_artists = features.artist[history].tolist(), features.artist[items]
        columns.append([artists.count(a) if a >= 0 else 0 for a in shown_artists.tolist()])
        columns.append(
            [(shown_artists == a).sum() - 1 if a >= 0 else 0 for a in shown_artists.tolist()]
        )
    columns.append(np.full(len(items), np.log1p(len(set(history.tolist())))))
    if pipeline.context_kind == "sequence":
        columns += [np.full(len(items), context.hour), np.full(len(items), context.dow)]
        if features.artist is not None:
            last = features.artist[history[-1]] if len(history) else -1
            columns.append((features.artist[items] == last) & (last >= 0))
    return np.column_stack(columns).astype(np.float32)


@pytest.mark.parametrize("context_kind", ["history", "sequence"])
def test_each_feature_of_a_batch_is_its_definition(context_kind):
    """The batch computes every context's features at once; each row equals the definition
    computed for its context alone (ties in scores, -inf scores, unknown artists, untagged
    items, empty histories, repeated items)."""
    rng = np.random.default_rng(5)
    n_items = 120
    popularity = rng.integers(0, 5, size=n_items).astype(float)
    content = rng.normal(size=(n_items, 4)) * (rng.random((n_items, 1)) > 0.3)
    artist = rng.integers(-1, 9, size=n_items)
    holes = rng.integers(0, 3, size=(n_items, 2)).astype(np.float32)

    class WithHoles(FactorScorer):
        def score_many(self, contexts):
            block = super().score_many(contexts)
            block[:, ::7] = -np.inf  # items this scorer cannot score
            return block

    scorers = {
        "F": FactorScorer(item_vectors=rng.normal(size=(n_items, 3)).astype(np.float32)),
        "H": WithHoles(item_vectors=holes),
        "MostPop": PopularityScorer(popularity=popularity),
    }
    pipeline = RankerPipeline(
        scorers=scorers,
        item_features=ItemFeatures.build(popularity=popularity, content=content, artist=artist),
        context_kind=context_kind,
        n_candidates=25,
        candidate_scorers=["F", "H"],
    )
    make = HistoryContext if context_kind == "history" else SequenceContext
    contexts = [make(items=rng.choice(n_items, size=size)) for size in (0, 1, 4, 9, 6, 3, 12)]
    if context_kind == "sequence":
        contexts = [
            SequenceContext(items=c.items, hour=int(rng.integers(24)), dow=int(rng.integers(7)))
            for c in contexts
        ]
    blocked = [np.unique(c.items) for c in contexts]
    scores = {
        name: exclude_items(scorer.score_many(contexts), blocked)
        for name, scorer in scorers.items()
    }
    tops = {name: top_k_indices(block, 25) for name, block in scores.items()}

    block = pipeline.block_from_scores(contexts, scores, tops)

    for i, context in enumerate(contexts):
        found = np.concatenate([tops["F"][i], tops["H"][i]])
        np.testing.assert_array_equal(block.candidates[i], np.unique(found[found >= 0]))
        expected = reference_features(
            pipeline,
            context,
            block.candidates[i],
            {name: s[i] for name, s in scores.items()},
            {name: t[i] for name, t in tops.items()},
        )
        np.testing.assert_array_equal(block.features[block.rows(i)], expected)
    assert np.isnan(block.features[:, 3]).any()  # H's -inf scores are missing values


def test_an_item_item_recommendation_is_explained_by_the_strongest_history_neighbour():
    weights = sp.csr_matrix(
        ([0.9, 0.2, 0.3, 0.8], ([0, 1, 0, 1], [2, 2, 3, 3])), shape=(4, 4), dtype=np.float32
    )
    scorer = ItemItemScorer(weights=weights)
    context = HistoryContext(items=np.array([0, 1]))

    reasons = explain(scorer, context, np.array([2, 3]))

    assert reasons[2].source == "neighbour" and reasons[2].history_item == 0
    assert reasons[3].history_item == 1


def test_a_factor_recommendation_is_explained_by_the_closest_history_item():
    vectors = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    reasons = explain(FactorScorer(item_vectors=vectors), HistoryContext(items=[0, 1]), [2, 3])
    assert (reasons[2].history_item, reasons[3].history_item) == (0, 1)


def test_a_ranker_is_explained_by_the_scorer_that_contributed_most(world):
    pipeline, contexts, targets = world
    ranker = pipeline.with_booster(
        fit_ranker(pipeline, contexts=contexts[:200], targets=targets[:200], seed=4).booster
    )
    context = contexts[500]
    top, _ = ranker.top_k(context, 10, exclude=context.items)

    groups = ranker.contributions(context, top, exclude=context.items)
    reasons = explain(ranker, context, top, exclude=context.items)

    assert set(groups) == set(top.tolist())
    assert set(groups.values()) <= {"F", "MostPop", "popularity", "context"}
    for item, group in groups.items():
        expected = {"F": "similar", "MostPop": "popular", "popularity": "popular"}[group]
        assert reasons[item].source == expected
