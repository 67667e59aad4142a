"""The scorer contract (mltasks.ml.scorers): every family against a dense reference computation
on small random data, exclusions, pruning, save/load. Pure numpy/scipy/torch, no Django."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mltasks.ml.artifacts import load_scorer, save_scorer
from mltasks.ml.cf.baselines import EASE, ItemKNN
from mltasks.ml.data.sequences import EvalCases
from mltasks.ml.eval.ranking import evaluate_scorer
from mltasks.ml.eval.seq_metrics import evaluate_rankings, rank_cases
from mltasks.ml.eval.topk import exclude_items, top_k_indices
from mltasks.ml.scorers.base import BasePlusSparse, HistoryContext, SequenceContext
from mltasks.ml.scorers.evaluation import evaluate_cases, evaluate_users
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.ml.scorers.item_item import ItemItemScorer
from mltasks.ml.scorers.neural import NeuralSequenceScorer
from mltasks.ml.scorers.popularity import PopularityScorer
from mltasks.ml.scorers.remap import RemappedScorer
from mltasks.ml.scorers.sequence import MarkovScorer, SessionKNNScorer
from mltasks.ml.seq.baselines import MarkovTransitions, SessionKNN
from mltasks.ml.seq.gru4rec import GRU4REC, GRU4RecConfig, GRU4RecNetwork
from mltasks.ml.seq.sasrec import SASREC, SASRecConfig, SASRecNetwork
from mltasks.ml.seq.trainer import NeuralContinuationModel


def random_interactions(n_users: int, n_items: int, density: float = 0.2, seed: int = 0):
    rng = np.random.default_rng(seed)
    matrix = sp.random(
        n_users, n_items, density=density, random_state=rng, format="csr",
        data_rvs=lambda n: rng.integers(1, 20, size=n).astype(np.float32),
    )  # fmt: skip
    matrix.sort_indices()
    return matrix


def random_sequences(n_sequences: int, n_items: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_items, size=rng.integers(2, 9)) for _ in range(n_sequences)]


def history(matrix: sp.csr_matrix, user: int, **extra) -> HistoryContext:
    start, end = matrix.indptr[user], matrix.indptr[user + 1]
    return HistoryContext(items=matrix.indices[start:end], weights=matrix.data[start:end], **extra)


def assert_valid_top_k(scorer, context, reference_scores, *, k, exclude=()):
    """The scorer's top k, with `exclude` removed, is a top k of the reference scores: same
    scores in the same order (equal scores may swap items), excluded items never."""
    exclude = np.asarray(exclude, dtype=np.int64)
    items, scores = scorer.top_k(context, k, exclude=exclude)
    reference = exclude_items(np.asarray(reference_scores, dtype=np.float32)[None], [exclude])[0]
    expected = top_k_indices(reference, k)
    assert len(items) == len(expected)
    assert not set(items.tolist()) & set(exclude.tolist())
    np.testing.assert_allclose(reference[items], reference[expected], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, reference[items], rtol=1e-5, atol=1e-6)


def assert_scores_like(scorer, model, train):
    """The scorer, given each user's history, scores and ranks as `model` scores that user."""
    for user in range(train.shape[0]):
        context = history(train, user)
        reference = model.score(np.array([user]))[0]
        np.testing.assert_allclose(scorer.score(context), reference, rtol=1e-4, atol=1e-5)
        assert_valid_top_k(scorer, context, reference, k=10, exclude=context.items)


def round_trip(scorer, tmp_path):
    loaded = load_scorer(save_scorer(scorer, tmp_path / scorer.family))
    assert type(loaded) is type(scorer)
    return loaded


# ----------------------------------------------------------------------------- factor


def test_factor_scores_with_the_own_vector_else_fold_in_else_popularity(tmp_path):
    rng = np.random.default_rng(1)
    items, users = rng.normal(size=(30, 8)), rng.normal(size=(5, 8))
    users[4] = 0.0  # a user the fit never saw
    popularity = rng.random(30)
    scorer = FactorScorer(item_vectors=items, user_vectors=users, popularity=popularity)
    history_items = np.array([3, 7, 11])

    own = HistoryContext(items=history_items, user=2)
    assert_valid_top_k(scorer, own, users[2] @ items.T, k=10, exclude=history_items)
    folded = HistoryContext(items=history_items, user=4)
    assert_valid_top_k(scorer, folded, items[history_items].mean(0) @ items.T, k=10)
    assert_valid_top_k(scorer, HistoryContext(items=[]), popularity, k=10)
    candidates = np.array([5, 0, 29])
    np.testing.assert_allclose(
        scorer.score(own, candidates), (users[2] @ items.T)[candidates], rtol=1e-5
    )
    loaded = round_trip(scorer, tmp_path)
    for context in (own, folded, HistoryContext(items=[])):
        np.testing.assert_array_equal(loaded.score(context), scorer.score(context))


