"""The CF core: interactions, CF-random split, ranking, baselines, LightGCN, content, loaders,
the recommender entry point and the benchmark runner. Pure numpy/scipy/torch, no Django."""

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from torch_geometric.nn.models import LightGCN

from mltasks.ml.artifacts import (
    load_recommender_artifact,
    load_scorer,
    save_recommender_artifact,
    save_scorer,
)
from mltasks.ml.bench.cf import quick_config, run_cf_benchmark
from mltasks.ml.cf.baselines import EASE, ItemKNN, MostPop, factorize_scores
from mltasks.ml.cf.content import (
    ContentModel,
    fill_cold_items,
    fit_tag_content,
    with_artist_tags,
)
from mltasks.ml.cf.hybrid import blend_factors, hybrid_scores, standardize_rows
from mltasks.ml.cf.lightgcn import (
    LightGCNConfig,
    epoch_batch_size,
    normalized_adjacency,
    train_lightgcn,
)
from mltasks.ml.cf.recommender import RecommenderConfig, train_user_recommender
from mltasks.ml.data.cf_datasets import load_adjacency, load_csv, load_dataset
from mltasks.ml.data.interactions import Interactions, training_weights
from mltasks.ml.data.item_tags import ItemTags
from mltasks.ml.data.splits import cf_random_split, held_out_items
from mltasks.ml.eval.ranking import evaluate_scorer, rank_users
from mltasks.ml.eval.topk import exclude_items, top_k_indices
from mltasks.ml.scorers.base import HistoryContext

FIXTURES = Path(__file__).parent / "fixtures" / "cf"


