"""LightGCN's hyper-parameter search on validation (the machinery: mltasks.ml.tuning)."""

from __future__ import annotations

from dataclasses import replace

import scipy.sparse as sp

from mltasks.ml.cf.lightgcn import LightGCNConfig, train_lightgcn
from mltasks.ml.device import resolve_device
from mltasks.ml.tuning import (
    DEFAULT_BASE_SECONDS,
    DEFAULT_STARTUP_TRIALS,
    LIGHTGCN_SPACE,
    LIGHTGCN_TRIAL_MAX_EPOCHS,
    SearchResult,
    Space,
    _fit_space,
    _Outcome,
    _search,
    search_budget_seconds,
    trial_outcome,
)


def search_lightgcn(
    train_csr: sp.csr_matrix,
    valid_csr: sp.csr_matrix,
    *,
    base: LightGCNConfig,
    seed: int,
    budget_seconds: float | None = None,
    n_trials: int | None = None,
    base_seconds: float = DEFAULT_BASE_SECONDS,
    space: Space | None = None,
    trial_max_epochs: int = LIGHTGCN_TRIAL_MAX_EPOCHS,
    n_startup_trials: int = DEFAULT_STARTUP_TRIALS,
    try_base: bool = True,
    friends: sp.csr_matrix | None = None,
    item_tags: sp.csr_matrix | None = None,
) -> SearchResult:
    """LightGCN's lr, L2, negatives, edge weighting and dimension, chosen on validation nDCG@20.

    Each trial is `train_lightgcn(train_csr, valid_csr=valid_csr, ...)` with `base`'s other
    settings (device, layers, batch size, eval_every, patience, friend and tag edges) and at
    most `trial_max_epochs` epochs. `budget_seconds` None: `search_budget_seconds` of the
    training interactions with `base_seconds`.
    """
    if valid_csr is None or valid_csr.nnz == 0:
        raise ValueError("the search needs validation interactions (valid_csr is empty)")
    if budget_seconds is None:
        budget_seconds = search_budget_seconds(int(train_csr.nnz), base_seconds=base_seconds)
    resolve_device(base.device)
    epoch_cap = max(1, min(base.max_epochs, trial_max_epochs))

    def train_trial(config: LightGCNConfig, seconds_left: float) -> _Outcome:
        limit = seconds_left if base.max_seconds is None else min(base.max_seconds, seconds_left)
        trial_config = replace(
            config, max_epochs=epoch_cap, max_seconds=max(limit, 0.0), show_progress=False
        )
        result = train_lightgcn(
            train_csr,
            config=trial_config,
            valid_csr=valid_csr,
            seed=seed,
            friends=friends,
            item_tags=item_tags,
        )
        return trial_outcome(
            result,
            value=result.best_valid_ndcg,
            epoch_cap=epoch_cap,
            max_epochs=base.max_epochs,
            time_limit=trial_config.max_seconds,
            max_seconds=base.max_seconds,
        )

    return _search(
        model="LightGCN",
        metric="nDCG@20",
        base=base,
        space=_fit_space(LIGHTGCN_SPACE if space is None else space, base),
        seed=seed,
        budget_seconds=budget_seconds,
        n_trials=n_trials,
        n_startup_trials=n_startup_trials,
        try_base=try_base,
        train_trial=train_trial,
    )
