"""The one top-k helper: order, ties, exclusion, short lists, the sparse per-row variant, and
the top k of a shared row plus sparse rows."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mltasks.ml.eval.topk import (
    PAD,
    base_order,
    exclude_items,
    keep_top_per_row,
    top_k_indices,
    top_k_of_base_plus_sparse,
)


def test_one_list_is_ranked_best_first():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    top = top_k_indices(scores, 3)
    assert top.tolist() == [1, 3, 2]
    assert top.dtype == np.int64


def test_each_row_of_a_block_is_ranked_on_its_own():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    assert top_k_indices(scores, 2).tolist() == [[1, 3], [0, 1]]


def test_ties_go_to_the_lower_index():
    assert top_k_indices(np.array([1.0, 2.0, 2.0, 1.0, 2.0]), 4).tolist() == [1, 2, 4, 0]
    assert top_k_indices(np.zeros((2, 6)), 3).tolist() == [[0, 1, 2], [0, 1, 2]]


def test_minus_infinity_is_never_returned():
    scores = np.array([[3.0, -np.inf, 1.0, 2.0], [-np.inf, -np.inf, 5.0, -np.inf]])
    assert top_k_indices(scores, 3).tolist() == [[0, 3, 2], [2, PAD, PAD]]
    assert top_k_indices(np.array([-np.inf, 1.0, -np.inf]), 3).tolist() == [1]


def test_k_larger_than_the_catalog_pads_rows_and_shortens_lists():
    assert top_k_indices(np.array([[1.0, 3.0]]), 4).tolist() == [[1, 0, PAD, PAD]]
    assert top_k_indices(np.array([1.0, 3.0]), 4).tolist() == [1, 0]


def test_k_zero_gives_empty_results():
    assert top_k_indices(np.array([1.0, 2.0]), 0).tolist() == []
    assert top_k_indices(np.ones((3, 4)), 0).shape == (3, 0)


def test_exclude_items_masks_per_row_lists_and_sparse_pairs_without_touching_the_input():
    scores = np.array([[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]])
    by_list = exclude_items(scores, [np.array([0]), np.array([], dtype=np.int64)])
    by_matrix = exclude_items(scores, sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]])))
    for masked in (by_list, by_matrix):
        assert masked.dtype == np.float32
        assert masked[0, 0] == -np.inf and np.isfinite(masked[1]).all()
        assert top_k_indices(masked, 3).tolist() == [[1, 2, PAD], [2, 1, 0]]
    assert np.isfinite(scores).all()
    assert np.array_equal(exclude_items(scores, None), scores.astype(np.float32))


def test_exclude_items_in_place_masks_a_float32_block_without_a_copy_and_copies_otherwise():
    block = np.array([[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]], dtype=np.float32)
    masked = exclude_items(block, [np.array([1]), np.array([0, 2])], in_place=True)
    assert masked is block
    assert np.isinf(block).tolist() == [[False, True, False], [True, False, True]]
    assert block[np.isfinite(block)].tolist() == np.float32([0.9, 0.7, 0.2]).tolist()
    other = np.array([[0.9, 0.8, 0.7]])  # float64: not the block's own type, so a copy
    assert exclude_items(other, [np.array([0])], in_place=True)[0, 0] == -np.inf
    assert other[0, 0] == 0.9
    frozen = np.ones((1, 3), dtype=np.float32)
    frozen.flags.writeable = False
    assert exclude_items(frozen, [np.array([2])], in_place=True)[0, 2] == -np.inf
    assert frozen[0, 2] == 1.0


def test_keep_top_per_row_keeps_the_largest_stored_values():
    matrix = sp.csr_matrix(
        np.array([[0.0, 5.0, 1.0, 3.0], [2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0]])
    )
    kept = keep_top_per_row(matrix, 2)
    assert kept.toarray().tolist() == [[0, 5, 0, 3], [2, 0, 0, 0], [1, 1, 0, 0]]
    assert keep_top_per_row(sp.csr_matrix((0, 3)), 2).shape == (0, 3)


def test_items_tied_at_the_cut_are_kept_lowest_index_first():
    """Many ties straddle the k-th place: the result equals a full stable sort's first k."""
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 3, size=(50, 200)).astype(np.float32)
    expected = [np.lexsort((np.arange(200), -row))[:10].tolist() for row in scores]
    assert top_k_indices(scores, 10).tolist() == expected


