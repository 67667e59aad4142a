"""Time-boxed hyper-parameter search on validation (optuna TPE): the machinery, the spaces and
the budget rule; the searches themselves are `cf.search.search_lightgcn` and
`seq.search.search_sequence_model` (each family imports this module, never the reverse).

    budget = search_budget_seconds(train.nnz, base_seconds=120.0)
    search = search_lightgcn(train, valid, base=FAST_CONFIG, seed=2020, budget_seconds=budget)
    search.best_config   # `base` with the best trial's parameters (base's max_epochs kept)
    search.best_epoch    # the epoch that trial's early stopping kept
    search.to_dict()     # budget, space and every trial (params, value, seconds, state)

    search = search_sequence_model(split, architecture="SASRec", base=SASRecConfig(), seed=2020)

How a search runs:
- A trial trains the model with the suggested parameters on the training part, with its epochs
  capped (`trial_max_epochs`) and early stopping on validation (LightGCN: nDCG@20 through
  `train_lightgcn`'s valid_csr / patience; SASRec / GRU4Rec: the config's selection metric, as
  `train_neural_model` does). Its value is the best validation metric, its epoch the one kept.
- Every trial trains with the same `seed`, so trials differ by their parameters only; the TPE
  sampler is seeded too, so a search whose trials all finish is deterministic for a seed.
- The budget is wall-clock seconds for the whole search: no trial starts after it, and a running
  trial is given the time left as its own training budget, so a search overruns by at most one
  epoch and one validation pass. `search_budget_seconds` scales it with the data size; it is the
  default when `budget_seconds` is None.
- When the first trial took more than a third of the budget (`MIN_AFFORDABLE_TRIALS`), or
  its time limit ended it within fewer than `MIN_TRIAL_EPOCHS` epochs, no other trial starts
  (`stopped_by` "trial_cost", and `note` says so): on a large dataset an epoch can take a
  minute on 2 CPU cores, and the trials that would fit are too short to rank settings.
- `base` is tried first when it lies inside the space, so the best trial is never worse on
  validation than the configuration the search started from.
- The study is in memory (no storage files) and optuna's own logging is quieted while it runs
  (this module logs each trial). A trial that fails with a RuntimeError or ValueError (e.g. a GPU
  out of memory) is reported with its error and the search goes on; ValueError if none finished.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace

import optuna

logger = logging.getLogger(__name__)

# search_budget_seconds: `base_seconds` is the budget for this many training interactions (about
# HetRec's 92k user-artist pairs), with a floor and a cap relative to it.
REFERENCE_INTERACTIONS = 100_000
MIN_BUDGET_FACTOR = 0.25
MAX_BUDGET_FACTOR = 10.0
DEFAULT_BASE_SECONDS = 120.0

LIGHTGCN_TRIAL_MAX_EPOCHS = 100
NEURAL_TRIAL_MAX_EPOCHS = 30
DEFAULT_STARTUP_TRIALS = 5  # random trials before TPE models the good and the bad ones
# A search stops after its first trial when that trial alone took more than
# 1 / MIN_AFFORDABLE_TRIALS of the budget, or when its time limit ended it within fewer than
# MIN_TRIAL_EPOCHS epochs: one-epoch trials on a large dataset compare noise, not settings, and
# the first trial (the base configuration) is then kept as the final training.
MIN_AFFORDABLE_TRIALS = 3
MIN_TRIAL_EPOCHS = 3


@dataclass(frozen=True)
class FloatRange:
    """A float drawn from [low, high], on a log scale when `log`."""

    low: float
    high: float
    log: bool = False

    def contains(self, value) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high

    def suggest(self, trial: optuna.Trial, name: str):
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def describe(self) -> dict:
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Choice:
    """One of a few values (numbers or strings)."""

    values: tuple

    def contains(self, value) -> bool:
        return value in self.values

    def suggest(self, trial: optuna.Trial, name: str):
        return trial.suggest_categorical(name, list(self.values))

    def describe(self) -> dict:
        return {"choices": list(self.values)}


Space = dict[str, FloatRange | Choice]

# FAST_CONFIG (lr 0.02, L2 1e-3, 4 negatives, log weights, 64 dimensions) lies inside.
LIGHTGCN_SPACE: Space = {
    "lr": FloatRange(1e-3, 0.1, log=True),
    "lambda_reg": FloatRange(1e-6, 1e-2, log=True),
    "n_negatives": Choice((1, 2, 4, 8)),
    "edge_weighting": Choice(("binary", "log")),
    # 64 + the 48-dimension EASE block of the blend fit the 128 served dimensions.
    "embedding_dim": Choice((32, 64)),
}

# The SASRecConfig / GRU4RecConfig defaults (lr 3e-3, no weight decay, 64 dimensions, dropout
# 0.3, horizon 5) lie inside. Parameters a config does not have are left out of its search.
SEQUENCE_SPACE: Space = {
    "learning_rate": FloatRange(3e-4, 3e-2, log=True),
    "weight_decay": Choice((0.0, 1e-4, 1e-3, 1e-2, 1e-1)),
    # The served vectors are d_model + 1 (the output bias) wide and pgvector stores 128.
    "d_model": Choice((32, 64, 96)),
    "dropout": FloatRange(0.0, 0.5),
    "target_horizon": Choice((1, 2, 3, 5, 8)),
}


@dataclass
class TrialReport:
    """One trial, as reports show it."""

    number: int
    params: dict
    value: float | None  # best validation metric; None when it failed or never validated
    seconds: float
    state: str  # "complete", "pruned" (no validation pass in the time left) or "fail"
    best_epoch: float | None = None  # with a fraction when a time budget cut the epoch (LightGCN)
    epochs: int = 0  # epochs trained
    budget_cut: bool = False  # the search's deadline passed while it trained
    time_cut: bool = False  # a time limit (its own or the search's) ended its training
    error: str = ""


@dataclass
class SearchResult:
    model: str  # "LightGCN", "SASRec", "GRU4Rec"
    metric: str  # the validation metric maximised, e.g. "nDCG@20"
    best_config: (
        object  # `base` (a LightGCNConfig or NeuralConfig) with the best trial's parameters
    )
    best_params: dict
    best_value: float | None  # None: no trial finished (see `note`)
    best_epoch: float | None
    best_trial: int | None
    trials: list[TrialReport]
    budget_seconds: float
    seconds: float
    stopped_by: str  # "n_trials", "budget" or "trial_cost" (see MIN_AFFORDABLE_TRIALS)
    base_trial: int | None  # the trial that ran `base` unchanged (None: base outside the space)
    space: dict
    seed: int
    best_result: object | None = field(default=None, repr=False)  # the best trial's model
    # best_result is what training best_config would give (see `trained_as_final`): callers
    # keep it instead of training the same model again.
    best_is_final: bool = False
    note: str = ""  # e.g. why `base` is used unchanged

    @property
    def final_model(self) -> object | None:
        """The best trial's model when it trained as the final run would (`best_is_final`):
        callers keep it rather than train the same model again. None otherwise."""
        return self.best_result if self.best_is_final else None

    def to_dict(self) -> dict:
        """JSON-ready summary for training reports (no model)."""
        return {
            "model": self.model,
            "metric": f"valid {self.metric}",
            "sampler": f"optuna TPE, seed {self.seed}",
            "budget_seconds": round(self.budget_seconds, 2),
            "seconds": round(self.seconds, 2),
            "stopped_by": self.stopped_by,
            "n_trials": len(self.trials),
            "base_trial": self.base_trial,
            "best": {
                "trial": self.best_trial,
                "value": self.best_value,
                "epoch": self.best_epoch,
                "params": self.best_params,
                "trained_as_final": self.best_is_final,
            },
            "best_config": asdict(self.best_config),
            "space": self.space,
            "trials": [asdict(trial) for trial in self.trials],
            **({"note": self.note} if self.note else {}),
        }


@dataclass
class _Outcome:
    value: float | None
    best_epoch: float | None
    epochs: int
    result: object
    # The trial trained as a final training of its configuration would: neither its epoch cap
    # nor the search's time left stopped it before the configuration's own limits did.
    as_final: bool = False
    time_cut: bool = False  # a time limit (its own or the search's) ended its training


def trained_as_final(
    *,
    epochs: int,
    seconds: float,
    epoch_cap: int,
    max_epochs: int,
    time_limit: float,
    max_seconds: float | None,
) -> bool:
    """Whether a trial that trained `epochs` epochs in `seconds`, under the search's
    `epoch_cap` and `time_limit`, trained what a final training of its configuration
    (`max_epochs`, `max_seconds`) would: then its model *is* that training's model, up to
    where a wall-clock budget falls, and need not be trained again."""
    cut_by_epochs = epoch_cap < max_epochs and epochs >= epoch_cap
    own_limit = math.inf if max_seconds is None else max_seconds
    cut_by_search_time = time_limit < own_limit and seconds >= time_limit
    return not (cut_by_epochs or cut_by_search_time)


def trial_outcome(
    result,
    *,
    value: float | None,
    epoch_cap: int,
    max_epochs: int,
    time_limit: float,
    max_seconds: float | None,
) -> _Outcome:
    """A trial's outcome from its training `result` (with `history`, `best_epoch` and
    `train_seconds`), its validation `value` (None: never validated) and the limits it trained
    under: the search's `epoch_cap` and `time_limit`, its configuration's `max_epochs` and
    `max_seconds` (see `trained_as_final`)."""
    return _Outcome(
        value=None if value is None else float(value),
        best_epoch=result.best_epoch if value is not None else None,
        epochs=len(result.history),
        result=result,
        time_cut=result.train_seconds >= time_limit,
        as_final=trained_as_final(
            epochs=len(result.history),
            seconds=result.train_seconds,
            epoch_cap=epoch_cap,
            max_epochs=max_epochs,
            time_limit=time_limit,
            max_seconds=max_seconds,
        ),
    )


def below_baseline(
    *, metric: str, value: float, share: float, baseline: str, baseline_value: float
) -> str:
    """Why a model whose time budget left it far below a baseline is dropped: its validation
    `metric` `value` under `share` x the baseline's; "" when it is not (or `share` is 0)."""
    if not share or value >= share * baseline_value:
        return ""
    return f"validation {metric} {value:.4f} is below {share:g} x {baseline}'s {baseline_value:.4f}"


