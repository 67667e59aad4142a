"""Data drift statistics: population stability index (PSI) and the two-sample KS test.

Plain numpy/scipy, no ORM (mltasks.drift_services gathers the data):

- `psi(reference_counts, current_counts)` on two binned distributions over the same bins:
  sum over bins of (c - r) * ln(c / r), with proportions floored at `PSI_EPSILON` so an empty bin
  counts as very rare instead of making PSI infinite. Rule of thumb: < 0.1 stable, 0.1–0.2
  moderate shift, > 0.2 significant shift.
- Bins: `categorical_counts` for categories (hour of day 0–23, item popularity buckets);
  `quantile_bin_edges` for continuous values (edges at reference quantiles, so every bin holds
  about the same share of the reference; repeated quantiles of discrete data collapse into one).
- `ks_test` wraps scipy.stats.ks_2samp on at most `max_samples` values per side (a seeded
  subsample). Its p-value assumes independent values, but the events of one listening session
  share their hour and often their artist: callers pass the number of sessions as
  `max_samples`, about the number of independent observations (with all 14,000 events of a
  stationary demo-world week, p < 1e-10 every week). On discrete data it is conservative.
- `popularity_concentration_buckets`: how concentrated listening is on the head of the
  catalogue. Each event's item is ranked by its plays *in the same window*, and the event falls
  in the bucket of that rank: top 1 % of the catalogue, 1–5 %, 5–20 %, 20–50 %, the rest. Ranking
  each window by itself avoids the bias of ranking by the reference (every reference event is
  on a "known" item, while a new week plays many items the reference never saw); callers
  compare windows with the same number of events, since the head's share depends on it.
- `min_samples_for_psi`: PSI is never 0 on finite samples. Between two samples of one law it is
  about (bins - 1) * (1/n1 + 1/n2) (it behaves like a chi-square statistic), so a 24-bin PSI on
  60 sessions a week is ~0.8 of pure noise. Below this many independent values per side the
  caller skips the feature instead of raising false alarms.
- `session_lengths`: events per session, a new session after a gap of `session_gap_min` minutes
  or more (as in sequences.sessionize).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

PSI_EPSILON = 1e-4
KS_MAX_SAMPLES = 50_000
# Upper rank quantiles of the popularity buckets (rank 0 = the most played item).
POPULARITY_BUCKET_EDGES = (0.01, 0.05, 0.2, 0.5)
POPULARITY_BUCKET_NAMES = ("top_1pct", "1_5pct", "5_20pct", "20_50pct", "50_100pct")
HOURS_OF_DAY = 24


@dataclass(frozen=True)
class FeatureDrift:
    """Drift statistics of one feature; `psi`/`ks_*` are None when there was too little data."""

    feature: str
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    n_reference: int
    n_current: int
    note: str = ""

    def drifted(self, psi_threshold: float) -> bool:
        return self.psi is not None and self.psi > psi_threshold

    def as_dict(self) -> dict:
        return {
            "psi": self.psi,
            "ks_statistic": self.ks_statistic,
            "ks_pvalue": self.ks_pvalue,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "note": self.note,
        }


def psi(reference_counts, current_counts, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two distributions binned the same way (counts or shares)."""
    reference = np.asarray(reference_counts, dtype=np.float64)
    current = np.asarray(current_counts, dtype=np.float64)
    if reference.shape != current.shape or reference.ndim != 1:
        raise ValueError("psi needs two 1-d arrays over the same bins")
    if reference.sum() <= 0 or current.sum() <= 0:
        raise ValueError("psi needs at least one observation on each side")
    reference_share = np.maximum(reference / reference.sum(), epsilon)
    current_share = np.maximum(current / current.sum(), epsilon)
    return float(
        np.sum((current_share - reference_share) * np.log(current_share / reference_share))
    )


def categorical_counts(values, n_categories: int) -> np.ndarray:
    """Counts of integer categories 0..n_categories-1."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() >= n_categories):
        raise ValueError(f"categories must be in 0..{n_categories - 1}")
    return np.bincount(values, minlength=n_categories)


def quantile_bin_edges(reference, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates removed); bins are open-ended."""
    reference = np.asarray(reference, dtype=np.float64)
    if reference.size == 0:
        raise ValueError("quantile bins need reference values")
    # inverted_cdf: edges are observed values, so discrete data (session lengths) bins cleanly.
    inner = np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1], method="inverted_cdf")
    return np.unique(inner)