def test_a_block_large_enough_for_torch_ranks_like_a_full_stable_sort(monkeypatch):
    """The large-block path (torch.topk) keeps the contract: ties to the lower index, -inf
    never returned, short rows padded, a read-only input accepted and left as it was."""
    import mltasks.ml.eval.topk as topk

    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(40, 3000)).astype(np.float32)
    scores[3, 5:] = -np.inf  # five rankable items: the row is padded
    scores[7] = -np.inf
    scores.flags.writeable = False
    before = scores.copy()
    monkeypatch.setattr(topk, "TORCH_TOPK_MIN_ELEMENTS", scores.size)

    def numpy_cut(*args, **kwargs):
        raise AssertionError("a block this large is cut by torch.topk, not argpartition")

    monkeypatch.setattr(np, "argpartition", numpy_cut)

    top = top_k_indices(scores, 25)

    expected = []
    for row in scores:
        order = np.lexsort((np.arange(row.size), -row))[:25]
        expected.append([int(i) if row[i] > -np.inf else PAD for i in order])
    assert top.tolist() == expected
    assert top[3, 5:].tolist() == [PAD] * 20 and top[7].tolist() == [PAD] * 25
    np.testing.assert_array_equal(scores, before)


def _base_plus_sparse_case(rng, *, n_rows, n_items, density, minus_infinity=0):
    """A tie-heavy shared row, sparse rows (some empty) and excluded items per row."""
    base = rng.integers(0, 4, size=n_items).astype(np.float32)
    base[rng.choice(n_items, size=minus_infinity, replace=False)] = -np.inf
    rows = sp.random(n_rows, n_items, density=density, format="csr", random_state=rng)
    rows.data = rng.integers(1, 3, size=rows.nnz).astype(np.float32)
    rows.sort_indices()
    excluded = [rng.choice(n_items, size=rng.integers(0, 8), replace=False) for _ in range(n_rows)]
    excluded[0] = rows.indices[rows.indptr[0] : rows.indptr[1]]  # every entry of row 0 excluded
    dense = np.tile(base, (n_rows, 1))
    dense[np.repeat(np.arange(n_rows), np.diff(rows.indptr)), rows.indices] += rows.data
    return base, rows, excluded, exclude_items(dense, excluded)


def test_base_plus_sparse_rows_rank_as_their_dense_block_does():
    """Ties across the shared row and the entries, excluded entries, -inf shared items, rows
    with more entries than k and k past the rankable items: the result is top_k_indices of
    the dense block."""
    rng = np.random.default_rng(11)
    for n_items, density, minus_infinity, k in [
        (60, 0.1, 0, 10),
        (60, 0.3, 5, 25),
        (40, 0.05, 30, 12),  # some rows have fewer than k rankable items: padded
        (30, 0.5, 0, 40),  # k past the catalog
        (200, 0.6, 4, 20),  # rows with many more entries than k: their k best first
        (500, 0.01, 3, 100),
    ]:
        base, rows, excluded, dense = _base_plus_sparse_case(
            rng, n_rows=50, n_items=n_items, density=density, minus_infinity=minus_infinity
        )
        top = top_k_of_base_plus_sparse(
            base=base, order=base_order(base), rows=rows, excluded=excluded, k=k
        )
        np.testing.assert_array_equal(top, top_k_indices(dense, k))
    assert (top != PAD).all()  # the last case has more than k rankable items in every row
    empty = sp.csr_matrix((0, 30), dtype=np.float32)
    assert top_k_of_base_plus_sparse(
        base=base[:30], order=base_order(base[:30]), rows=empty, excluded=[], k=5
    ).shape == (0, 5)


def test_base_order_is_best_first_with_ties_to_the_lower_index_and_its_inverse():
    order, rank = base_order(np.array([1.0, 3.0, 1.0, -np.inf, 3.0], dtype=np.float32))
    assert order.tolist() == [1, 4, 0, 2, 3]
    assert rank[order].tolist() == [0, 1, 2, 3, 4]
