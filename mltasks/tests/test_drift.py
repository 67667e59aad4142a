import math

import numpy as np
import pytest

from mltasks.ml.eval import drift


def test_psi_of_identical_distributions_is_zero():
    assert drift.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)


def test_psi_matches_the_hand_computed_value():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert drift.psi([50, 50], [25, 75]) == pytest.approx(expected)
    assert expected == pytest.approx(0.2747, abs=1e-4)


def test_psi_is_symmetric_and_finite_when_a_bin_is_empty():
    forward = drift.psi([100, 0], [50, 50])
    assert np.isfinite(forward)
    assert forward == pytest.approx(drift.psi([50, 50], [100, 0]))
    # The empty bin's share is floored at 1e-4: (0.5 - 1e-4) ln(0.5 / 1e-4) + (0.5 - 1) ln 0.5
    expected = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + (0.5 - (1 - 1e-4)) * math.log(0.5 / (1 - 1e-4))
    assert forward == pytest.approx(expected, rel=1e-3)


def test_psi_rejects_mismatched_or_empty_bins():
    with pytest.raises(ValueError):
        drift.psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        drift.psi([0, 0], [1, 1])


def test_categorical_counts_over_hours_of_day():
    counts = drift.categorical_counts([0, 0, 23, 5], drift.HOURS_OF_DAY)
    assert counts.shape == (24,)
    assert (counts[0], counts[5], counts[23], counts.sum()) == (2, 1, 1, 4)
    with pytest.raises(ValueError):
        drift.categorical_counts([24], drift.HOURS_OF_DAY)


def test_quantile_bins_split_the_reference_evenly_and_collapse_repeated_edges():
    reference = np.arange(1, 101)  # 1..100
    edges = drift.quantile_bin_edges(reference, n_bins=4)
    assert edges.tolist() == [25, 50, 75]
    assert drift.binned_counts(reference, edges).tolist() == [25, 25, 25, 25]
    assert drift.binned_counts([-1000, 1000], edges).tolist() == [1, 0, 0, 1]
    # Discrete data: repeated quantiles make one edge, not empty bins.
    edges = drift.quantile_bin_edges([1] * 90 + [2] * 10, n_bins=10)
    assert edges.tolist() == [1.0]
    assert drift.binned_counts([1] * 90 + [2] * 10, edges).tolist() == [90, 10]


def test_continuous_psi_is_small_for_the_same_law_and_large_for_a_shift():
    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 20_000)
    assert drift.psi_continuous(reference, rng.normal(0, 1, 20_000)) < 0.01
    assert drift.psi_continuous(reference, rng.normal(1, 1, 20_000)) > 0.5


def test_ks_test_separates_same_and_shifted_samples():
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, 2000)
    _, same_pvalue = drift.ks_test(reference, rng.normal(0, 1, 2000))
    statistic, shifted_pvalue = drift.ks_test(reference, rng.normal(0.5, 1, 2000))
    assert same_pvalue > 0.01
    assert shifted_pvalue < 1e-6
    assert 0.1 < statistic < 0.3  # sup |F - G| = Phi(0.25) - Phi(-0.25) ≈ 0.197


def test_ks_test_on_hand_checked_samples():
    # Disjoint samples: the statistic is 1.
    statistic, pvalue = drift.ks_test([1, 2, 3, 4], [10, 11, 12, 13])
    assert statistic == 1.0
    assert pvalue == pytest.approx(2 / 70)  # exact: 2 of C(8, 4) orderings are as extreme


def test_ks_test_subsamples_large_inputs_deterministically():
    values = np.arange(200_000, dtype=float)
    assert drift.subsample(values, max_samples=1000).shape == (1000,)
    assert np.array_equal(
        drift.subsample(values, max_samples=1000), drift.subsample(values, max_samples=1000)
    )


def test_popularity_buckets_rank_items_by_their_plays_in_the_same_window():
    # 100-track catalogue; track 0 played 10 times, track 1 nine times, ... track 9 once.
    item_ids = np.repeat(np.arange(10), np.arange(10, 0, -1))
    buckets = drift.popularity_concentration_buckets(item_ids, catalog_size=100)
    names = [drift.POPULARITY_BUCKET_NAMES[bucket] for bucket in buckets]
    # rank 0 -> top 1 %, ranks 1-4 -> 1-5 %, ranks 5-9 -> 5-20 % of the catalogue
    assert names.count("top_1pct") == 10
    assert names.count("1_5pct") == 9 + 8 + 7 + 6
    assert names.count("5_20pct") == 5 + 4 + 3 + 2 + 1
    assert len(buckets) == len(item_ids)


def test_popularity_buckets_ignore_which_items_are_popular():
    # Two windows with other hits but the same concentration: no drift.
    first = np.repeat([1, 2, 3], [50, 30, 20])
    second = np.repeat([7, 8, 9], [50, 30, 20])
    assert drift.psi(
        drift.categorical_counts(drift.popularity_concentration_buckets(first, catalog_size=50), 5),
        drift.categorical_counts(
            drift.popularity_concentration_buckets(second, catalog_size=50), 5
        ),
    ) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        drift.popularity_concentration_buckets(first, catalog_size=2)


def test_min_samples_for_psi_grows_with_the_number_of_bins():
    assert drift.min_samples_for_psi(24) == 460
    assert drift.min_samples_for_psi(5) == 80
    # And the null PSI really is about that small at that size.
    rng = np.random.default_rng(11)
    n = drift.min_samples_for_psi(24)
    null_psis = [
        drift.psi(
            drift.categorical_counts(rng.integers(0, 24, n), 24),
            drift.categorical_counts(rng.integers(0, 24, n), 24),
        )
        for _ in range(50)
    ]
    assert 0.05 < float(np.mean(null_psis)) < 0.15


def test_session_lengths_split_on_45_minute_gaps_per_user():
    minute = 60.0
    users = [1, 1, 1, 2, 1, 2]
    times = [0, 10 * minute, 55 * minute, 0, 99 * minute, 44.9 * minute]
    # user 1: 0, 10 | 55 (gap 45 splits) | 99 (gap 44 joins 55) -> [2, 2]; user 2: 0, 44.9 -> [2]
    lengths = drift.session_lengths(users, times, session_gap_min=45)
    assert sorted(lengths.tolist()) == [2, 2, 2]
    assert drift.session_lengths([], []).tolist() == []


def test_feature_drift_skips_a_feature_with_too_few_values():
    result = drift.feature_drift_continuous("served_score", [1.0, 2.0], [1.0], min_samples=10)
    assert result.psi is None and result.ks_pvalue is None
    assert "fewer than 10" in result.note
    assert not result.drifted(0.2)


def test_feature_drift_flags_a_shifted_hour_of_day_profile():
    morning = np.repeat([7, 8, 9], 200)
    night = np.repeat([22, 23, 0], 200)
    result = drift.feature_drift_categorical(
        "hour_of_day", morning, night, n_categories=24, min_samples=10
    )
    assert result.drifted(0.2)
    assert result.ks_pvalue < 1e-6
    assert (result.n_reference, result.n_current) == (600, 600)