def binned_counts(values, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (-inf, e0], (e0, e1], …, (e_last, inf)."""
    bins = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left")
    return np.bincount(bins, minlength=len(edges) + 1)


def psi_continuous(reference, current, *, n_bins: int = 10) -> float:
    """PSI of continuous values over quantile bins of the reference."""
    edges = quantile_bin_edges(reference, n_bins)
    return psi(binned_counts(reference, edges), binned_counts(current, edges))


def min_samples_for_psi(n_bins: int, *, null_psi: float = 0.1) -> int:
    """Values per side for which the PSI of two samples of one law is about `null_psi`."""
    return math.ceil(2 * (n_bins - 1) / null_psi)


def subsample(values, *, max_samples: int = KS_MAX_SAMPLES, seed: int = 0) -> np.ndarray:
    """At most `max_samples` of `values`, drawn without replacement (deterministic)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size <= max_samples:
        return values
    return np.random.default_rng(seed).choice(values, size=max_samples, replace=False)


def ks_test(reference, current, *, max_samples: int = KS_MAX_SAMPLES) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample Kolmogorov–Smirnov test."""
    with warnings.catch_warnings():
        # Heavily tied data (hours) can defeat the exact method; the asymptotic one is fine.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
        result = stats.ks_2samp(
            subsample(reference, max_samples=max_samples, seed=1),
            subsample(current, max_samples=max_samples, seed=2),
        )
    return float(result.statistic), float(result.pvalue)


def popularity_concentration_buckets(item_ids, *, catalog_size: int) -> np.ndarray:
    """Each event's bucket (index into POPULARITY_BUCKET_NAMES) by its item's rank in `item_ids`.

    Rank 0 is the item with the most events; ties are broken by item id. The rank quantile is
    rank / catalog_size, so the buckets cover the whole catalogue, played or not.
    """
    item_ids = np.asarray(item_ids)
    if item_ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    items, inverse, counts = np.unique(item_ids, return_inverse=True, return_counts=True)
    if catalog_size < len(items):
        raise ValueError("catalog_size is smaller than the number of distinct items")
    order = np.lexsort((items, -counts))
    rank = np.empty(len(items), dtype=np.float64)
    rank[order] = np.arange(len(items))
    buckets = np.searchsorted(POPULARITY_BUCKET_EDGES, rank / catalog_size, side="right")
    return buckets[inverse.reshape(-1)].astype(np.int64)


def session_lengths(user_ids, timestamps, *, session_gap_min: float = 45.0) -> np.ndarray:
    """Number of events in each session; a gap of `session_gap_min` minutes or more splits."""
    user_ids = np.asarray(user_ids)
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if user_ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((timestamps, user_ids))
    users = user_ids[order]
    times = timestamps[order]
    starts = np.r_[True, (users[1:] != users[:-1]) | (np.diff(times) >= session_gap_min * 60.0)]
    start_positions = np.flatnonzero(starts)
    return np.diff(np.r_[start_positions, users.size]).astype(np.int64)


def feature_drift_categorical(
    feature: str,
    reference,
    current,
    *,
    n_categories: int,
    min_samples: int = 1,
    ks_max_samples: int = KS_MAX_SAMPLES,
) -> FeatureDrift:
    """PSI over categories 0..n_categories-1 and KS on the category values themselves."""
    reference = np.asarray(reference, dtype=np.int64)
    current = np.asarray(current, dtype=np.int64)
    return _feature_drift(
        feature,
        reference,
        current,
        min_samples,
        ks_max_samples,
        lambda: psi(
            categorical_counts(reference, n_categories), categorical_counts(current, n_categories)
        ),
    )


def feature_drift_continuous(
    feature: str,
    reference,
    current,
    *,
    n_bins: int = 10,
    min_samples: int = 1,
    ks_max_samples: int = KS_MAX_SAMPLES,
) -> FeatureDrift:
    """PSI over reference quantile bins and KS on the values."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    return _feature_drift(
        feature,
        reference,
        current,
        min_samples,
        ks_max_samples,
        lambda: psi_continuous(reference, current, n_bins=n_bins),
    )


def skipped(feature: str, note: str, *, n_reference: int = 0, n_current: int = 0) -> FeatureDrift:
    """A feature that was not compared, and why."""
    return FeatureDrift(feature, None, None, None, n_reference, n_current, note=f"skipped: {note}")


def _feature_drift(
    feature, reference, current, min_samples, ks_max_samples, compute_psi
) -> FeatureDrift:
    if reference.size < min_samples or current.size < min_samples:
        return skipped(
            feature,
            f"fewer than {min_samples} values on a side",
            n_reference=int(reference.size),
            n_current=int(current.size),
        )
    statistic, pvalue = ks_test(reference, current, max_samples=max(ks_max_samples, 1))
    return FeatureDrift(
        feature=feature,
        psi=compute_psi(),
        ks_statistic=statistic,
        ks_pvalue=pvalue,
        n_reference=int(reference.size),
        n_current=int(current.size),
    )
