"""SASRec / GRU4Rec: causality, learning planted structure, exact vs FAISS scoring, persistence."""

from __future__ import annotations

from dataclasses import replace

import faiss
import numpy as np
import pytest
import torch

from mltasks.ml.data.seq_datasets import SequenceEvents
from mltasks.ml.data.sequences import NEUTRAL_DOW, NEUTRAL_HOUR, SequenceConfig, seq_last_split
from mltasks.ml.eval.seq_metrics import evaluate_rankings, rank_cases
from mltasks.ml.seq.baselines import MostPop
from mltasks.ml.seq.continuation import load_neural_model
from mltasks.ml.seq.gru4rec import GRU4REC, GRU4RecConfig, GRU4RecNetwork, train_gru4rec
from mltasks.ml.seq.sasrec import SASREC, SASRecConfig, SASRecNetwork, train_sasrec
from mltasks.ml.seq.trainer import (
    NeuralContinuationModel,
    _future_targets,
    _loss,
    _seen_mask,
    make_training_windows,
)

torch.set_num_threads(1)

TINY = {
    "d_model": 16,
    "dropout": 0.0,
    "batch_size": 64,
    "learning_rate": 0.01,
    "max_epochs": 12,
    "patience": 4,
}


def planted_split(n_sequences: int = 240, n_items: int = 40, seed: int = 0):
    """Each sequence walks a fixed random cycle over the items: the next item is determined."""
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items)
    rows = []
    for s in range(n_sequences):
        item = int(rng.integers(n_items))
        for position in range(int(rng.integers(5, 12))):
            rows.append((f"s{s}", f"i{item}", 1_700_000_000 + 3600 * position))
            item = int(successor[item])
    events = SequenceEvents(
        sequence_ids=np.array([r[0] for r in rows]),
        item_ids=np.array([r[1] for r in rows]),
        timestamps=np.array([r[2] for r in rows], dtype=np.float64),
    )
    return seq_last_split(events, config=SequenceConfig(vocab_min_freq=1, max_seq_len=10))


@pytest.fixture(scope="module")
def split():
    return planted_split()


@pytest.fixture(scope="module")
def trained_sasrec(split):
    config = SASRecConfig(max_seq_len=10, n_layers=1, n_heads=2, **TINY)
    return train_sasrec(split=split, config=config, seed=3, show_progress=False)


def _recall_at_20(model, split) -> float:
    top_items, _ = rank_cases(model, split.test, k=100)
    return evaluate_rankings(
        top_items=top_items, cases=split.test, n_items=split.n_items, metric_names=("Recall@20",)
    )["Recall@20"]


def test_sasrec_forward_pass_is_causal():
    torch.manual_seed(0)
    network = SASRecNetwork(30, SASRecConfig(d_model=16, n_heads=2, max_seq_len=8)).eval()
    tokens = torch.tensor([[0, 0, 5, 9, 3, 7, 1, 2], [4, 8, 12, 16, 20, 24, 28, 30]])
    hours = torch.full(tokens.shape, 10)
    dows = torch.full(tokens.shape, 2)
    changed = tokens.clone()
    changed[:, 5] = 11  # a future item for positions 0..4
    with torch.no_grad():
        before = network.encode(tokens, hours, dows)
        after = network.encode(changed, hours, dows)
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:], atol=1e-4)


def test_padded_batches_score_like_single_requests():
    torch.manual_seed(0)
    inputs = [np.array([3, 1, 4]), np.array([1, 5, 9, 2, 6, 5, 3]), np.array([7])]
    for architecture, network, config in (
        (
            SASREC,
            SASRecNetwork(12, SASRecConfig(d_model=16, max_seq_len=8)),
            SASRecConfig(d_model=16, max_seq_len=8),
        ),
        (
            GRU4REC,
            GRU4RecNetwork(12, GRU4RecConfig(d_model=16)),
            GRU4RecConfig(d_model=16, max_seq_len=8),
        ),
    ):
        model = NeuralContinuationModel(
            network=network, config=config, n_items=12, architecture=architecture
        )
        batch = model.score_batch(inputs, np.array([1, 2, 3]), np.array([0, 1, 2]))
        singles = np.vstack(
            [
                model.score(items, hour, dow)
                for items, hour, dow in zip(inputs, [1, 2, 3], [0, 1, 2], strict=True)
            ]
        )
        assert np.allclose(batch, singles, atol=1e-5), architecture.name


