"""Slate diversity in the ML core: the artist cap, MMR, the dislike push-down and the two
diversity metrics (ArtistRepeat@K, intra-list diversity)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mltasks.ml.eval.diversity import (
    artist_repeat_at_k,
    intra_list_diversity_at_k,
    max_per_artist_order,
    mmr_order,
    penalize_near,
    served_slate_report,
    slate_reordered,
)
from mltasks.ml.eval.topk import PAD


def test_the_artist_cap_keeps_the_order_and_defers_the_extra_items():
    artists = np.array([7, 7, 7, 8, 7, 9, 8, 8])
    order = max_per_artist_order(artists, 2)
    assert order.tolist() == [0, 1, 3, 5, 6, 2, 4, 7]
    assert sorted(order.tolist()) == list(range(8))  # a permutation: nothing is lost
    assert max_per_artist_order(artists, 1).tolist() == [0, 3, 5, 1, 2, 4, 6, 7]


def test_items_of_unknown_artist_are_never_capped():
    assert max_per_artist_order(np.array([-1, -1, -1, 4]), 1).tolist() == [0, 1, 2, 3]


def test_mmr_without_diversity_is_the_relevance_order():
    relevance = np.array([0.9, 0.8, 0.7, 0.1])
    vectors = np.eye(4)
    assert mmr_order(relevance, vectors, 0.0).tolist() == [0, 1, 2, 3]


def test_mmr_moves_a_near_copy_of_the_first_item_down():
    relevance = np.array([1.0, 0.95, 0.9, 0.0])
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.7, 0.7]])
    order = mmr_order(relevance, vectors, 0.5)
    assert order[:2].tolist() == [0, 2]  # the other direction beats the near-copy
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    # full diversity: after the first pick, the least similar item comes next
    assert mmr_order(relevance, vectors, 1.0)[1] == 2


def test_mmr_refuses_a_diversity_outside_zero_to_one():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mmr_order(np.ones(2), np.eye(2), 1.5)


def test_a_candidate_close_to_a_disliked_vector_moves_down():
    scores = np.array([3.0, 2.9, 2.0, 1.5])
    candidates = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    disliked = np.array([[0.0, 1.0]])
    penalized = penalize_near(scores, candidates, disliked, weight=0.5)
    assert penalized[0] == scores[0] and penalized[3] == scores[3]  # orthogonal: untouched
    assert penalized[1] == pytest.approx(2.9 - 0.5 * 1.5)  # weight x cosine 1 x spread
    assert np.argsort(-penalized, kind="stable").tolist() == [0, 1, 3, 2]
    assert penalize_near(scores, candidates, np.zeros((0, 2)), weight=0.5).tolist() == [
        3.0, 2.9, 2.0, 1.5,
    ]  # fmt: skip


def test_artist_repeat_counts_items_whose_artist_came_before():
    item_artist = np.array([0, 0, 1, 2, 2, -1, -1])
    top = np.array([[0, 1, 2, 3], [2, 3, 5, 6], [0, PAD, PAD, PAD]])
    # row 0: artists 0,0,1,2 -> 3 distinct of 4; row 1: 1,2,?,? -> all distinct; row 2: one item
    assert artist_repeat_at_k(top, item_artist, 4) == pytest.approx((0.25 + 0 + 0) / 3)
    assert artist_repeat_at_k(top, item_artist, 2) == pytest.approx((0.5 + 0 + 0) / 3)
    # A slate with nothing shown is not counted; a third place of an artist is a second repeat,
    # PAD in between or not; two unknown artists are no repeat.
    more = np.array([[PAD, PAD, PAD, PAD], [3, 4, PAD, 4], [5, 6, 5, 0]])
    assert artist_repeat_at_k(more, item_artist, 4) == pytest.approx((2 / 3 + 0) / 2)


def test_intra_list_diversity_is_the_mean_pairwise_cosine_distance():
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    same, different = np.array([[0, 1]]), np.array([[0, 2]])
    assert intra_list_diversity_at_k(same, vectors, 2) == pytest.approx(0.0)
    assert intra_list_diversity_at_k(different, vectors, 2) == pytest.approx(1.0)
    three = np.array([[0, 1, 2, PAD]])  # pairs: 0-1 -> 0, 0-2 -> 1, 1-2 -> 1
    assert intra_list_diversity_at_k(three, vectors, 4) == pytest.approx(2 / 3)
    assert intra_list_diversity_at_k(np.array([[0, 3]]), vectors, 2) == pytest.approx(1.0)
    assert intra_list_diversity_at_k(np.array([[0, PAD]]), vectors, 2) == 0.0
    tag_counts = sp.csr_matrix(vectors)  # e.g. an ItemTags.counts matrix, kept sparse
    assert intra_list_diversity_at_k(three, tag_counts, 4) == pytest.approx(2 / 3)


def test_a_served_slate_keeps_each_lists_items_and_caps_artists_in_the_top():
    # Items 0-3 by artist 0, 4-7 by artist 1: a list of one artist's tracks first.
    item_artist = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    top = np.array([[0, 1, 2, 3, 4, 5, PAD]])
    capped = slate_reordered(top, item_artist=item_artist, item_vectors=None,
                             max_per_artist=2, diversity=0.0)  # fmt: skip
    assert capped.tolist() == [[0, 1, 4, 5, 2, 3, PAD]]
    assert sorted(capped[0][capped[0] >= 0]) == sorted(top[0][top[0] >= 0])


def test_the_slate_report_shows_what_the_artist_cap_costs_and_buys():
    item_artist = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    tags = sp.csr_matrix(np.array([[1, 0]] * 4 + [[0, 1]] * 4, dtype=np.float32))
    # The held-out items are the first artist's: the model's order finds them in the top 4.
    top = np.array([[0, 1, 2, 3, 4, 5, 6, 7]])
    report = served_slate_report(
        top_items=top, test_items=[np.array([2, 3])], n_items=8, item_artist=item_artist,
        item_vectors=tags, k=4,
    )  # fmt: skip
    plain, capped = report["model order"], report["max 2 per artist"]
    assert plain["Recall@4"] == 1.0 and capped["Recall@4"] == 0.0  # 2 and 3 pushed past 4
    assert plain["ArtistRepeat@4"] == pytest.approx(0.75) and capped["ArtistRepeat@4"] == 0.5
    assert plain["ILD@4"] == 0.0 and capped["ILD@4"] > 0.5
    assert set(report) == {"model order", "max 2 per artist", "MMR 0.3, max 2 per artist"}


def test_the_slate_report_leaves_out_what_it_cannot_compute():
    top = np.array([[0, 1, 2]])
    report = served_slate_report(top_items=top, test_items=[np.array([1])], n_items=3, k=2)
    assert list(report) == ["model order"]
    assert "ArtistRepeat@2" not in report["model order"] and "ILD@2" not in report["model order"]
