"""Ranking metrics on examples small enough to check by hand (EVALUATION.md definitions)."""

import math

import numpy as np
import pytest

from mltasks.ml.eval.metrics import (
    coverage_at_k,
    evaluate_top_items,
    hit_rate_at_k,
    ndcg_at_k,
    recall_at_k,
)

# Two users; user 0 has test items {1, 7}, user 1 has {9}.
TOP = np.array([[1, 2, 3, 7], [4, 5, 6, 8]])
TEST = [np.array([1, 7]), np.array([9])]


def test_recall_is_hits_over_test_size_averaged_over_users():
    # user 0: 1 of 2 in top 2, 2 of 2 in top 4; user 1: none.
    assert recall_at_k(TOP, TEST, 2) == pytest.approx((0.5 + 0.0) / 2)
    assert recall_at_k(TOP, TEST, 4) == pytest.approx((1.0 + 0.0) / 2)


def test_ndcg_uses_binary_gains_and_ideal_over_min_k_and_test_size():
    # user 0 at K=4: hits at ranks 1 and 4 -> DCG = 1 + 1/log2(5); ideal = 1 + 1/log2(3).
    user0 = (1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(TOP, TEST, 4) == pytest.approx(user0 / 2)
    # K=1: ideal DCG is over min(1, |test|) = 1 item, so user 0 scores exactly 1.
    assert ndcg_at_k(TOP, TEST, 1) == pytest.approx(0.5)


def test_ndcg_is_one_for_a_perfect_ranking():
    top = np.array([[3, 5, 0]])
    assert ndcg_at_k(top, [np.array([5, 3])], 3) == pytest.approx(1.0)


def test_hit_rate_counts_users_with_any_hit():
    assert hit_rate_at_k(TOP, TEST, 1) == pytest.approx(0.5)
    assert hit_rate_at_k(np.array([[2, 3]]), [np.array([1])], 2) == 0.0


def test_coverage_is_distinct_recommended_items_over_catalog():
    assert coverage_at_k(TOP, 2, n_items=10) == pytest.approx(4 / 10)  # {1, 2, 4, 5}
    assert coverage_at_k(TOP, 4, n_items=16) == pytest.approx(8 / 16)
    padded = np.array([[3, -1, -1], [3, 1, -1]])  # short lists padded with -1: never an item
    assert coverage_at_k(padded, 3, n_items=4) == pytest.approx(2 / 4)


def test_evaluate_top_items_parses_names_and_rejects_too_short_lists():
    result = evaluate_top_items(
        top_items=TOP, test_items=TEST, n_items=10, metric_names=["Recall@4", "HR@1", "nDCG@4"]
    )
    assert result == {
        "Recall@4": pytest.approx(0.5),
        "HR@1": pytest.approx(0.5),
        "nDCG@4": pytest.approx(ndcg_at_k(TOP, TEST, 4)),
    }
    with pytest.raises(ValueError, match="Recall@20"):
        evaluate_top_items(top_items=TOP, test_items=TEST, n_items=10, metric_names=["Recall@20"])


def test_hits_of_many_rows_at_once_match_each_row_checked_on_its_own():
    """The vectorised lookup marks exactly the ranked items in each row's own test set: never a
    padded place, never an item of a neighbouring row's test set."""
    from mltasks.ml.eval.metrics import _hits
    from mltasks.ml.eval.topk import PAD

    rng = np.random.default_rng(11)
    top = rng.integers(0, 40, size=(300, 20))
    top[rng.random(top.shape) < 0.1] = PAD
    test = [rng.choice(40, size=rng.integers(1, 6), replace=False) for _ in range(300)]
    test[5] = np.array([39])  # the largest item: keys at a row's edge
    top[6, 0] = PAD  # row 6's PAD sits right after row 5's item 39 in key order

    hits = _hits(top, test, 15)

    expected = np.array(
        [np.isin(row[:15], t) & (row[:15] >= 0) for row, t in zip(top, test, strict=True)]
    )
    assert hits.tolist() == expected.tolist()
    assert hits.any() and not hits.all()
    with pytest.raises(ValueError):
        _hits(top, test[:-1], 15)