def test_training_windows_cover_every_transition_once():
    items = [np.arange(7), np.array([2, 3])]
    hours = [np.arange(7) % 24, np.array([5, 6])]
    dows = [np.zeros(7, dtype=np.int64), np.array([1, 1])]
    windows = make_training_windows(items, hours, dows, max_seq_len=4)
    targets = windows["targets"]
    assert sorted(targets[targets >= 0].tolist()) == sorted([1, 2, 3, 4, 5, 6, 3])
    first = windows["tokens"][0]
    assert first.tolist() == [3, 4, 5, 6]  # last window of the first sequence: items 2..5 (+1)
    assert windows["targets"][0].tolist() == [3, 4, 5, 6]
    assert windows["hours"][0].tolist() == [3, 4, 5, 6]  # context of each target
    assert windows["tokens"][1].tolist() == [0, 0, 1, 2]  # left padding
    assert windows["targets"][1].tolist() == [-1, -1, 1, 2]


def test_future_targets_list_the_next_items_of_each_position():
    targets = torch.tensor([[-1, 5, 6, 7]])
    future = _future_targets(targets, horizon=3)
    assert future[0].tolist() == [[-1, 5, 6], [5, 6, 7], [6, 7, -1], [7, -1, -1]]
    narrow = _future_targets(torch.tensor([[4]]), horizon=3)  # window narrower than the horizon
    assert narrow[0].tolist() == [[4, -1, -1]]


def test_horizon_loss_reduces_to_cross_entropy_for_one_step_and_weights_later_steps():
    torch.manual_seed(0)
    network = SASRecNetwork(6, SASRecConfig(d_model=8))
    hidden = torch.randn(2, 8)
    generator = torch.Generator().manual_seed(0)
    one_step = SASRecConfig(d_model=8, target_horizon=1, label_smoothing=0.0)
    targets = torch.tensor([[1, 2], [3, -1]])
    plain = _loss(network, hidden, targets[:, 0], one_step, 6, generator)
    logits = torch.nn.functional.linear(hidden, network.output_weights(), network.output_bias)
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(logits, targets[:, 0]))
    two_steps = SASRecConfig(d_model=8, target_horizon=2, horizon_decay=0.5, label_smoothing=0.0)
    log_probs = torch.log_softmax(logits, dim=-1)
    first = -(log_probs[0, 1] + 0.5 * log_probs[0, 2]) / 1.5  # both steps present
    second = -log_probs[1, 3]  # the second step is missing: next item only
    expected = (first + second) / 2
    assert torch.allclose(_loss(network, hidden, targets, two_steps, 6, generator), expected)


def test_masking_seen_items_never_masks_the_target():
    torch.manual_seed(0)
    network = SASRecNetwork(6, SASRecConfig(d_model=8))
    tokens = torch.tensor([[2, 3, 4]])  # items 1, 2, 3
    valid_positions = torch.tensor([[True, True, True]])
    seen = _seen_mask(tokens, valid_positions, 6)
    assert seen[1].nonzero().flatten().tolist() == [1, 2]
    config = SASRecConfig(d_model=8, target_horizon=1, mask_seen_in_loss=True)
    targets = torch.tensor([1, 3, 2])  # the last target repeats an item already seen
    loss = _loss(network, torch.randn(3, 8), targets, config, 6, torch.Generator(), seen)
    assert torch.isfinite(loss)


def test_tiny_sasrec_beats_mostpop_on_planted_sequences(split, trained_sasrec):
    mostpop = MostPop(train_items=split.train_items, n_items=split.n_items)
    sasrec_recall = _recall_at_20(trained_sasrec.model, split)
    assert sasrec_recall > 0.9
    assert sasrec_recall > _recall_at_20(mostpop, split) + 0.3


def test_training_history_has_one_entry_per_epoch_and_restores_the_best(trained_sasrec):
    history = trained_sasrec.history
    assert [entry["epoch"] for entry in history] == list(range(1, len(history) + 1))
    assert {"loss", "valid_Recall@20", "valid_nDCG@10", "seconds"} <= set(history[0])
    best = max(entry["valid_Recall@20"] for entry in history)
    assert trained_sasrec.best_valid["Recall@20"] == best