def test_factor_scores_a_batch_in_one_product_as_it_scores_each_context_bit_for_bit():
    rng = np.random.default_rng(4)
    items, users = rng.normal(size=(40, 6)), rng.normal(size=(6, 6))
    users[5] = 0.0  # never seen: folded in from its items
    popularity = rng.random(40)
    scorer = FactorScorer(item_vectors=items, user_vectors=users, popularity=popularity)
    contexts = [
        HistoryContext(items=np.array([1, 2]), user=0),
        HistoryContext(items=np.array([]), user=None),  # cold: popularity
        HistoryContext(items=np.array([4, 9, 30]), user=5),
        HistoryContext(items=np.array([7]), user=3),
    ]
    block = scorer.score_many(contexts)
    assert block.shape == (4, 40) and block.dtype == np.float32
    np.testing.assert_allclose(block[0], users[0] @ items.T, rtol=1e-5)
    np.testing.assert_array_equal(block[1], popularity.astype(np.float32))
    np.testing.assert_allclose(block[2], items[[4, 9, 30]].mean(0) @ items.T, rtol=1e-4)
    for row, context in enumerate(contexts):  # a request's row is its row in any batch
        np.testing.assert_array_equal(block[row], scorer.score(context))
        np.testing.assert_array_equal(block[row], scorer.score_many(contexts[row:])[0])
    assert scorer.score_many([]).shape == (0, 40)


# ----------------------------------------------------------------------------- item-item

EASE_CASES = {
    "EASE (item space)": lambda train: EASE(lam=5.0).fit(train),
    "EASE+tags": lambda train: EASE(
        lam=5.0, item_side=random_interactions(train.shape[1], 6, 0.3, seed=5), side_weight=2.0
    ).fit(train),
}


@pytest.mark.parametrize("name", sorted(EASE_CASES))
def test_unpruned_ease_item_item_scores_equal_ease(name):
    train = random_interactions(40, 25)
    ease = EASE_CASES[name](train)
    scorer = ItemItemScorer.from_ease(ease, k=train.shape[1])
    assert_scores_like(scorer, ease, train)


def test_user_space_ease_item_item_scores_equal_ease_without_an_items_by_items_inverse():
    train = random_interactions(12, 50, density=0.15, seed=3)  # more items than users
    ease = EASE(lam=3.0).fit(train)
    assert ease.item_weights is None and ease.user_space is not None
    scorer = ItemItemScorer.from_ease(ease, k=50)
    assert_scores_like(scorer, ease, train)


def test_unpruned_item_knn_item_item_scores_equal_item_knn():
    train = random_interactions(40, 25, seed=2)
    knn = ItemKNN(n_neighbors=8, shrink=2.0).fit(train)
    scorer = ItemItemScorer.from_item_knn(knn, k=train.shape[1])
    assert_scores_like(scorer, knn, train)


def test_pruned_item_item_keeps_k_neighbours_per_item_as_csr_and_scores_with_them(tmp_path):
    train = random_interactions(60, 30, seed=4)
    ease = EASE(lam=5.0).fit(train)
    k = 4
    scorer = ItemItemScorer.from_ease(ease, k=k)

    assert isinstance(scorer.weights, sp.csr_matrix)
    assert np.diff(scorer.weights.indptr).max() <= k and scorer.neighbours_per_item <= k
    assert scorer.weights.nnz <= k * train.shape[1]
    # Reference: each item's k largest weights kept in a dense copy, then x @ W.
    pruned = np.zeros_like(ease.item_weights)
    for item, row in enumerate(ease.item_weights):
        keep = np.argsort(-row, kind="stable")[:k]
        pruned[item, keep] = row[keep]
    binary = (train > 0).astype(np.float32)
    for user in range(train.shape[0]):
        context = history(train, user)
        reference = binary[user].toarray()[0] @ pruned
        assert_valid_top_k(scorer, context, reference, k=8, exclude=context.items)
    loaded = round_trip(scorer, tmp_path)
    assert (loaded.weights != scorer.weights).nnz == 0 and loaded.weighting == "binary"