def search_budget_seconds(
    n_interactions: int,
    *,
    base_seconds: float,
    reference_interactions: int = REFERENCE_INTERACTIONS,
    min_seconds: float | None = None,
    max_seconds: float | None = None,
) -> float:
    """The search budget for `n_interactions` training interactions.

    An epoch of LightGCN, SASRec or GRU4Rec costs time linear in the interactions, so the same
    number of trials costs time proportional to them: the budget is `base_seconds` per
    `reference_interactions` (100k, about HetRec's size), i.e.
    base_seconds * n_interactions / reference_interactions, kept between a floor (`min_seconds`,
    default base_seconds / 4, so a small dataset still gets a few trials) and a cap
    (`max_seconds`, default 10 * base_seconds, so the search stays within a training run's
    time on a large one).
    """
    if not base_seconds > 0:
        raise ValueError(f"base_seconds must be positive (got {base_seconds})")
    if n_interactions < 0:
        raise ValueError(f"n_interactions must not be negative (got {n_interactions})")
    if reference_interactions <= 0:
        raise ValueError(f"reference_interactions must be positive (got {reference_interactions})")
    floor = MIN_BUDGET_FACTOR * base_seconds if min_seconds is None else min_seconds
    cap = MAX_BUDGET_FACTOR * base_seconds if max_seconds is None else max_seconds
    if floor > cap:
        raise ValueError(f"min_seconds {floor} is above max_seconds {cap}")
    proportional = base_seconds * n_interactions / reference_interactions
    return float(min(max(proportional, floor), cap))


