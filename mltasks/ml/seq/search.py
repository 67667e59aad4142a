"""SASRec's and GRU4Rec's hyper-parameter search on validation (the machinery:
mltasks.ml.tuning)."""

from __future__ import annotations

from dataclasses import replace

from mltasks.ml.device import resolve_device
from mltasks.ml.seq.gru4rec import GRU4REC
from mltasks.ml.seq.sasrec import SASREC
from mltasks.ml.seq.trainer import NeuralArchitecture, NeuralConfig, train_neural_model
from mltasks.ml.tuning import (
    DEFAULT_BASE_SECONDS,
    DEFAULT_STARTUP_TRIALS,
    NEURAL_TRIAL_MAX_EPOCHS,
    SEQUENCE_SPACE,
    SearchResult,
    Space,
    _fit_space,
    _Outcome,
    _search,
    search_budget_seconds,
    trial_outcome,
)

SEQUENCE_ARCHITECTURES = (SASREC, GRU4REC)


def search_sequence_model(
    split,
    *,
    architecture: str | NeuralArchitecture,
    base: NeuralConfig | None = None,
    seed: int,
    budget_seconds: float | None = None,
    n_trials: int | None = None,
    base_seconds: float = DEFAULT_BASE_SECONDS,
    space: Space | None = None,
    trial_max_epochs: int = NEURAL_TRIAL_MAX_EPOCHS,
    n_startup_trials: int = DEFAULT_STARTUP_TRIALS,
    try_base: bool = True,
) -> SearchResult:
    """SASRec's or GRU4Rec's learning rate, weight decay, width, dropout and target horizon,
    chosen on the validation metric of `base.selection_metric` (Recall@20 by default).

    `split` is a sequences.SeqSplit; `architecture` "SASRec" / "GRU4Rec" (or sasrec.SASREC,
    gru4rec.GRU4REC); `base` defaults to that model's config. Each trial is
    `train_neural_model` with at most `trial_max_epochs` epochs and `base`'s patience.
    `budget_seconds` None: `search_budget_seconds` of the training items with `base_seconds`.
    """
    architecture = _architecture(architecture)
    base = architecture.config_class() if base is None else base
    if not isinstance(base, architecture.config_class):
        raise ValueError(
            f"base is a {type(base).__name__}; {architecture.name} needs a "
            f"{architecture.config_class.__name__}"
        )
    if len(split.valid) == 0:
        raise ValueError("the search needs validation cases (split.valid is empty)")
    n_interactions = int(sum(len(items) for items in split.train_items))
    if budget_seconds is None:
        budget_seconds = search_budget_seconds(n_interactions, base_seconds=base_seconds)
    resolve_device(base.device)
    epoch_cap = max(1, min(base.max_epochs, trial_max_epochs))
    metric = base.selection_metric

    def train_trial(config: NeuralConfig, seconds_left: float) -> _Outcome:
        limit = seconds_left
        if base.max_train_seconds is not None:
            limit = min(base.max_train_seconds, seconds_left)
        trial_config = replace(config, max_epochs=epoch_cap, max_train_seconds=max(limit, 0.0))
        result = train_neural_model(
            architecture=architecture,
            split=split,
            config=trial_config,
            seed=seed,
            show_progress=False,
        )
        return trial_outcome(
            result,
            value=result.best_valid.get(metric),
            epoch_cap=epoch_cap,
            max_epochs=base.max_epochs,
            time_limit=trial_config.max_train_seconds,
            max_seconds=base.max_train_seconds,
        )

    return _search(
        model=architecture.name,
        metric=metric,
        base=base,
        space=_fit_space(SEQUENCE_SPACE if space is None else space, base),
        seed=seed,
        budget_seconds=budget_seconds,
        n_trials=n_trials,
        n_startup_trials=n_startup_trials,
        try_base=try_base,
        train_trial=train_trial,
    )


def _architecture(architecture: str | NeuralArchitecture) -> NeuralArchitecture:
    if isinstance(architecture, NeuralArchitecture):
        return architecture
    for known in SEQUENCE_ARCHITECTURES:
        if architecture in (known.name, known.kind):
            return known
    names = ", ".join(known.name for known in SEQUENCE_ARCHITECTURES)
    raise ValueError(f"unknown architecture {architecture!r}; expected one of {names}")
