"""The CF-random split of EVALUATION.md: per user, 20% test (at least one), 10% of the rest valid.

Matrices keep the summed raw weights (play counts) of each positive pair; a model decides how to
use them for training (see `interactions.training_weights`). Relevance of test and validation
items is binary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.interactions import Interactions, build_csr

DEFAULT_SEED = 2020


@dataclass
class CFSplit:
    """Three disjoint user x item matrices over the same index space."""

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    seed: int | None = None
    protocol: str = "CF-random"

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def train_valid(self) -> sp.csr_matrix:
        """Train and validation together: what a model is refitted on before the test."""
        return (self.train + self.valid).tocsr()

    def summary(self) -> dict:
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "n_users": int(self.n_users),
            "n_items": int(self.n_items),
            "n_train": int(self.train.nnz),
            "n_valid": int(self.valid.nnz),
            "n_test": int(self.test.nnz),
            "n_test_users": int(np.count_nonzero(np.diff(self.test.indptr))),
            "n_valid_users": int(np.count_nonzero(np.diff(self.valid.indptr))),
        }


def held_out_items(matrix: sp.csr_matrix) -> tuple[np.ndarray, list[np.ndarray]]:
    """Users with at least one item in `matrix`, and each one's item indices."""
    users = np.flatnonzero(np.diff(matrix.indptr))
    items = [matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]].copy() for u in users]
    return users, items


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def cf_random_split(
    interactions: Interactions,
    *,
    seed: int = DEFAULT_SEED,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.1,
) -> CFSplit:
    """Per user: test = max(1, round(20%)), valid = round(10% of the rest), rounding half up.

    Pairs are sorted by (user, item) before a user's items are shuffled with one generator seeded
    by `seed` and visited in user-index order, so the split depends only on the data and the seed,
    not on the order of the log's rows.
    """
    users, items, weights = interactions.positive_pairs()
    rng = np.random.default_rng(seed)
    part = np.zeros(len(users), dtype=np.int8)  # 0 train, 1 valid, 2 test
    boundaries = np.flatnonzero(np.diff(users)) + 1
    starts = np.concatenate([[0], boundaries]) if len(users) else np.array([], dtype=np.int64)
    ends = np.concatenate([boundaries, [len(users)]]) if len(users) else starts
    for start, end in zip(starts, ends, strict=True):
        n = end - start
        order = start + rng.permutation(n)
        n_test = max(1, _round_half_up(test_fraction * n))
        n_valid = _round_half_up(valid_fraction * (n - n_test))
        part[order[:n_test]] = 2
        part[order[n_test : n_test + n_valid]] = 1
    n_users, n_items = interactions.n_users, interactions.n_items

    def matrix(code: int) -> sp.csr_matrix:
        keep = part == code
        return build_csr(users[keep], items[keep], weights[keep], n_users, n_items)

    return CFSplit(train=matrix(0), valid=matrix(1), test=matrix(2), seed=seed)


DEFAULT_EVAL_SAMPLE = 5000  # validation users kept when a split has more (see sample_eval_users)


@dataclass
class EvalSample:
    """Held-out matrix restricted to a seeded sample of its users (same shape, other rows empty).

    `note` is the sentence a report shows next to the metrics computed on `matrix`.
    """

    matrix: sp.csr_matrix
    users: np.ndarray  # the sampled users (row indices), sorted
    n_users: int  # users with at least one held-out item before sampling
    seed: int

    @property
    def sampled(self) -> bool:
        return len(self.users) < self.n_users

    @property
    def note(self) -> str:
        if self.sampled:
            return (
                f"validation on a seeded sample of {len(self.users):,} of {self.n_users:,} users "
                f"(seed {self.seed})"
            )
        return f"validation on all {self.n_users:,} users"


def sample_eval_users(
    matrix: sp.csr_matrix, *, max_users: int = DEFAULT_EVAL_SAMPLE, seed: int = DEFAULT_SEED
) -> EvalSample:
    """At most `max_users` of the users with a held-out item in `matrix`, drawn without
    replacement by a generator seeded with `seed` (the same data and seed give the same sample),
    the others' rows emptied. With `max_users` or fewer such users, `matrix` is kept whole.
    """
    if max_users < 1:
        raise ValueError(f"max_users must be at least 1, got {max_users}")
    matrix = sp.csr_matrix(matrix)
    users = np.flatnonzero(np.diff(matrix.indptr))
    if len(users) <= max_users:
        return EvalSample(matrix=matrix, users=users, n_users=len(users), seed=seed)
    chosen = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
    keep = np.zeros(matrix.shape[0], dtype=bool)
    keep[chosen] = True
    lengths = np.where(keep, np.diff(matrix.indptr), 0)
    entries = np.repeat(keep, np.diff(matrix.indptr))
    restricted = sp.csr_matrix(
        (
            matrix.data[entries],
            matrix.indices[entries],
            np.concatenate([[0], np.cumsum(lengths)]),
        ),
        shape=matrix.shape,
    )
    return EvalSample(matrix=restricted, users=chosen, n_users=len(users), seed=seed)