def test_an_item_item_request_reads_only_the_history_rows():
    weights = sp.csr_matrix(([0.5, 2.0, 1.0], ([0, 0, 3], [1, 2, 0])), shape=(5, 5))
    scorer = ItemItemScorer(weights=weights)

    scores = scorer.score(HistoryContext(items=[0, 3, 0]))  # a repeat counts once (binary)

    np.testing.assert_array_equal(scores, [1.0, 0.5, 2.0, 0.0, 0.0])
    items, _ = scorer.top_k(HistoryContext(items=[0, 3]), k=5, exclude=[0, 3])
    assert items.tolist() == [2, 1, 4]


# ----------------------------------------------------------------------------- sequences


def test_markov_scorer_equals_markov_transitions(tmp_path):
    sequences = random_sequences(50, 20)
    markov = MarkovTransitions(train_items=sequences, n_items=20)
    scorer = MarkovScorer.from_model(markov)
    for sequence in random_sequences(15, 20, seed=9):
        context = SequenceContext(items=sequence)
        reference = markov.score(sequence)
        np.testing.assert_array_equal(scorer.score(context), reference)
        assert_valid_top_k(scorer, context, reference, k=10, exclude=sequence)
    loaded = round_trip(scorer, tmp_path)
    np.testing.assert_array_equal(loaded.score(context), scorer.score(context))


def test_markov_batch_rows_equal_the_serving_scorer_even_beside_an_empty_input():
    sequences = random_sequences(50, 20)
    markov = MarkovTransitions(train_items=sequences, n_items=20)
    scorer = MarkovScorer.from_model(markov)
    inputs = [*random_sequences(6, 20, seed=4), np.zeros(0, np.int64)]

    batch = markov.score_batch(inputs, np.zeros(len(inputs)), np.zeros(len(inputs)))

    for row, sequence in zip(batch, inputs, strict=True):
        np.testing.assert_array_equal(row, scorer.score(SequenceContext(items=sequence)))
    np.testing.assert_array_equal(batch[-1], markov.fallback.astype(np.float32))
    # The scorer's own batch (evaluation, the ranker's stage 1) gives the same rows, an input
    # whose last item is outside the catalog included.
    contexts = [SequenceContext(items=items) for items in [*inputs, np.array([3, 25])]]
    block = scorer.score_many(contexts)
    np.testing.assert_array_equal(block[:-1], batch)
    np.testing.assert_array_equal(block[-1], scorer.score(contexts[-1]))
    assert scorer.score_many([]).shape == (0, 20)


def test_popularity_markov_and_session_knn_parts_are_their_score_rows():
    """A shared row plus sparse rows (what evaluation ranks without a dense block) equals each
    context's own `score`, bit for bit; read item by item, masked or not, it equals the row."""
    sequences = random_sequences(60, 25, seed=2)
    popularity = np.bincount(np.concatenate(sequences), minlength=25).astype(np.float32)
    scorers = [
        PopularityScorer(popularity=popularity),
        MarkovScorer.from_model(MarkovTransitions(train_items=sequences, n_items=25)),
        SessionKNNScorer.from_model(SessionKNN(train_items=sequences, n_items=25, n_neighbours=6)),
    ]
    inputs = [*random_sequences(8, 25, seed=6), np.zeros(0, np.int64), np.array([3, 40])]
    contexts = [SequenceContext(items=items, own_session=row) for row, items in enumerate(inputs)]
    blocked = [context.items[context.items < 25] for context in contexts]
    for scorer in scorers:
        parts = scorer.score_parts(contexts)
        rows = np.vstack([scorer.score(context) for context in contexts])
        np.testing.assert_array_equal(parts.dense(), rows, err_msg=scorer.family)
        np.testing.assert_array_equal(scorer.score_many(contexts), rows, err_msg=scorer.family)
        masked = exclude_items(rows, blocked)
        with_blocked = parts.with_blocked([context.items for context in contexts])
        pairs = np.nonzero(np.ones_like(rows, dtype=bool))
        np.testing.assert_array_equal(with_blocked.at(*pairs), masked[pairs])
        np.testing.assert_array_equal(parts.at(*pairs), rows[pairs])  # nothing blocked
    assert PopularityScorer(popularity=popularity).score_parts(contexts).rows.nnz == 0


def dense_session_knn(session_knn: SessionKNN, sequence: np.ndarray) -> np.ndarray:
    """SessionKNN's scores from its dense session similarities, equal similarities at the cut
    going to the lower session row."""
    query = session_knn._query_matrix([sequence])
    similarity = (query @ session_knn.train_matrix_t).toarray()[0].astype(np.float32)
    similarity /= np.sqrt(session_knn.train_lengths).astype(np.float32)
    nearest = np.lexsort((np.arange(len(similarity)), -similarity))[: session_knn.n_neighbours]
    weights = np.zeros_like(similarity)
    weights[nearest] = similarity[nearest]
    scores = weights @ session_knn.train_matrix.toarray()
    return scores + session_knn.popularity_tiebreak.astype(np.float32)