def _fit_space(space: Space, base) -> Space:
    """The space without parameters `base` does not have, and with widths its heads divide."""
    known = {f.name for f in fields(base)}
    fitted = {name: dimension for name, dimension in space.items() if name in known}
    heads = getattr(base, "n_heads", None)
    if heads and isinstance(fitted.get("d_model"), Choice):
        widths = tuple(width for width in fitted["d_model"].values if width % heads == 0)
        if not widths:
            raise ValueError(f"no d_model choice is divisible by n_heads {heads}")
        fitted["d_model"] = Choice(widths)
    if not fitted:
        raise ValueError(
            f"nothing to search: no parameter of the space is in {type(base).__name__}"
        )
    return fitted


@contextlib.contextmanager
def _quiet_optuna():
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials: our own warning
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _search(
    *,
    model: str,
    metric: str,
    base,
    space: Space,
    seed: int,
    budget_seconds: float,
    n_trials: int | None,
    n_startup_trials: int,
    try_base: bool,
    train_trial: Callable[[object, float], _Outcome],
) -> SearchResult:
    if not (budget_seconds > 0 and math.isfinite(budget_seconds)):
        raise ValueError(f"budget_seconds must be a positive number (got {budget_seconds})")
    if n_trials is not None and n_trials < 1:
        raise ValueError(f"n_trials must be at least 1 (got {n_trials})")
    started = time.perf_counter()
    deadline = started + budget_seconds
    records: dict[int, TrialReport] = {}
    best: dict = {"value": -math.inf, "result": None, "as_final": False}

    def objective(trial: optuna.Trial) -> float:
        params = {name: dimension.suggest(trial, name) for name, dimension in space.items()}
        trial_started = time.perf_counter()
        record = TrialReport(number=trial.number, params=params, value=None, seconds=0.0, state="")
        records[trial.number] = record
        try:
            outcome = train_trial(replace(base, **params), deadline - trial_started)
        except Exception as error:
            record.error = f"{type(error).__name__}: {error}"
            logger.warning(
                "%s search trial %d failed: %s %s", model, trial.number, record.error, params
            )
            raise
        finally:
            record.seconds = round(time.perf_counter() - trial_started, 3)
            record.budget_cut = time.perf_counter() >= deadline
        record.value, record.best_epoch, record.epochs, record.time_cut = (
            outcome.value,
            outcome.best_epoch,
            outcome.epochs,
            outcome.time_cut,
        )
        logger.info(
            "%s search trial %d: valid %s %s after %d epochs (%.1fs) %s",
            model,
            trial.number,
            metric,
            "-" if outcome.value is None else f"{outcome.value:.4f}",
            outcome.epochs,
            record.seconds,
            params,
        )
        if outcome.value is None:
            raise optuna.TrialPruned("no validation pass before the search's budget ran out")
        if outcome.value > best["value"]:
            best.update(value=outcome.value, result=outcome.result, as_final=outcome.as_final)
        return outcome.value

    stopped_early: list[str] = []

    def stop_at_deadline(study: optuna.Study, _trial) -> None:
        if time.perf_counter() >= deadline:
            study.stop()
            return
        first = records.get(0)
        if len(study.trials) != 1 or first is None or first.value is None:
            return
        if first.seconds * MIN_AFFORDABLE_TRIALS > budget_seconds:
            why = (
                f"trial 0 took {first.seconds:.0f}s of the {budget_seconds:.0f}s budget, "
                f"which affords fewer than {MIN_AFFORDABLE_TRIALS} trials of that cost"
            )
        elif first.time_cut and first.epochs < MIN_TRIAL_EPOCHS:
            why = (
                f"trial 0's time limit ended it after {first.epochs} epoch(s) "
                f"({first.seconds:.0f}s): trials that short cannot rank settings"
            )
        else:
            return
        stopped_early.append(f"{why}: no other trial was started")
        logger.info("%s search: %s", model, stopped_early[0])
        study.stop()

    base_params = {name: getattr(base, name) for name in space}
    base_in_space = all(dimension.contains(base_params[name]) for name, dimension in space.items())
    with _quiet_optuna():
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials),
        )
        if try_base and base_in_space:
            study.enqueue_trial(base_params)
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=budget_seconds,
            catch=(RuntimeError, ValueError),
            callbacks=[stop_at_deadline],
        )
    seconds = time.perf_counter() - started
    trials = []
    for frozen in study.trials:
        record = records.get(frozen.number)
        if record is None:  # never reached the objective's body
            record = TrialReport(
                number=frozen.number, params=dict(frozen.params), value=None, seconds=0.0, state=""
            )
        record.state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(frozen.state.name, "fail")
        trials.append(record)
    complete = [trial for trial in trials if trial.state == "complete"]
    if not complete and all(trial.state == "pruned" for trial in trials):
        # Out of time, not broken: no trial reached a validation pass within the budget (a
        # large catalog's first epoch can take longer). The base configuration is trained as
        # it is and the report says why.
        note = (
            f"no trial reached a validation pass within the {budget_seconds:.0f}s budget "
            f"({len(trials)} pruned): the base configuration is used unchanged"
        )
        logger.warning("%s search: %s", model, note)
        return SearchResult(
            model=model, metric=metric, best_config=base, best_params={}, best_value=None,
            best_epoch=None, best_trial=None, trials=trials, budget_seconds=float(budget_seconds),
            seconds=seconds, stopped_by="budget",
            base_trial=0 if try_base and base_in_space else None,
            space={name: dimension.describe() for name, dimension in space.items()},
            seed=seed, note=note,
        )  # fmt: skip
    if not complete:
        reasons = "; ".join(f"trial {t.number}: {t.error or t.state}" for t in trials)
        raise ValueError(
            f"the {model} search finished no trial in {budget_seconds:.1f}s ({reasons or 'none'}); "
            "give it a larger budget"
        )
    winner = max(complete, key=lambda trial: (trial.value, -trial.number))
    stopped_by = "n_trials" if n_trials is not None and len(trials) >= n_trials else "budget"
    if stopped_early:
        stopped_by = "trial_cost"
    logger.info(
        "%s search: %d trials in %.1fs (budget %.1fs), best trial %d valid %s %.4f %s",
        model,
        len(trials),
        seconds,
        budget_seconds,
        winner.number,
        metric,
        winner.value,
        winner.params,
    )
    return SearchResult(
        model=model,
        metric=metric,
        best_config=replace(base, **winner.params),
        best_params=dict(winner.params),
        best_value=float(winner.value),
        best_epoch=winner.best_epoch,  # LightGCN's can have a fraction (a budget cut the epoch)
        best_trial=winner.number,
        trials=trials,
        budget_seconds=float(budget_seconds),
        seconds=seconds,
        stopped_by=stopped_by,
        base_trial=0 if try_base and base_in_space else None,
        space={name: dimension.describe() for name, dimension in space.items()},
        seed=seed,
        best_result=best["result"],
        best_is_final=bool(best["as_final"]),
        note=stopped_early[0] if stopped_early else "",
    )