def test_training_is_deterministic_for_a_seed(split):
    config = SASRecConfig(max_seq_len=10, n_layers=1, **{**TINY, "max_epochs": 2, "dropout": 0.2})
    first = train_sasrec(split=split, config=config, seed=5, show_progress=False)
    second = train_sasrec(split=split, config=config, seed=5, show_progress=False)
    assert [e["loss"] for e in first.history] == [e["loss"] for e in second.history]
    assert np.array_equal(first.model.output_item_embeddings, second.model.output_item_embeddings)


def test_sampled_softmax_option_also_learns(split):
    config = SASRecConfig(
        max_seq_len=10, n_layers=1, loss="sampled", n_sampled_negatives=10, **TINY
    )
    result = train_sasrec(split=split, config=config, seed=3, show_progress=False)
    assert _recall_at_20(result.model, split) > 0.8


def test_gru4rec_learns_planted_sequences(split):
    config = GRU4RecConfig(max_seq_len=10, **TINY)
    result = train_gru4rec(split=split, config=config, seed=3, show_progress=False)
    assert _recall_at_20(result.model, split) > 0.8


def test_faiss_inner_product_search_matches_exact_scoring(split, trained_sasrec):
    model = trained_sasrec.model
    item_vectors = model.output_item_embeddings
    assert item_vectors.shape == (split.n_items, 16 + 1)  # bias folded into the last column
    index = faiss.IndexFlatIP(item_vectors.shape[1])
    index.add(item_vectors)
    for case in range(10):
        inputs, hour, dow = split.test.inputs[case], split.test.hours[case], split.test.dows[case]
        vector = model.sequence_vector(inputs, hour, dow)
        assert vector[-1] == 1.0
        exact = model.score(inputs, hour, dow)
        faiss_scores, faiss_items = index.search(vector[None].astype(np.float32), 10)
        assert np.allclose(faiss_scores[0], exact[faiss_items[0]], atol=1e-4)
        assert np.allclose(np.sort(exact)[::-1][:10], faiss_scores[0], atol=1e-4)
        assert faiss_items[0][0] == int(np.argmax(exact))


def test_context_changes_scores_and_neutral_buckets_are_accepted(trained_sasrec):
    model = trained_sasrec.model
    monday_morning = model.score([1, 2, 3], hour=8, dow=0)
    saturday_night = model.score([1, 2, 3], hour=23, dow=5)
    neutral = model.score([1, 2, 3], hour=NEUTRAL_HOUR, dow=NEUTRAL_DOW)
    assert not np.allclose(monday_morning, saturday_night)
    assert neutral.shape == monday_morning.shape


def test_recommend_excludes_the_input(trained_sasrec):
    recommended = trained_sasrec.model.recommend([4, 5, 6], k=5)
    assert len(recommended) == 5 and not set(recommended.tolist()) & {4, 5, 6}


def test_save_and_load_round_trip_gives_the_same_scores(tmp_path, trained_sasrec):
    model = trained_sasrec.model
    model.save(tmp_path / "sasrec")
    assert sorted(p.name for p in (tmp_path / "sasrec").iterdir()) == ["config.json", "weights.pt"]
    loaded = load_neural_model(tmp_path / "sasrec")
    assert np.allclose(loaded.score([1, 2, 3], 9, 4), model.score([1, 2, 3], 9, 4), atol=1e-6)
    assert loaded.config == model.config


def test_a_refit_trains_its_fixed_epochs_whole_whatever_the_time_budget(split):
    config = SASRecConfig(max_seq_len=10, n_layers=1, n_heads=2, **{**TINY, "batch_size": 16})
    unlimited = train_sasrec(split=split, config=config, seed=3, fixed_epochs=2)
    budgeted = train_sasrec(
        split=split, config=replace(config, max_train_seconds=0.0), seed=3, fixed_epochs=2
    )
    # With the budget spent from the start, a run that validates stops after one batch; a refit
    # trains the same two whole epochs as without a budget, to the same weights.
    assert len(budgeted.history) == 2
    np.testing.assert_array_equal(
        budgeted.model.output_item_embeddings, unlimited.model.output_item_embeddings
    )