def test_session_knn_scorer_equals_session_knn_through_its_inverted_index(tmp_path):
    sequences = random_sequences(80, 25, seed=1)
    session_knn = SessionKNN(train_items=sequences, n_items=25, n_neighbours=7)
    scorer = SessionKNNScorer.from_model(session_knn)
    assert scorer.item_sessions.shape == (25, 80)  # item -> sessions
    for sequence in random_sequences(20, 25, seed=8):
        context = SequenceContext(items=sequence)
        reference = dense_session_knn(session_knn, sequence)
        np.testing.assert_allclose(scorer.score(context), reference, rtol=1e-5, atol=1e-7)
        assert_valid_top_k(scorer, context, reference, k=10, exclude=sequence)
        assert len(scorer.neighbours(context)[0]) <= 7
    session_knn.n_neighbours = scorer.n_neighbours = 80  # no cut, no tie to break
    for sequence in random_sequences(20, 25, seed=8):
        reference = session_knn.score(sequence)
        np.testing.assert_allclose(
            scorer.score(SequenceContext(items=sequence)), reference, rtol=1e-5, atol=1e-7
        )
    loaded = round_trip(scorer, tmp_path)
    np.testing.assert_array_equal(loaded.score(context), scorer.score(context))


def test_session_knn_scorer_leaves_out_the_own_session_as_the_evaluated_model_does():
    sequences = random_sequences(60, 25, seed=4)
    session_knn = SessionKNN(train_items=sequences, n_items=25, n_neighbours=5)
    scorer = SessionKNNScorer.from_model(session_knn)
    for row in (0, 7, 33):
        inputs = sequences[row]  # the sequence itself: its own session is its nearest
        reference = session_knn.score_batch([inputs], None, None, train_rows=np.array([row]))[0]
        own = scorer.score(SequenceContext(items=inputs, own_session=row))
        np.testing.assert_allclose(own, reference, rtol=1e-5, atol=1e-7)
        assert row not in scorer.neighbours(SequenceContext(items=inputs, own_session=row))[0]
        assert row in scorer.neighbours(SequenceContext(items=inputs))[0]  # serving keeps it
        assert not np.allclose(scorer.score(SequenceContext(items=inputs)), own)


@pytest.mark.parametrize(
    ("architecture", "network_class", "config"),
    [
        (SASREC, SASRecNetwork, SASRecConfig(d_model=16, max_seq_len=8)),
        (GRU4REC, GRU4RecNetwork, GRU4RecConfig(d_model=16, max_seq_len=8)),
    ],
)
def test_neural_scorer_equals_the_model_and_round_trips(
    tmp_path, architecture, network_class, config
):
    torch.manual_seed(0)
    model = NeuralContinuationModel(
        network=network_class(15, config), config=config, n_items=15, architecture=architecture
    )
    scorer = NeuralSequenceScorer(model=model, popularity=np.arange(15.0))
    sequence = np.array([3, 1, 4, 1, 5])
    context = SequenceContext(items=sequence, hour=8, dow=2)
    reference = model.score(sequence, 8, 2)
    np.testing.assert_allclose(scorer.score(context), reference, rtol=1e-5, atol=1e-5)
    assert_valid_top_k(scorer, context, reference, k=6, exclude=sequence)
    np.testing.assert_array_equal(scorer.score(SequenceContext(items=[])), np.arange(15.0))
    contexts = [context, SequenceContext(items=[]), SequenceContext(items=[7, 2], hour=23)]
    for batch in (contexts, [contexts[0], contexts[2]]):  # with a cold context and without
        np.testing.assert_allclose(
            scorer.score_many(batch), np.vstack([scorer.score(c) for c in batch]), atol=1e-5
        )
    loaded = round_trip(scorer, tmp_path)
    np.testing.assert_allclose(loaded.score(context), scorer.score(context), rtol=1e-6)


# ----------------------------------------------------------------------------- contract


def test_excluded_items_never_appear_whatever_k():
    rng = np.random.default_rng(3)
    scorers = [
        FactorScorer(item_vectors=rng.normal(size=(12, 4))),
        ItemItemScorer.from_dense(rng.random((12, 12)), k=3),
        MarkovScorer.from_model(
            MarkovTransitions(train_items=random_sequences(30, 12), n_items=12)
        ),
    ]
    exclude = np.array([0, 5, 6, 11])
    for scorer in scorers:
        items, scores = scorer.top_k(SequenceContext(items=[1, 2]), k=50, exclude=exclude)
        assert len(items) == 12 - len(exclude)
        assert not set(items.tolist()) & set(exclude.tolist())
        assert np.all(np.diff(scores) <= 0)