def planted_interactions(
    n_users=120, n_items=80, n_clusters=4, per_user=12, seed=0
) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Users and items in clusters; a user plays items of their own cluster (plus 2 random ones).

    Items 0..7 are globally popular noise, so popularity alone is a weak but non-trivial signal.
    """
    rng = np.random.default_rng(seed)
    user_cluster = np.arange(n_users) % n_clusters
    item_cluster = np.arange(n_items) % n_clusters
    users, items = [], []
    for user in range(n_users):
        own = np.flatnonzero(item_cluster == user_cluster[user])
        chosen = np.concatenate(
            [rng.choice(own, per_user, replace=False), rng.choice(8, 2, replace=False)]
        )
        for item in np.unique(chosen):
            users.append(user)
            items.append(item)
    weights = rng.integers(1, 50, size=len(users))
    interactions = Interactions(
        user_ids=np.array(users) + 100, item_ids=np.array(items) + 1000, weights=weights
    )
    return interactions, user_cluster, item_cluster


def tiny_lightgcn(**changes) -> LightGCNConfig:
    config = LightGCNConfig(
        embedding_dim=16,
        num_layers=2,
        lr=0.05,
        batch_size=256,
        max_epochs=25,
        eval_every=5,
        patience=3,
        show_progress=False,
        num_threads=1,  # tiny graphs: a second thread only adds synchronisation
    )
    return replace(config, **changes)


# ----------------------------------------------------------------------------- interactions


def test_interactions_merge_repeated_pairs_and_drop_skips_and_dislikes():
    log = Interactions(
        user_ids=np.array(["a", "a", "a", "b", "b"]),
        item_ids=np.array(["x", "x", "y", "x", "z"]),
        weights=np.array([2.0, 3.0, -1.0, 1.0, 0.0]),  # y is a dislike, z a skip
    )
    matrix = log.to_csr(scheme="binary")
    assert matrix.shape == (2, 3)
    assert matrix.nnz == 2  # (a, x) once, (b, x)
    users, items, weights = log.positive_pairs()
    assert weights.tolist() == [5.0, 1.0]  # a's two plays of x add up
    assert log.items.ids[items].tolist() == ["x", "x"]


def test_log_weighting_compresses_play_counts():
    weights = training_weights(np.array([1.0, 10.0, 10_000.0]), "log")
    assert weights[0] == pytest.approx(1.0)
    assert weights[2] / weights[0] < 11
    with pytest.raises(ValueError, match="unknown weight scheme"):
        training_weights(np.array([1.0]), "sqrt")


# ----------------------------------------------------------------------------- split


def test_split_is_deterministic_for_a_seed_and_changes_with_the_seed():
    log, _, _ = planted_interactions()
    first, again = cf_random_split(log, seed=7), cf_random_split(log, seed=7)
    other = cf_random_split(log, seed=8)
    for part in ("train", "valid", "test"):
        assert (getattr(first, part) != getattr(again, part)).nnz == 0
    assert (first.test != other.test).nnz > 0


def test_split_ignores_the_order_of_the_log_rows():
    log, _, _ = planted_interactions()
    order = np.random.default_rng(1).permutation(len(log))
    shuffled = Interactions(
        user_ids=log.user_ids[order],
        item_ids=log.item_ids[order],
        weights=log.weights[order],
        users=log.users,
        items=log.items,
    )
    assert (cf_random_split(log).test != cf_random_split(shuffled).test).nnz == 0


def test_split_parts_are_disjoint_and_cover_every_positive():
    log, _, _ = planted_interactions()
    split = cf_random_split(log)
    train, valid, test = (
        m.astype(bool).astype(int) for m in (split.train, split.valid, split.test)
    )
    assert train.multiply(valid).nnz == 0
    assert train.multiply(test).nnz == 0
    assert valid.multiply(test).nnz == 0
    assert (train + valid + test).nnz == log.to_csr().nnz


def test_split_proportions_and_at_least_one_test_item_per_user():
    users = np.concatenate([np.zeros(50), np.ones(1), np.full(7, 2)]).astype(int)
    items = np.concatenate([np.arange(50), [0], np.arange(7)])
    split = cf_random_split(Interactions(user_ids=users, item_ids=items, weights=np.ones(58)))
    per_user = [np.diff(m.indptr).tolist() for m in (split.train, split.valid, split.test)]
    # 50 items: 10 test, round(10% of 40) = 4 valid, 36 train; 1 item: test only;
    # 7 items: round-half-up(1.4) = 1 test, round(0.6) = 1 valid, 5 train.
    assert per_user == [[36, 0, 5], [4, 0, 1], [10, 1, 1]]


# ----------------------------------------------------------------------------- ranking


def test_top_k_excludes_training_items_and_orders_best_first():
    scores = np.array([[0.9, 0.1, 0.8, 0.5, 0.7], [0.1, 0.2, 0.3, 0.4, 0.5]])
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]))
    top = top_k_indices(exclude_items(scores, exclude), 3)
    assert top.tolist() == [[2, 4, 3], [3, 2, 1]]


def test_short_catalogs_are_padded_with_minus_one_not_with_known_items():
    exclude = sp.csr_matrix(np.array([[1, 0, 1]]))
    top = top_k_indices(exclude_items(np.array([[3.0, 2.0, 1.0]]), exclude), 4)
    assert top.tolist() == [[1, -1, -1, -1]]


def test_ties_are_broken_by_item_index():
    assert top_k_indices(np.zeros((1, 5)), 3).tolist() == [[0, 1, 2]]


def test_rankings_never_contain_training_items_in_any_batch():
    log, _, _ = planted_interactions()
    split = cf_random_split(log)
    model = MostPop().fit(split.train)
    users = np.arange(split.n_users)
    top = rank_users(model.score, users, k=20, exclude=split.train, batch_size=7)
    for user in users:
        assert not set(top[user]) & set(split.train[user].indices)
    assert top.shape == (split.n_users, 20)


# ----------------------------------------------------------------------------- baselines


def _cluster_precision(model, split, user_cluster, item_cluster, k=5) -> float:
    users = np.arange(split.n_users)
    top = rank_users(model.score, users, k=k, exclude=split.train)
    return float(np.mean(item_cluster[top] == user_cluster[users][:, None]))


@pytest.fixture(scope="module")
def planted():
    log, user_cluster, item_cluster = planted_interactions()
    split = cf_random_split(log, seed=2020)
    # Interactions index raw ids in sorted order, so index = raw id - offset here.
    return log, split, user_cluster, item_cluster


def test_mostpop_scores_every_user_by_item_popularity(planted):
    _, split, _, _ = planted
    model = MostPop().fit(split.train)
    scores = model.score(np.array([0, 5]))
    assert np.array_equal(scores[0], scores[1])
    assert np.array_equal(scores[0], np.diff(split.train.tocsc().indptr))


@pytest.mark.parametrize("model", [ItemKNN(n_neighbors=20), EASE(lam=10.0)], ids=str)
def test_item_models_recommend_the_users_own_cluster(planted, model):
    _, split, user_cluster, item_cluster = planted
    model.fit(split.train)
    assert _cluster_precision(model, split, user_cluster, item_cluster) > 0.8
    assert _cluster_precision(MostPop().fit(split.train), split, user_cluster, item_cluster) < 0.5


def test_itemknn_keeps_at_most_n_neighbors_per_item(planted):
    _, split, _, _ = planted
    model = ItemKNN(n_neighbors=3).fit(split.train)
    assert np.diff(model.similarity.tocsc().indptr).max() <= 3


def _ease_item_space(x: np.ndarray, lam: float) -> np.ndarray:
    precision = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    weights = -precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return x @ weights


@pytest.mark.parametrize("shape", [(12, 30), (30, 12)], ids=["users<items", "items<=users"])
def test_ease_matches_the_closed_form_in_both_solution_spaces(shape):
    rng = np.random.default_rng(3)
    x = (rng.random(shape) < 0.3).astype(np.float64)
    model = EASE(lam=2.0).fit(sp.csr_matrix(x))
    scores = model.score(np.arange(shape[0]))
    np.testing.assert_allclose(scores, _ease_item_space(x, 2.0), rtol=1e-4, atol=1e-4)


def test_ease_side_information_links_items_that_share_tags_but_no_listeners():
    # Items 0 and 1 are never played together, but carry the same tag.
    plays = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 0]], dtype=float))
    tags = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float))
    plain = EASE(lam=1.0).fit(plays).score(np.array([2]))[0]
    with_tags = EASE(lam=1.0, item_side=tags, side_weight=2.0).fit(plays).score(np.array([2]))[0]
    assert plain[1] <= 0.0 < with_tags[1]
    assert EASE(lam=1.0, item_side=tags, side_weight=2.0).params()["n_side_features"] == 2


def test_factorize_scores_recovers_a_low_rank_score_matrix():
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((40, 3)), rng.standard_normal((3, 25))
    matrix = left @ right
    user_vectors, item_vectors = factorize_scores(lambda u: matrix[u], 40, 25, 3, batch_size=7)
    np.testing.assert_allclose(user_vectors @ item_vectors.T, matrix, atol=1e-3)


# ----------------------------------------------------------------------------- LightGCN


def test_normalized_adjacency_is_symmetric_with_unit_spectral_radius(planted):
    _, split, _, _ = planted
    adjacency = normalized_adjacency(split.train)
    assert (abs(adjacency - adjacency.T) > 1e-6).nnz == 0
    assert adjacency.shape == (split.n_users + split.n_items,) * 2
    top_eigenvalue = sp.linalg.eigsh(adjacency.astype(np.float64), k=1, which="LA")[0][0]
    assert top_eigenvalue == pytest.approx(1.0, abs=1e-4)


def counted_propagations(monkeypatch) -> list:
    """A list that gets one entry per propagation over the graph (LightGCN.get_embedding):
    one per training batch, one per validation or final embedding."""
    propagations = []
    original = LightGCN.get_embedding

    def counted(model, *args, **kwargs):
        propagations.append(1)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(LightGCN, "get_embedding", counted)
    return propagations


def test_lightgcn_beats_mostpop_on_planted_structure_and_logs_history(planted):
    _, split, _, _ = planted
    result = train_lightgcn(split.train, config=tiny_lightgcn(), valid_csr=split.valid, seed=1)
    lightgcn = evaluate_scorer(result.score, target=split.test, exclude=split.train)
    most_pop = evaluate_scorer(
        MostPop().fit(split.train).score, target=split.test, exclude=split.train
    )
    assert lightgcn["nDCG@20"] > 1.5 * most_pop["nDCG@20"]
    assert result.user_vectors.shape == (split.n_users, 16)
    assert result.item_vectors.shape == (split.n_items, 16)
    assert [row["epoch"] for row in result.history] == list(range(1, len(result.history) + 1))
    assert all("loss" in row and "epoch_seconds" in row for row in result.history)
    assert result.best_epoch in [row["epoch"] for row in result.history if "valid_nDCG@20" in row]
    assert result.time_to_quality["100%"]["epoch"] == result.best_epoch


def test_lightgcn_validates_where_its_budget_stopped_it_when_no_pass_was_due_yet(planted):
    """The budget is checked after every batch: spent after the first one, the run stops
    within its first epoch, validates that, and keeps it as the fraction it trained."""
    _, split, _, _ = planted
    batches = -(-split.train.nnz // 256)
    assert batches > 4
    config = tiny_lightgcn(eval_every=5, max_seconds=0.0)
    result = train_lightgcn(split.train, config=config, valid_csr=split.valid, seed=1)
    assert len(result.history) == 1 and "valid_nDCG@20" in result.history[0]
    assert result.history[0]["batches"] == f"1/{batches}"
    assert result.best_epoch == round(1 / batches, 4)
    assert result.best_valid_ndcg == result.history[0]["valid_nDCG@20"]


def test_a_lightgcn_refit_trains_its_chosen_epochs_whatever_the_budget(planted):
    _, split, _, _ = planted
    config = tiny_lightgcn(max_seconds=0.0)  # spent before the first epoch ends
    refit = train_lightgcn(split.train, config=config, seed=1, fixed_epochs=3)
    assert [row["epoch"] for row in refit.history] == [1, 2, 3]
    assert not any("batches" in row for row in refit.history)  # whole epochs
    searched = train_lightgcn(split.train, config=config, valid_csr=split.valid, seed=1)
    assert len(searched.history) == 1  # a run that selects its epochs stops at its budget


def test_a_lightgcn_refit_of_a_fractional_epoch_trains_that_share_of_its_batches(
    planted, monkeypatch
):
    _, split, _, _ = planted
    batches = -(-split.train.nnz // 256)
    propagations = counted_propagations(monkeypatch)
    refit = train_lightgcn(split.train, config=tiny_lightgcn(), seed=1, fixed_epochs=0.5)
    assert len(propagations) == round(0.5 * batches) + 1  # the batches, then the vectors
    assert refit.history[0]["batches"] == f"{round(0.5 * batches)}/{batches}"
    assert refit.best_epoch == 0.5
    propagations.clear()
    train_lightgcn(split.train, config=tiny_lightgcn(), seed=1, fixed_epochs=1.25)
    assert len(propagations) == batches + round(0.25 * batches) + 1


def test_lightgcn_is_deterministic_for_a_seed(planted):
    _, split, _, _ = planted
    config = tiny_lightgcn(max_epochs=3)
    first = train_lightgcn(split.train, config=config, seed=5, fixed_epochs=3)
    again = train_lightgcn(split.train, config=config, seed=5, fixed_epochs=3)
    np.testing.assert_array_equal(first.user_vectors, again.user_vectors)
    assert len(first.history) == 3


def test_lightgcn_caps_its_batches_per_epoch_so_an_epoch_costs_time_linear_in_edges(
    planted, monkeypatch
):
    """Every batch propagates over the whole graph: with `max_batches_per_epoch`, a larger
    graph gets larger batches, not more propagations."""
    _, split, _, _ = planted
    n_edges = split.train.nnz
    propagations = counted_propagations(monkeypatch)
    uncapped = train_lightgcn(split.train, config=tiny_lightgcn(), seed=1, fixed_epochs=2)
    uncapped_count, propagations[:] = len(propagations), []
    capped_config = tiny_lightgcn(max_batches_per_epoch=3)
    capped = train_lightgcn(split.train, config=capped_config, seed=1, fixed_epochs=2)

    assert n_edges > 3 * 256  # the cap binds on this graph
    assert uncapped_count == 2 * -(-n_edges // 256) + 1  # two epochs, then the final vectors
    assert len(propagations) == 2 * 3 + 1
    assert [row["batch_size"] for row in uncapped.history] == [256, 256]
    assert [row["batch_size"] for row in capped.history] == [-(-n_edges // 3)] * 2
    assert epoch_batch_size(100, capped_config) == 256  # small graphs keep the configured batch
    assert epoch_batch_size(10_000, capped_config) == 3334
    with pytest.raises(ValueError, match="max_batches_per_epoch"):
        tiny_lightgcn(max_batches_per_epoch=0)


# ----------------------------------------------------------------------------- content, hybrid


def _tag_counts():
    # items 0-2 are "metal", 3-5 "jazz"; item 6 has no tags.
    rows = [0, 0, 1, 2, 2, 3, 4, 4, 5]
    cols = [0, 1, 0, 0, 1, 2, 2, 3, 3]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(7, 4)), [
        "metal",
        "heavy",
        "jazz",
        "bebop",
    ]


def test_content_vectors_put_items_with_shared_tags_together():
    counts, names = _tag_counts()
    content = fit_tag_content(counts, names, dim=2)
    similarity = content.item_vectors @ content.item_vectors.T
    assert similarity[0, 2] > 0.9 and similarity[0, 3] < 0.1
    assert not content.has_content[6]
    scores = content.score_cold_user(tag_names=["JAZZ"])
    assert set(np.argsort(-scores)[:3]) == {3, 4, 5}
    scores = content.score_cold_user(liked_items=np.array([1]))
    assert set(np.argsort(-scores)[:3]) == {0, 1, 2}


def test_tag_counts_can_drop_the_events_on_held_out_pairs():
    # User 0 tagged item 1 with tag 0; user 1 tagged items 0 and 1 with tag 1; -1 = unknown user.
    tags = ItemTags(
        counts=sp.csr_matrix(np.array([[0, 1], [1, 1]], dtype=float)),
        tag_names=["personal", "rock"],
        assignment_users=np.array([0, 1, 1, -1]),
        assignment_items=np.array([1, 0, 1, 1]),
        assignment_tags=np.array([0, 1, 1, 1]),
    )
    held_out = sp.csr_matrix(np.array([[0, 1], [0, 0]], dtype=float))  # (user 0, item 1)
    assert tags.counts_without(held_out).toarray().tolist() == [[0, 1], [0, 2]]
    assert tags.counts_without(None) is tags.counts


def test_artist_tags_flow_to_untagged_tracks():
    artist_tags = sp.csr_matrix(np.array([[3.0, 0.0], [0.0, 2.0]]))
    track_tags = sp.csr_matrix(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
    combined = with_artist_tags(track_tags, np.array([1, 0, -1]), artist_tags, artist_weight=0.5)
    assert combined.toarray().tolist() == [[0.0, 1.0], [2.5, 0.0], [0.0, 0.0]]


def test_cold_items_get_cf_vectors_predicted_from_content():
    rng = np.random.default_rng(0)
    content_vectors = rng.standard_normal((60, 4)).astype(np.float32)
    mapping = rng.standard_normal((4, 3))
    cf_vectors = (content_vectors @ mapping).astype(np.float32)
    content = ContentModel(content_vectors, np.zeros((1, 4)), np.ones(1), ["t"])
    damaged = cf_vectors.copy()
    damaged[50:] = 0.0  # items 50.. have no interactions
    filled, cold = fill_cold_items(damaged, content, np.arange(50), alpha=1e-6)
    assert cold.tolist() == list(range(50, 60))
    np.testing.assert_allclose(filled[50:], cf_vectors[50:], atol=1e-3)


def test_hybrid_mixes_standardised_scores_with_alpha():
    cf = np.array([[1.0, 2.0, 3.0]])
    content = np.array([[30.0, 20.0, 10.0]])
    assert np.argmax(hybrid_scores(cf, content, alpha=0.9)) == 2
    assert np.argmax(hybrid_scores(cf, content, alpha=0.1)) == 0
    np.testing.assert_allclose(hybrid_scores(cf, content, alpha=1.0), standardize_rows(cf))


def test_blended_factors_score_like_the_weighted_sum_of_standardised_scores():
    rng = np.random.default_rng(0)
    blocks = [(rng.standard_normal((5, 3)), rng.standard_normal((20, 3))) for _ in range(2)]
    user_vectors, item_vectors = blend_factors(blocks, [1.0, 0.5])
    expected = sum(
        w * standardize_rows(u @ v.T) for (u, v), w in zip(blocks, [1.0, 0.5], strict=True)
    )
    got = user_vectors @ item_vectors.T
    # Equal up to a per-user constant (the dropped means), so rankings are identical.
    np.testing.assert_allclose(
        got - got.mean(1, keepdims=True), expected - expected.mean(1, keepdims=True), atol=1e-4
    )


# ----------------------------------------------------------------------------- loaders


def test_adjacency_loader_reproduces_the_given_split():
    dataset = load_adjacency(FIXTURES / "adjacency_with_valid")
    split, log = dataset.split, dataset.interactions

    def pairs(matrix):
        coo = matrix.tocoo()
        return sorted(
            zip(log.users.ids[coo.row].tolist(), log.items.ids[coo.col].tolist(), strict=True)
        )

    assert pairs(split.train) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (1, 2),
        (1, 4),
        (2, 1),
        (2, 3),
    ]
    assert pairs(split.valid) == [(0, 4), (1, 6), (2, 5)]
    assert pairs(split.test) == [(0, 7), (0, 8), (1, 9)]  # user 2's test line lists no item


def test_adjacency_loader_carves_validation_from_train_only():
    dataset = load_adjacency(FIXTURES / "adjacency", seed=3)
    split, log = dataset.split, dataset.interactions
    given_test = {0: {10, 11}, 1: {14}, 2: {13}, 3: {0}, 4: {1, 2}}
    users, items = held_out_items(split.test)
    assert {
        int(log.users.ids[u]): set(log.items.ids[i].tolist())
        for u, i in zip(users, items, strict=True)
    } == given_test
    # 10% rounded half up of 10, 7, 6, 5, 4 training items.
    assert np.diff(split.valid.indptr).tolist() == [1, 1, 1, 1, 0]
    assert split.train.multiply(split.valid).nnz == 0
    again = load_adjacency(FIXTURES / "adjacency", seed=3).split
    assert (again.valid != split.valid).nnz == 0


def test_adjacency_loader_rejects_a_malformed_line_with_file_and_line():
    with pytest.raises(ValueError, match=r"train\.txt:2: .*'x4'"):
        load_adjacency(FIXTURES / "adjacency_malformed")


def test_csv_loader_reads_weights_and_timestamps_and_reports_bad_rows():
    dataset = load_csv(FIXTURES / "interactions.csv")
    log = dataset.interactions
    assert (log.n_users, log.n_items, len(log)) == (3, 5, 10)
    assert log.timestamps is not None and log.timestamps[0] == 1000
    matrix = log.to_csr()
    assert matrix.nnz == 8  # (u1, a) twice merged, (u2, d) has weight 0
    with pytest.raises(ValueError, match=r"bad_weight\.csv:3: weight is not a number: 'lots'"):
        load_csv(FIXTURES / "bad_weight.csv")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("movielens", FIXTURES)


# ----------------------------------------------------------------------------- end to end


def _small_config(**changes) -> RecommenderConfig:
    config = quick_config(RecommenderConfig(show_progress=False))
    defaults = {
        "lightgcn": tiny_lightgcn(max_epochs=10),
        "ease_rank": 8,
        "content_dim": 4,
        "content_block_dim": 2,
    }
    return replace(config, **{**defaults, **changes})


def test_the_searchs_best_lightgcn_trial_is_kept_when_it_trained_as_final(planted, monkeypatch):
    """The best trial is LightGCN trained on train with the chosen configuration and early-stopped
    on validation: the recommender keeps it and trains LightGCN again only for its refits."""
    from mltasks.ml.cf import recommender, search

    fixed_epochs = []

    def counted_train_lightgcn(*args, **kwargs):
        fixed_epochs.append(kwargs.get("fixed_epochs"))
        return train_lightgcn(*args, **kwargs)

    monkeypatch.setattr(recommender, "train_lightgcn", counted_train_lightgcn)
    monkeypatch.setattr(search, "train_lightgcn", counted_train_lightgcn)
    log = planted[0]
    result = train_user_recommender(interactions=log, config=_small_config(search_seconds=4.0))

    report = result.timings["lightgcn_search"]
    lightgcn = next(model for model in result.models if model.name == "LightGCN")
    assert lightgcn.valid["nDCG@20"] == pytest.approx(report["best"]["value"], abs=1e-9)
    assert lightgcn.params["best_epoch"] == report["best"]["epoch"]
    trials, after = fixed_epochs[: report["n_trials"]], fixed_epochs[report["n_trials"] :]
    assert trials == [None] * report["n_trials"]
    best = report["trials"][report["best"]["trial"]]
    if not best["budget_cut"]:  # ended by early stopping, within its 10 epochs
        assert report["best"]["trained_as_final"]
    expected = [] if report["best"]["trained_as_final"] else [None]
    assert after == [*expected, report["best"]["epoch"], report["best"]["epoch"]]


def test_recommender_serves_the_best_candidate_on_the_selection_half(planted, tmp_path):
    log, _, _, item_cluster = planted
    tags = sp.csr_matrix(
        (np.ones(log.n_items), (np.arange(log.n_items), item_cluster)), shape=(log.n_items, 4)
    )
    result = train_user_recommender(
        interactions=log,
        item_tags=tags,
        tag_names=["a", "b", "c", "d"],
        item_artist=item_cluster,
        config=_small_config(serve_fit="all"),
        seed=2020,
    )
    names = [m.name for m in result.models if m.name != "EASE+tags"]
    assert names == [
        "MostPop", "ItemKNN", "EASE", "LightGCN", "EASE-SVD", "TunedIn-blend", "TunedIn-ranker"
    ]  # fmt: skip
    candidates = [m for m in result.models if m.selection]
    assert {m.name for m in candidates} >= {"MostPop", "ItemKNN", "EASE", "TunedIn-ranker"}
    best = max(candidates, key=lambda m: m.selection["nDCG@20"])
    assert result.served_model == best.name == result.selection["served"]
    assert result.selection["scores"][best.name] == best.selection["nDCG@20"]
    assert all(m.valid and m.test for m in result.models)
    # The selection half is not the half the ranker was fitted on.
    ranker = next(m for m in result.models if m.name == "TunedIn-ranker")
    assert (
        ranker.params["fitting_half"]["contexts"] + result.selection["users"]
        == (result.split["n_valid_users"])
    )
    assert result.ranker["feature_importances"]
    assert result.user_vectors.shape[0] == log.n_users
    assert result.item_vectors.shape[0] == log.n_items
    assert result.user_vectors.shape[1] <= 128
    assert result.fitted_on == "all"
    assert len(result.history["LightGCN"]) >= 5
    assert result.served_scorer.n_items == log.n_items

    path = save_recommender_artifact(result, tmp_path / "model")
    loaded = load_recommender_artifact(path)
    np.testing.assert_array_equal(loaded.user_vectors, result.user_vectors)
    np.testing.assert_array_equal(loaded.item_ids, result.item_ids)
    assert loaded.served_model == result.served_model
    assert loaded.metrics == result.metrics
    assert loaded.selection == result.selection
    assert loaded.content_model().score_cold_user(tag_names=["a"]).shape == (log.n_items,)
    save_scorer(result.served_scorer, tmp_path / "served")
    served = load_scorer(tmp_path / "served")
    context = HistoryContext(items=log.to_csr()[0].indices, user=0)
    np.testing.assert_allclose(
        served.score(context), result.served_scorer.score(context), rtol=1e-5
    )


def test_a_lightgcn_far_below_the_baselines_is_reported_and_dropped(planted, monkeypatch):
    """LightGCN that learns nothing in its budget keeps its validation column and the reason,
    and is neither refitted nor blended nor a ranker feature; the rest still trains and serves."""
    from mltasks.ml.cf import recommender

    trainings = []

    def counted_train_lightgcn(*args, **kwargs):
        trainings.append(kwargs.get("fixed_epochs"))
        return train_lightgcn(*args, **kwargs)

    monkeypatch.setattr(recommender, "train_lightgcn", counted_train_lightgcn)
    log, _, _, item_cluster = planted
    tags = sp.csr_matrix(
        (np.ones(log.n_items), (np.arange(log.n_items), item_cluster)), shape=(log.n_items, 4)
    )
    untrained = tiny_lightgcn(lr=1e-7, max_epochs=1, eval_every=1)
    config = _small_config(lightgcn=untrained, serve_fit="all")
    result = train_user_recommender(
        interactions=log, item_tags=tags, tag_names=list("abcd"), item_artist=item_cluster,
        config=config, seed=2020,
    )  # fmt: skip

    reports = {m.name: m for m in result.models}
    lightgcn, ease = reports["LightGCN"], reports["EASE"]
    assert lightgcn.valid["nDCG@20"] < 0.5 * ease.valid["nDCG@20"]
    assert "is below 0.5 x EASE" in lightgcn.params["dropped"]
    assert (lightgcn.test, lightgcn.selection, lightgcn.servable) == ({}, {}, False)
    assert trainings == [None]  # the validation fit only: no test or serving refit
    blend = reports["TunedIn-blend"]
    assert blend.params["lightgcn_weight"] == 0.0 and blend.test and blend.selection
    assert blend.dim == config.ease_rank + config.content_block_dim
    assert "LightGCN" not in result.selection["scores"]
    assert not any("LightGCN" in name for name in reports["TunedIn-ranker"].params["features"])
    assert result.vectors_model in ("EASE-SVD", "TunedIn-blend")
    assert result.served_scorer.score(HistoryContext(items=np.array([0, 4]), user=0)).shape == (
        log.n_items,
    )

    kept = train_user_recommender(
        interactions=log, config=replace(config, lightgcn_min_baseline_share=0.0), seed=2020
    )
    kept_lightgcn = next(m for m in kept.models if m.name == "LightGCN")
    assert kept_lightgcn.test and "dropped" not in kept_lightgcn.params


def test_recommender_refuses_data_too_small_to_validate():
    log = load_csv(FIXTURES / "interactions.csv").interactions  # at most 3 positives per user
    with pytest.raises(ValueError, match="the valid split is empty"):
        train_user_recommender(interactions=log, config=_small_config())


def test_benchmark_runner_writes_json_and_topk_dump(tmp_path):
    dataset = load_adjacency(FIXTURES / "adjacency")
    out = tmp_path / "cf.json"
    report = run_cf_benchmark(
        dataset=dataset, config=_small_config(), out=out, dump_topk_dir=tmp_path / "topk"
    )
    written = json.loads(out.read_text())
    assert written["served_model"] == report["served_model"]
    assert written["split"]["n_test"] == 7
    assert set(written["metrics"]) - {"EASE+tags"} == {
        "MostPop",
        "ItemKNN",
        "EASE",
        "LightGCN",
        "EASE-SVD",
        "TunedIn-blend",
    }
    assert set(written["metrics"]["EASE"]["test"]) == {
        "Recall@20",
        "nDCG@20",
        "nDCG@10",
        "HR@10",
        "Coverage@100",
    }
    assert written["history"]["LightGCN"][0]["epoch"] == 1
    lines = (tmp_path / "topk" / "EASE.txt").read_text().splitlines()
    assert [int(line.split()[0]) for line in lines] == [0, 1, 2, 3, 4]
    train_valid = dataset.split.train_valid()
    for line in lines:
        user, *items = map(int, line.split())
        assert len(items) == len(set(items))
        known = set(train_valid[user].indices)  # ids equal indices in this fixture
        assert not known & set(items)


def test_evaluation_ignores_tags_that_reveal_held_out_pairs(planted):
    """Each user tags every artist they play with a personal tag. As a bare count matrix those
    tags leak the held-out pairs into the features; given as ItemTags with the taggers, the
    evaluation fits drop the events on held-out pairs and nothing gets the leaked boost."""
    log = planted[0]
    users, items, _ = log.positive_pairs()
    personal = ItemTags(
        counts=sp.csr_matrix(
            (np.ones(len(users)), (items, users)), shape=(log.n_items, log.n_users)
        ),
        tag_names=[f"user{u}" for u in range(log.n_users)],
        assignment_users=users,
        assignment_items=items,
        assignment_tags=users,
    )
    config = _small_config(ease_side_weights=(3.0,), serve_fit="train+valid")
    leaky = train_user_recommender(interactions=log, item_tags=personal.counts, config=config)
    clean = train_user_recommender(interactions=log, item_tags=personal, config=config)
    leaked = leaky.metrics["EASE+tags"]["test"]["nDCG@20"]
    assert leaked > leaky.metrics["EASE"]["test"]["nDCG@20"] + 0.03
    assert max(m["test"]["nDCG@20"] for m in clean.metrics.values()) < leaked - 0.03


def test_the_side_weight_sweep_stops_once_validation_falls(planted, caplog):
    log = planted[0]
    noise = np.random.default_rng(5).integers(0, 3, size=log.n_items)  # tags unrelated to taste
    tags = sp.csr_matrix((np.ones(log.n_items), (np.arange(log.n_items), noise)), (log.n_items, 3))
    config = _small_config(ease_side_weights=(400.0, 100.0, 200.0))  # tried in ascending order

    with caplog.at_level(logging.INFO, logger="mltasks.ml.cf.recommender"):
        result = train_user_recommender(interactions=log, item_tags=tags, config=config)

    tried = [r.getMessage() for r in caplog.records if "EASE+tags side weight" in r.getMessage()]
    assert len(tried) == 1 and "side weight 100.00" in tried[0]
    assert any("200.00, 400.00 not tried" in r.getMessage() for r in caplog.records)
    assert "EASE+tags" not in result.metrics  # worse than plain EASE: not a candidate


def test_a_catalog_past_the_exact_size_tries_the_sparse_grids(planted, caplog, monkeypatch):
    """Above EXACT_MAX_ITEMS each EASE fit takes minutes: the recommender tries the sparse grids
    of lambdas and side weights instead of the full ones (forced here on a small catalog)."""
    from mltasks.ml.cf import recommender

    log, _, _, item_cluster = planted
    tags = sp.csr_matrix(
        (np.ones(log.n_items), (np.arange(log.n_items), item_cluster)), shape=(log.n_items, 4)
    )
    config = _small_config(
        ease_lambdas=(10.0, 20.0, 40.0, 80.0),
        ease_lambdas_sparse=(20.0, 80.0),
        ease_side_weights=(1.0, 2.0, 3.0),
        ease_side_weights_sparse=(2.0,),
    )
    monkeypatch.setattr(recommender, "EXACT_MAX_ITEMS", log.n_items - 1)

    with caplog.at_level(logging.INFO, logger="mltasks.ml.cf.recommender"):
        result = train_user_recommender(interactions=log, item_tags=tags, config=config)

    ease = next(model for model in result.models if model.name == "EASE")
    assert [row["lam"] for row in ease.tuning] == [20.0, 80.0]
    tried = [r.getMessage() for r in caplog.records if "EASE+tags side weight" in r.getMessage()]
    assert len(tried) == 1 and "side weight 2.00" in tried[0]


def test_balanced_blocks_keep_every_score_and_let_an_hnsw_graph_find_the_top_items():
    """EASE-SVD-like block (tiny items, huge users) beside a content-like one (unit items):
    as concatenated, the items' geometry is the content block's and an inner-product HNSW graph
    misses most of the exact top 100; balanced, the same scores are found."""
    import faiss

    from mltasks.ml.cf.hybrid import balance_factors

    rng = np.random.default_rng(3)
    n_items, n_users = 20_000, 200
    cf_items = rng.standard_normal((n_items, 24)).astype(np.float32) * 0.01
    cf_users = rng.standard_normal((n_users, 24)).astype(np.float32) * 300
    content_items = rng.standard_normal((n_items, 8)).astype(np.float32)
    content_items /= np.linalg.norm(content_items, axis=1, keepdims=True)
    content_users = rng.standard_normal((n_users, 8)).astype(np.float32)

    def recall(users, items, k=100):
        index = faiss.IndexHNSWFlat(items.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 128
        index.add(np.ascontiguousarray(items, dtype=np.float32))
        index.hnsw.efSearch = 256
        _, found = index.search(np.ascontiguousarray(users, dtype=np.float32), k)
        exact = np.argpartition(-(users @ items.T), k - 1, axis=1)[:, :k]
        return np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(exact, found, strict=True)])

    raw_users = np.hstack([cf_users, content_users])
    raw_items = np.hstack([cf_items, content_items])
    balanced = [balance_factors(cf_users, cf_items), balance_factors(content_users, content_items)]
    users = np.hstack([block[0] for block in balanced])
    items = np.hstack([block[1] for block in balanced])

    np.testing.assert_allclose(users @ items.T, raw_users @ raw_items.T, rtol=1e-3, atol=1e-2)
    cf_user_rms = np.sqrt(np.mean(np.sum(balanced[0][0] ** 2, axis=1)))
    cf_item_rms = np.sqrt(np.mean(np.sum(balanced[0][1] ** 2, axis=1)))
    assert cf_user_rms == pytest.approx(cf_item_rms, rel=1e-4)
    assert recall(raw_users, raw_items) < 0.5
    assert recall(users, items) >= 0.9
