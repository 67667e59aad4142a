"""The ML core at catalog scale: sparse EASE and ItemKNN, batched ranking, sampled validation and
the EASE-SVD factorisation without a score matrix. Small synthetic data, the thresholds forced
low; pure numpy/scipy, no Django."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from mltasks.ml.cf.baselines import (
    EASE,
    EXACT_MAX_ITEMS,
    ItemKNN,
    cooccurrence_blocks,
    factorize_scores,
    item_knn_grid,
    sparse_ease_structure,
    sparse_ease_weights,
    top_entries_per_row,
)
from mltasks.ml.data.splits import sample_eval_users
from mltasks.ml.eval.ranking import (
    DEFAULT_BATCH_SIZE,
    SCORE_BLOCK_ENTRIES,
    batch_size_for,
    evaluate_scorer,
    rank_users,
)
from mltasks.ml.eval.topk import top_k_indices
from mltasks.ml.scorers.base import HistoryContext
from mltasks.ml.scorers.item_item import ItemItemScorer


def latent_interactions(n_users=600, n_items=300, per_user=25, dim=6, seed=0) -> sp.csr_matrix:
    """Users pick items by a softmax over latent affinities, popularity skewed: CF-like data."""
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, dim))
    items = rng.standard_normal((n_items, dim))
    popularity = -1.0 * np.log(np.arange(1, n_items + 1))
    rows, columns = [], []
    for user in range(n_users):
        logits = 1.5 * items @ users[user] + popularity
        chosen = rng.choice(n_items, size=per_user, replace=False, p=_softmax(logits))
        rows.append(np.full(per_user, user))
        columns.append(chosen)
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(n_users, n_items)
    )
    matrix.sort_indices()
    return matrix


def _softmax(logits: np.ndarray) -> np.ndarray:
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def hold_out(matrix: sp.csr_matrix, fraction=0.2, seed=1) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    coo = matrix.tocoo()
    test = np.random.default_rng(seed).random(coo.nnz) < fraction

    def part(keep):
        return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)

    return part(~test), part(test)


@pytest.fixture(scope="module")
def data():
    return hold_out(latent_interactions())


# ----------------------------------------------------------------------------- sparse EASE


def test_ease_is_exact_up_to_the_documented_size_and_sparse_above(data):
    train, _ = data
    exact = EASE(lam=20.0).fit(train)
    assert train.shape[1] <= EXACT_MAX_ITEMS and exact.params()["form"] == "exact"
    assert exact.sparse is None and exact.item_weights is not None

    sparse = EASE(lam=20.0, max_exact_items=100, neighbours=30, gram_neighbours=60).fit(train)
    params = sparse.params()
    assert params["form"] == "sparse"
    assert (params["neighbours"], params["gram_neighbours"]) == (30, 60)
    assert sparse.item_weights is None and sparse.user_space is None
    weights = sparse.sparse.weights
    assert isinstance(weights, sp.csr_matrix) and weights.shape == (300, 300)
    assert np.diff(weights.tocsc().indptr).max() <= 30  # regressors per item
    assert weights.diagonal().max() == 0.0


@pytest.mark.parametrize("side", [False, True], ids=["plain", "tags"])
def test_sparse_ease_with_every_neighbour_is_exact_ease(side):
    # Dense enough that every pair of items co-occurs: every other item is a neighbour.
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((90, 40)) < 0.5).astype(np.float32))
    tags = sp.csr_matrix((rng.random((40, 5)) < 0.4).astype(np.float32)) if side else None
    options = {"item_side": tags, "side_weight": 2.0} if side else {}
    exact = EASE(lam=4.0, **options).fit(train)
    full = EASE(lam=4.0, max_exact_items=10, neighbours=39, gram_neighbours=39, **options)
    full.fit(train)
    assert full.params()["form"] == "sparse"
    users = np.arange(90)
    np.testing.assert_allclose(full.score(users), exact.score(users), atol=2e-5)


def _overlap_at(k, first: np.ndarray, second: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(first, second, strict=True)]))


def test_sparse_ease_ranks_close_to_exact_ease(data):
    train, test = data
    exact = EASE(lam=20.0).fit(train)
    sparse = EASE(lam=20.0, max_exact_items=100, neighbours=40, gram_neighbours=80).fit(train)
    metrics_exact = evaluate_scorer(exact.score, target=test, exclude=train)
    metrics_sparse = evaluate_scorer(sparse.score, target=test, exclude=train)
    assert metrics_sparse["Recall@20"] >= 0.95 * metrics_exact["Recall@20"]
    assert metrics_sparse["nDCG@20"] >= 0.95 * metrics_exact["nDCG@20"]
    users = np.arange(train.shape[0])
    top_exact = rank_users(exact.score, users, k=20, exclude=train)
    top_sparse = rank_users(sparse.score, users, k=20, exclude=train)
    assert _overlap_at(20, top_exact, top_sparse) > 0.7
    # and both are far better than popularity, so the comparison means something
    popularity = np.diff(train.tocsc().indptr).astype(np.float32)
    metrics_pop = evaluate_scorer(
        lambda u: np.tile(popularity, (len(u), 1)), target=test, exclude=train
    )
    assert metrics_sparse["Recall@20"] > 1.3 * metrics_pop["Recall@20"]


def test_a_lambda_grid_reuses_the_sparse_structure_and_solves_each_lambda_afresh(data):
    train, _ = data
    other = train[:, ::-1].tocsr()  # another matrix: its own structure
    first = sparse_ease_structure(train, 30, 60)
    low = sparse_ease_weights(train, 5.0, 30, 60)
    high = sparse_ease_weights(train, 500.0, 30, 60)
    assert sparse_ease_structure(train.copy(), 30, 60) is first  # by content, not identity
    assert sparse_ease_structure(train, 20, 60) is not first  # other sizes, other structure

    sparse_ease_structure(other, 30, 60)  # evicts the first one
    assert sparse_ease_structure(train, 30, 60) is not first
    fresh = sparse_ease_weights(train, 5.0, 30, 60)
    assert (fresh != low).nnz == 0  # the reused structure gave the from-scratch weights
    assert abs(high).sum() < abs(low).sum()  # and each lambda is solved: more shrinkage


def test_sparse_ease_rejects_a_non_positive_lambda(data):
    with pytest.raises(ValueError, match="lam > 0"):
        EASE(lam=0.0, max_exact_items=10).fit(data[0])


def test_item_item_scorer_from_sparse_ease_scores_as_the_model_and_prunes_rows(data):
    train, _ = data
    ease = EASE(lam=20.0, max_exact_items=100, neighbours=20, gram_neighbours=40).fit(train)
    unpruned = ItemItemScorer.from_ease(ease, k=train.shape[1])
    for user in range(0, 60, 7):
        start, end = train.indptr[user], train.indptr[user + 1]
        context = HistoryContext(items=train.indices[start:end], weights=train.data[start:end])
        np.testing.assert_allclose(
            unpruned.score(context), ease.score(np.array([user]))[0], rtol=1e-5, atol=1e-6
        )
    pruned = ItemItemScorer.from_ease(ease, k=5)
    assert isinstance(pruned.weights, sp.csr_matrix) and pruned.neighbours_per_item <= 5
    assert pruned.weighting == "binary" and pruned.params()["source"] == "EASE"


# ----------------------------------------------------------------------------- ItemKNN


def test_cooccurrence_blocks_cover_the_gram_matrix_a_few_rows_at_a_time(data):
    train, _ = data
    blocks = list(cooccurrence_blocks(train, block_entries=7 * train.shape[1]))
    assert len(blocks) == -(-train.shape[1] // 7)
    assert all(block.shape == (min(7, 300 - start), 300) for start, block in blocks)
    stacked = sp.vstack([block for _, block in blocks]).toarray()
    np.testing.assert_array_equal(stacked, (train.T @ train).toarray())


@pytest.mark.parametrize("ranked", [False, True])
@pytest.mark.parametrize("density", [0.05, 0.9])  # sparse rows, and rows a tag block makes dense
def test_top_entries_per_row_keeps_each_rows_k_largest_ties_by_position(ranked, density):
    rng = np.random.default_rng(11)
    block = sp.random(40, 120, density=density, random_state=3, format="csr", dtype=np.float32)
    block.data = rng.integers(1, 4, size=block.nnz).astype(np.float32)  # many ties at a cut
    offset, k = 30, 7
    rows, columns, values = top_entries_per_row(block, k, diagonal_offset=offset, ranked=ranked)

    for row in range(block.shape[0]):
        start, end = block.indptr[row], block.indptr[row + 1]
        entries = [
            (-float(block.data[p]), p - start, int(block.indices[p]))
            for p in range(start, end)
            if block.indices[p] != row + offset
        ]
        kept = sorted(entries)[:k]  # largest first, ties by position in the row
        if not ranked:
            kept.sort(key=lambda entry: entry[1])  # position order
        mine = rows == row
        assert columns[mine].tolist() == [column for _, _, column in kept]
        assert values[mine].tolist() == [-value for value, _, _ in kept]
    assert np.all(np.diff(rows) >= 0)


def test_item_knn_keeps_each_items_top_cosine_neighbours(data):
    train, _ = data
    k, shrink = 15, 3.0
    model = ItemKNN(n_neighbors=k, shrink=shrink).fit(train)
    dense = train.toarray().astype(np.float64)
    norms = np.sqrt((dense**2).sum(axis=0))
    cosine = dense.T @ dense / (norms[:, None] * norms[None, :] + shrink + 1e-12)
    np.fill_diagonal(cosine, 0.0)
    similarity = model.similarity.toarray()
    for target in range(0, 300, 11):
        kept = np.flatnonzero(similarity[:, target])
        assert len(kept) <= k
        np.testing.assert_allclose(similarity[kept, target], cosine[kept, target], rtol=1e-5)
        expected = top_k_indices(cosine[:, target], k)
        expected = expected[cosine[expected, target] > 0]
        assert set(kept) == set(expected)


def test_an_item_knn_grid_equals_fitting_each_setting_on_its_own():
    """One ranked pass for the largest setting; each smaller one keeps its rows' first k. Binary
    data with few co-listeners has many tied similarities: the ties at each cut must fall as
    ItemKNN.fit lets them (lower positions win)."""
    train = latent_interactions(n_users=150, n_items=120, per_user=6, seed=4)
    settings = (20, 3, 50, 8)  # not sorted: models come in the order asked
    models = list(item_knn_grid(train, neighbours=settings, shrink=2.0))
    assert [model.n_neighbors for model in models] == list(settings)
    for model, k in zip(models, settings, strict=True):
        alone = ItemKNN(n_neighbors=k, shrink=2.0).fit(train)
        assert model.params() == alone.params()
        assert (model.similarity != alone.similarity).nnz == 0
        np.testing.assert_array_equal(model.similarity.indptr, alone.similarity.indptr)
        np.testing.assert_array_equal(model.similarity.indices, alone.similarity.indices)
        np.testing.assert_array_equal(model.score(np.arange(150)), alone.score(np.arange(150)))
    assert list(item_knn_grid(train, neighbours=())) == []


# ----------------------------------------------------------------------------- ranking


def test_batch_size_shrinks_with_the_catalog():
    assert batch_size_for(17_632) == SCORE_BLOCK_ENTRIES // 17_632
    assert batch_size_for(100_000) * 100_000 <= SCORE_BLOCK_ENTRIES
    assert batch_size_for(50) == DEFAULT_BATCH_SIZE and batch_size_for(10**9) == 1
    assert batch_size_for(100_000, 7) == 7
    with pytest.raises(ValueError, match="at least 1"):
        batch_size_for(10, 0)


def test_rank_users_scores_batch_by_batch_and_keeps_only_the_top_k(data):
    train, test = data
    model = EASE(lam=20.0, max_exact_items=100, neighbours=20).fit(train)
    seen = []

    def scorer(users):
        seen.append(len(users))
        return model.score(users)

    users = np.arange(train.shape[0])
    top = rank_users(scorer, users, k=10, exclude=train, batch_size=64)
    assert top.shape == (600, 10) and max(seen) == 64 and sum(seen) == 600
    whole = top_k_indices(np.where(train.toarray() > 0, -np.inf, model.score(users)), 10)
    np.testing.assert_array_equal(top, whole)
    seen.clear()
    evaluate_scorer(scorer, target=test, exclude=train)
    assert max(seen) <= batch_size_for(300)


# ----------------------------------------------------------------------------- sampled validation


def test_validation_sample_is_seeded_restricted_and_says_so(data):
    _, valid = data
    users_with_items = np.flatnonzero(np.diff(valid.indptr))
    sample = sample_eval_users(valid, max_users=100, seed=7)
    assert sample.sampled and len(sample.users) == 100 and sample.n_users == len(users_with_items)
    assert sample.note == (
        f"validation on a seeded sample of 100 of {len(users_with_items)} users (seed 7)"
    )
    assert sample.matrix.shape == valid.shape
    kept = np.flatnonzero(np.diff(sample.matrix.indptr))
    np.testing.assert_array_equal(kept, sample.users)
    assert (sample.matrix[sample.users] != valid[sample.users]).nnz == 0
    again = sample_eval_users(valid, max_users=100, seed=7)
    np.testing.assert_array_equal(again.users, sample.users)
    assert not np.array_equal(sample_eval_users(valid, max_users=100, seed=8).users, sample.users)

    whole = sample_eval_users(valid, max_users=5000)
    assert not whole.sampled and (whole.matrix != valid).nnz == 0
    assert whole.note == f"validation on all {len(users_with_items)} users"
    with pytest.raises(ValueError, match="at least 1"):
        sample_eval_users(valid, max_users=0)


# ----------------------------------------------------------------------------- EASE-SVD


class CountingEASE(EASE):
    """EASE whose per-user scoring counts its calls (the dense route of factorize_scores)."""

    calls = 0

    def score(self, user_indices):
        self.calls += 1
        return super().score(user_indices)


def _low_rank_error(scores, factors) -> float:
    user_vectors, item_vectors = factors
    return float(np.linalg.norm(scores - user_vectors @ item_vectors.T) / np.linalg.norm(scores))


def test_factorize_sparse_ease_through_products_never_scores_users(data):
    train, test = data
    model = CountingEASE(lam=20.0, max_exact_items=100, neighbours=30).fit(train)
    through_products = factorize_scores(model.score, 600, 300, 16, seed=3)
    assert model.calls == 0  # no user was scored: S was never built, not even in batches
    materialised = factorize_scores(lambda u: model.score(u), 600, 300, 16, seed=3)
    assert model.calls > 0
    scores = model.score(np.arange(600))
    error = _low_rank_error(scores, through_products)
    assert error == pytest.approx(_low_rank_error(scores, materialised), abs=0.01)
    # the best rank-16 error, from the exact SVD
    singular = np.linalg.svd(scores.astype(np.float64), compute_uv=False)
    assert error <= 1.02 * np.sqrt((singular[16:] ** 2).sum() / (singular**2).sum())
    recall = evaluate_scorer(
        lambda u: through_products[0][u] @ through_products[1].T, target=test, exclude=train
    )["Recall@20"]
    dense_recall = evaluate_scorer(
        lambda u: materialised[0][u] @ materialised[1].T, target=test, exclude=train
    )["Recall@20"]
    assert recall == pytest.approx(dense_recall, abs=0.02)


@pytest.mark.parametrize(
    "make",
    [
        lambda train: EASE(lam=20.0).fit(train),  # exact, item space
        lambda train: EASE(lam=5.0).fit(train[:120]),  # exact, user space (items > users)
        lambda train: ItemKNN(n_neighbors=20).fit(train),
    ],
    ids=["exact item space", "exact user space", "ItemKNN"],
)
def test_score_operators_multiply_like_the_score_matrix(data, make):
    model = make(data[0])
    n_users = model.train.shape[0]
    operator = model.score_operator(n_users)
    scores = model.score(np.arange(n_users)).astype(np.float64)
    rng = np.random.default_rng(0)
    right, left = rng.standard_normal((300, 4)), rng.standard_normal((n_users, 4))
    np.testing.assert_allclose(operator.times(right), scores @ right, atol=1e-3)
    np.testing.assert_allclose(operator.transposed_times(left), scores.T @ left, atol=1e-3)
    # a large exact model factorises through the same products (max_dense_entries=0)
    factors = factorize_scores(model.score, n_users, 300, 8, max_dense_entries=0)
    dense = factorize_scores(lambda u: model.score(u), n_users, 300, 8)
    assert _low_rank_error(scores, factors) == pytest.approx(
        _low_rank_error(scores, dense), abs=0.01
    )


# ----------------------------------------------------------------------------- memory


def test_large_forms_never_allocate_users_by_items_or_items_by_items():
    # 4,000 users x 6,000 items, 8 items each: a dense users x items float32 array is 96 MB,
    # items x items 144 MB. Fitting the sparse forms (O(items x neighbours)), ranking 1,000
    # users in score blocks of 100 and factorising must peak well below either.
    rng = np.random.default_rng(5)
    n_users, n_items, per_user = 4000, 6000, 8
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.7
    rows = np.repeat(np.arange(n_users), per_user)
    columns = np.concatenate(
        [
            rng.choice(n_items, size=per_user, replace=False, p=popularity / popularity.sum())
            for _ in range(n_users)
        ]
    )
    train = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(n_users, n_items)
    )
    dense_users_items = n_users * n_items * 4
    tracemalloc.start()
    try:
        ease = EASE(lam=10.0, max_exact_items=1000, neighbours=20, gram_neighbours=40)
        ease.fit(train)
        knn = ItemKNN(n_neighbors=20).fit(train)
        for model in (ease, knn):
            top = rank_users(model.score, np.arange(1000), k=20, exclude=train, batch_size=100)
            assert top.shape == (1000, 20)
        factors = factorize_scores(ease.score, n_users, n_items, 8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ease.params()["form"] == "sparse"
    assert factors[0].shape == (n_users, 8) and factors[1].shape == (n_items, 8)
    assert peak < dense_users_items / 4, f"peak {peak / 2**20:.1f} MB"