def test_a_remapped_scorer_drops_unknown_inputs_and_never_ranks_unknown_items():
    inner = FactorScorer(item_vectors=np.eye(3, dtype=np.float32))  # items "a", "b", "c"
    remapped = RemappedScorer.by_ids(
        inner=inner, inner_ids=np.array(["a", "b", "c"]), outer_ids=np.array([7, "c", "zz", "a"])
    )
    assert remapped.to_inner.tolist() == [-1, 2, -1, 0]

    scores = remapped.score(HistoryContext(items=[1, 2]))  # "c" and an unknown item

    assert scores[1] == 1.0 and scores[3] == 0.0 and np.isneginf(scores[[0, 2]]).all()
    items, _ = remapped.top_k(HistoryContext(items=[1, 2]), k=4)
    assert items.tolist() == [1, 3]


def test_per_request_evaluation_agrees_with_the_batch_evaluation_of_training_runs():
    rng = np.random.default_rng(6)
    train = random_interactions(30, 20, seed=6)
    target = random_interactions(30, 20, density=0.1, seed=7)
    target = target - target.multiply(train > 0)  # held-out items are not training items
    target.eliminate_zeros()
    users, items = rng.normal(size=(30, 5)), rng.normal(size=(20, 5))
    scorer = FactorScorer(item_vectors=items, user_vectors=users)
    batch = evaluate_scorer(lambda rows: users[rows] @ items.T, target=target, exclude=train)
    assert evaluate_users(scorer, train=train, target=target, user_rows=np.arange(30)) == (
        pytest.approx(batch)
    )

    sequences = random_sequences(40, 20, seed=2)
    markov = MarkovTransitions(train_items=sequences, n_items=20)
    cases = EvalCases(
        sequence_ids=np.arange(10).astype(str),
        inputs=[s[:-1] for s in sequences[:10]],
        histories=[s[:-1] for s in sequences[:10]],
        targets=np.array([s[-1] for s in sequences[:10]]),
        hours=np.full(10, 3),
        dows=np.full(10, 1),
        train_rows=np.full(10, -1),
    )
    top_items, _ = rank_cases(markov, cases, k=100)
    reference = evaluate_rankings(top_items=top_items, cases=cases, n_items=20)
    assert evaluate_cases(MarkovScorer.from_model(markov), cases=cases) == pytest.approx(reference)


def test_users_can_be_evaluated_with_more_excluded_than_their_history():
    scorer = FactorScorer(item_vectors=np.array([[3.0], [2.0], [1.0], [0.0]]), user_vectors=[[1.0]])
    train = sp.csr_matrix(np.array([[0.0, 0.0, 0.0, 1.0]]))  # item 3 is the history
    target = sp.csr_matrix(np.array([[0.0, 1.0, 0.0, 0.0]]))  # item 1 is held out
    also_known = sp.csr_matrix(np.array([[1.0, 0.0, 0.0, 1.0]]))  # item 0 is neither

    metric = ("nDCG@20",)
    assert evaluate_users(scorer, train=train, target=target, metric_names=metric)["nDCG@20"] < 1
    assert evaluate_users(
        scorer, train=train, target=target, exclude=also_known, metric_names=metric
    ) == {"nDCG@20": 1.0}


@pytest.mark.parametrize("density", [0.01, 0.3])
def test_shared_plus_sparse_scores_rank_alike_from_their_entries_or_their_dense_block(
    density, monkeypatch
):
    """BasePlusSparse.top_k ranks from the entries when they are few and from the dense block
    when they fill much of it: both give top_k_indices of the masked block."""
    from mltasks.ml.scorers import base as scorers_base

    rng = np.random.default_rng(3)
    shared = rng.integers(0, 3, size=400).astype(np.float32)
    rows = sp.random(30, 400, density=density, format="csr", random_state=rng, dtype=np.float32)
    rows.data = rng.integers(1, 3, size=rows.nnz).astype(np.float32)
    rows.sort_indices()
    blocked = [rng.choice(400, size=6, replace=False) for _ in range(30)]
    parts = BasePlusSparse(shared, rows).with_blocked(blocked)
    expected = top_k_indices(exclude_items(parts.dense(), blocked), 50)
    for share in (0.0, 1.0):  # always dense, never dense
        monkeypatch.setattr(scorers_base, "SPARSE_TOP_K_MAX_DENSITY", share)
        np.testing.assert_array_equal(parts.top_k(50), expected)
