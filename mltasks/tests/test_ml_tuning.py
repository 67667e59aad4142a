"""Training that fits its data: the training device (mltasks.ml.device) and the time-boxed
hyper-parameter search (mltasks.ml.tuning) on tiny planted data. Pure torch/numpy, no Django."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import optuna
import pytest
import torch

from mltasks.ml import tuning
from mltasks.ml.cf.lightgcn import FAST_CONFIG, LightGCNConfig, epoch_batch_size, train_lightgcn
from mltasks.ml.cf.search import search_lightgcn
from mltasks.ml.data.interactions import Interactions
from mltasks.ml.data.seq_datasets import SequenceEvents
from mltasks.ml.data.sequences import SequenceConfig, seq_last_split
from mltasks.ml.data.splits import cf_random_split
from mltasks.ml.device import resolve_device
from mltasks.ml.seq.continuation import load_neural_model
from mltasks.ml.seq.gru4rec import GRU4RecConfig
from mltasks.ml.seq.sasrec import SASRecConfig, train_sasrec
from mltasks.ml.seq.search import search_sequence_model
from mltasks.ml.tuning import Choice, FloatRange, search_budget_seconds

torch.set_num_threads(1)

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

# Small enough for sub-second trials; the bad base learns (almost) nothing at lr 1e-6.
TINY_LIGHTGCN = LightGCNConfig(
    embedding_dim=16,
    num_layers=2,
    lr=0.05,
    batch_size=256,
    max_epochs=20,
    eval_every=4,
    patience=2,
    show_progress=False,
    num_threads=1,
)
LIGHTGCN_SPACE = {
    "lr": FloatRange(1e-2, 0.1, log=True),
    "lambda_reg": FloatRange(1e-6, 1e-3, log=True),
    "n_negatives": Choice((1, 2)),
    "edge_weighting": Choice(("binary", "log")),
    "embedding_dim": Choice((8, 16)),
}
TINY_SASREC = SASRecConfig(
    max_seq_len=8, d_model=16, n_layers=1, batch_size=64, max_epochs=8, patience=3, dropout=0.0
)
SEQUENCE_SPACE = {
    "learning_rate": FloatRange(3e-3, 3e-2, log=True),
    "d_model": Choice((16, 32)),
    "dropout": FloatRange(0.0, 0.3),
    "target_horizon": Choice((1, 3)),
}


def planted_cf_split(n_users=120, n_items=80, n_clusters=4, seed=0):
    """Users play 12 items of their own cluster and 2 of the 8 first (popular) items."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(n_users):
        own = np.flatnonzero(np.arange(n_items) % n_clusters == user % n_clusters)
        chosen = np.concatenate(
            [rng.choice(own, 12, replace=False), rng.choice(8, 2, replace=False)]
        )
        for item in np.unique(chosen):
            users.append(user)
            items.append(item)
    log = Interactions(
        user_ids=np.array(users),
        item_ids=np.array(items),
        weights=rng.integers(1, 50, size=len(users)),
    )
    return cf_random_split(log, seed=2020)


def planted_seq_split(n_sequences=300, n_items=150, seed=0):
    """Each sequence walks a fixed random cycle over the items: the next item is determined."""
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items)
    rows = []
    for sequence in range(n_sequences):
        item = int(rng.integers(n_items))
        for position in range(int(rng.integers(5, 10))):
            rows.append((f"s{sequence}", f"i{item}", 1_700_000_000 + 3600 * position))
            item = int(successor[item])
    events = SequenceEvents(
        sequence_ids=np.array([row[0] for row in rows]),
        item_ids=np.array([row[1] for row in rows]),
        timestamps=np.array([row[2] for row in rows], dtype=np.float64),
    )
    return seq_last_split(events, config=SequenceConfig(vocab_min_freq=1, max_seq_len=8))


@pytest.fixture(scope="module")
def cf_split():
    return planted_cf_split()


@pytest.fixture(scope="module")
def seq_split():
    return planted_seq_split()


@pytest.fixture(scope="module")
def lightgcn_search(cf_split):
    return search_lightgcn(
        cf_split.train,
        cf_split.valid,
        base=TINY_LIGHTGCN,
        seed=3,
        budget_seconds=300.0,  # far from binding: n_trials ends the search
        n_trials=4,
        space=LIGHTGCN_SPACE,
    )


# ----------------------------------------------------------------------------- device


def test_cpu_resolves_to_the_cpu_and_is_the_default():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert LightGCNConfig().device == "cpu"
    assert SASRecConfig().device == "cpu"
    assert GRU4RecConfig().device == "cpu"


@NO_CUDA
def test_auto_resolves_to_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")


@NO_CUDA
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_cuda_names_the_setting(name):
    with pytest.raises(ValueError, match=r"TRAINING_DEVICE=.*CUDA is not available"):
        resolve_device(name)


def test_an_unknown_device_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="TRAINING_DEVICE must be one of auto, cpu, cuda"):
        resolve_device("tpu")


@NO_CUDA
def test_training_on_cuda_without_cuda_fails_before_any_work(cf_split, seq_split):
    with pytest.raises(ValueError, match="TRAINING_DEVICE"):
        train_lightgcn(cf_split.train, config=replace(TINY_LIGHTGCN, device="cuda"))
    with pytest.raises(ValueError, match="TRAINING_DEVICE"):
        train_sasrec(split=seq_split, config=replace(TINY_SASREC, device="cuda"))
    with pytest.raises(ValueError, match="TRAINING_DEVICE"):
        search_lightgcn(
            cf_split.train,
            cf_split.valid,
            base=replace(TINY_LIGHTGCN, device="cuda"),
            seed=1,
            budget_seconds=5.0,
        )


def test_lightgcn_on_an_explicit_cpu_or_auto_equals_the_default(cf_split):
    default = train_lightgcn(cf_split.train, config=TINY_LIGHTGCN, seed=5, fixed_epochs=2)
    for device in ("cpu", "auto") if not torch.cuda.is_available() else ("cpu",):
        explicit = train_lightgcn(
            cf_split.train, config=replace(TINY_LIGHTGCN, device=device), seed=5, fixed_epochs=2
        )
        np.testing.assert_array_equal(default.user_vectors, explicit.user_vectors)
        np.testing.assert_array_equal(default.item_vectors, explicit.item_vectors)


def test_sasrec_on_an_explicit_cpu_equals_the_default_and_saves_without_its_device(
    seq_split, tmp_path
):
    default = train_sasrec(split=seq_split, config=TINY_SASREC, seed=2, fixed_epochs=1)
    explicit = train_sasrec(
        split=seq_split, config=replace(TINY_SASREC, device="cpu"), seed=2, fixed_epochs=1
    )
    np.testing.assert_array_equal(
        default.model.output_item_embeddings, explicit.model.output_item_embeddings
    )
    assert explicit.model.device == torch.device("cpu")
    explicit.model.config.device = "auto"  # as a worker with TRAINING_DEVICE=auto would train
    explicit.model.save(tmp_path)
    assert "device" not in json.loads((tmp_path / "config.json").read_text())["config"]
    loaded = load_neural_model(tmp_path)
    assert loaded.device == torch.device("cpu") and loaded.config.device == "cpu"
    np.testing.assert_array_equal(loaded.score([1, 2, 3]), explicit.model.score([1, 2, 3]))


# ----------------------------------------------------------------------------- budget


def test_budget_is_proportional_to_interactions_between_a_floor_and_a_cap():
    assert search_budget_seconds(100_000, base_seconds=120) == pytest.approx(120)
    assert search_budget_seconds(300_000, base_seconds=120) == pytest.approx(360)
    assert search_budget_seconds(1_000, base_seconds=120) == pytest.approx(30)  # the floor
    assert search_budget_seconds(10**9, base_seconds=120) == pytest.approx(1200)  # the cap
    assert search_budget_seconds(10**9, base_seconds=120, max_seconds=600) == 600
    with pytest.raises(ValueError, match="base_seconds must be positive"):
        search_budget_seconds(1_000, base_seconds=0)
    with pytest.raises(ValueError, match="above max_seconds"):
        search_budget_seconds(1_000, base_seconds=10, min_seconds=50, max_seconds=20)


def test_the_shipped_configs_lie_in_the_default_spaces_and_served_widths_fit_pgvector():
    from mltasks.models import STORED_VECTOR_DIM

    for config, space in (
        (FAST_CONFIG, tuning.LIGHTGCN_SPACE),
        (SASRecConfig(), tuning.SEQUENCE_SPACE),
        (GRU4RecConfig(), tuning.SEQUENCE_SPACE),
    ):
        for name, dimension in space.items():
            assert dimension.contains(getattr(config, name)), (type(config).__name__, name)
    assert max(tuning.SEQUENCE_SPACE["d_model"].values) + 1 <= STORED_VECTOR_DIM


def test_search_stops_at_its_time_budget(cf_split):
    budget = 1.0
    started = time.perf_counter()
    search = search_lightgcn(
        cf_split.train,
        cf_split.valid,
        base=replace(TINY_LIGHTGCN, max_epochs=100_000, patience=100_000),
        seed=1,
        budget_seconds=budget,
        space=LIGHTGCN_SPACE,
        trial_max_epochs=100_000,  # trials never end alone: the deadline stops the first
    )
    wall = time.perf_counter() - started
    assert search.stopped_by == "budget"
    # One epoch and one validation pass past the deadline at most (tens of ms here).
    assert wall <= budget + 1.5
    assert search.trials and search.trials[-1].budget_cut
    assert [trial.number for trial in search.trials] == list(range(len(search.trials)))


def test_search_without_a_budget_uses_the_data_sized_one(cf_split):
    search = search_lightgcn(
        cf_split.train,
        cf_split.valid,
        base=TINY_LIGHTGCN,
        seed=1,
        n_trials=1,
        base_seconds=40.0,
        space=LIGHTGCN_SPACE,
    )
    assert search.budget_seconds == search_budget_seconds(cf_split.train.nnz, base_seconds=40.0)
    assert search.budget_seconds == pytest.approx(10.0)  # a tiny dataset gets the floor


# ----------------------------------------------------------------------------- LightGCN search


def test_search_reports_every_trial(lightgcn_search):
    trials = lightgcn_search.trials
    assert [trial.number for trial in trials] == [0, 1, 2, 3]
    assert lightgcn_search.stopped_by == "n_trials"
    for trial in trials:
        assert set(trial.params) == set(LIGHTGCN_SPACE)
        assert trial.state == "complete" and trial.value > 0 and trial.seconds > 0
        assert 1 <= trial.best_epoch <= trial.epochs <= TINY_LIGHTGCN.max_epochs
    report = json.loads(json.dumps(lightgcn_search.to_dict()))
    assert len(report["trials"]) == 4
    assert report["best"]["trial"] == lightgcn_search.best_trial
    assert report["metric"] == "valid nDCG@20"


def test_base_inside_the_space_is_the_first_trial(lightgcn_search):
    first = lightgcn_search.trials[0]
    assert lightgcn_search.base_trial == 0
    assert first.params == {name: getattr(TINY_LIGHTGCN, name) for name in LIGHTGCN_SPACE}
    assert lightgcn_search.best_value >= first.value


def test_returned_config_is_the_best_trials_and_retrains_to_its_value(cf_split, lightgcn_search):
    complete = [trial for trial in lightgcn_search.trials if trial.state == "complete"]
    best = max(complete, key=lambda trial: trial.value)
    assert lightgcn_search.best_trial == best.number
    assert lightgcn_search.best_value == best.value
    assert lightgcn_search.best_epoch == best.best_epoch
    assert lightgcn_search.best_config == replace(TINY_LIGHTGCN, **best.params)
    again = train_lightgcn(
        cf_split.train, config=lightgcn_search.best_config, valid_csr=cf_split.valid, seed=3
    )
    assert again.best_valid_ndcg == best.value
    assert again.best_epoch == best.best_epoch
    np.testing.assert_array_equal(again.user_vectors, lightgcn_search.best_result.user_vectors)


def test_a_best_trial_stopped_by_its_own_limits_is_the_final_training(lightgcn_search):
    # TINY_LIGHTGCN's 20 epochs are below the trial cap (100), and the budget did not bind.
    best = lightgcn_search.trials[lightgcn_search.best_trial]
    assert not best.budget_cut and best.epochs <= TINY_LIGHTGCN.max_epochs
    assert lightgcn_search.best_is_final
    assert lightgcn_search.to_dict()["best"]["trained_as_final"] is True


@pytest.mark.parametrize(
    ("epochs", "seconds", "epoch_cap", "time_limit", "max_seconds", "as_final"),
    [
        (7, 1.0, 20, 50.0, None, True),  # early stopping, inside both limits
        (20, 1.0, 20, 50.0, None, True),  # the configuration's own epochs: as a final run
        (10, 1.0, 10, 50.0, None, False),  # the search's epoch cap, below max_epochs (20)
        (3, 50.0, 20, 50.0, None, False),  # the search's time ran out
        (3, 30.0, 20, 30.0, 30.0, True),  # its own time budget ran out, as a final run's would
        (3, 20.0, 20, 20.0, 30.0, False),  # the search's time left, shorter than its own
    ],
)
def test_trained_as_final(epochs, seconds, epoch_cap, time_limit, max_seconds, as_final):
    assert (
        tuning.trained_as_final(
            epochs=epochs,
            seconds=seconds,
            epoch_cap=epoch_cap,
            max_epochs=20,
            time_limit=time_limit,
            max_seconds=max_seconds,
        )  # fmt: skip
        is as_final
    )


def test_a_trial_cut_by_the_searchs_epoch_cap_or_time_is_trained_again(cf_split):
    base = replace(TINY_LIGHTGCN, patience=1000)  # no early stopping: trains every epoch
    capped = search_lightgcn(
        cf_split.train, cf_split.valid, base=base, seed=1, budget_seconds=300.0, n_trials=1,
        trial_max_epochs=4, space=LIGHTGCN_SPACE,
    )  # fmt: skip
    assert capped.trials[0].epochs == 4 and not capped.best_is_final
    timed_out = search_lightgcn(
        cf_split.train, cf_split.valid, base=replace(base, max_epochs=1000), seed=1,
        budget_seconds=1e-3, space=LIGHTGCN_SPACE,
    )  # fmt: skip
    assert timed_out.trials[0].budget_cut and not timed_out.best_is_final


def test_search_is_deterministic_for_a_seed(cf_split, lightgcn_search):
    def search(seed, n_trials):
        return search_lightgcn(
            cf_split.train,
            cf_split.valid,
            base=TINY_LIGHTGCN,
            seed=seed,
            budget_seconds=300.0,
            n_trials=n_trials,
            space=LIGHTGCN_SPACE,
        )

    again, other = search(3, n_trials=4), search(4, n_trials=2)
    assert [t.params for t in again.trials] == [t.params for t in lightgcn_search.trials]
    assert [t.value for t in again.trials] == [t.value for t in lightgcn_search.trials]
    # Trial 0 is the base either way; the sampled ones follow the seed.
    assert other.trials[0].params == again.trials[0].params
    assert other.trials[1].params != again.trials[1].params


def test_search_beats_a_deliberately_bad_base(cf_split):
    bad = replace(TINY_LIGHTGCN, lr=1e-6)
    bad_value = train_lightgcn(
        cf_split.train, config=bad, valid_csr=cf_split.valid, seed=7
    ).best_valid_ndcg
    search = search_lightgcn(
        cf_split.train,
        cf_split.valid,
        base=bad,
        seed=7,
        budget_seconds=300.0,
        n_trials=3,
        space=LIGHTGCN_SPACE,
    )
    assert search.base_trial is None  # lr 1e-6 is outside the space: not tried
    assert search.best_config.lr >= 1e-2
    assert search.best_value > 1.5 * bad_value


def test_failed_trials_are_reported_and_the_search_goes_on(cf_split):
    space = {"lr": FloatRange(1e-2, 0.1, log=True), "edge_weighting": Choice(("binary", "sqrt"))}
    search = search_lightgcn(
        cf_split.train,
        cf_split.valid,
        base=TINY_LIGHTGCN,
        seed=2,
        budget_seconds=300.0,
        n_trials=5,
        space=space,
    )
    failed = [trial for trial in search.trials if trial.state == "fail"]
    assert len(search.trials) == 5 and failed
    assert all(trial.params["edge_weighting"] == "sqrt" for trial in failed)
    assert all("unknown weight scheme" in trial.error for trial in failed)
    assert search.best_config.edge_weighting == "binary"
    with pytest.raises(ValueError, match="finished no trial"):
        search_lightgcn(
            cf_split.train,
            cf_split.valid,
            base=TINY_LIGHTGCN,
            seed=2,
            budget_seconds=300.0,
            n_trials=2,
            space={"edge_weighting": Choice(("sqrt",))},
        )


def test_search_is_quiet_and_writes_no_files(cf_split, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    verbosity = optuna.logging.get_verbosity()
    search_lightgcn(
        cf_split.train,
        cf_split.valid,
        base=TINY_LIGHTGCN,
        seed=1,
        budget_seconds=300.0,
        n_trials=1,
        space=LIGHTGCN_SPACE,
    )
    assert list(tmp_path.iterdir()) == []  # an in-memory study
    assert optuna.logging.get_verbosity() == verbosity  # restored
    assert "Trial 0" not in capfd.readouterr().err  # optuna's "Trial 0 finished ..." line


def test_bad_search_arguments_are_rejected(cf_split, seq_split):
    with pytest.raises(ValueError, match="budget_seconds must be a positive"):
        search_lightgcn(
            cf_split.train, cf_split.valid, base=TINY_LIGHTGCN, seed=1, budget_seconds=0
        )
    with pytest.raises(ValueError, match="n_trials must be at least 1"):
        search_lightgcn(
            cf_split.train, cf_split.valid, base=TINY_LIGHTGCN, seed=1, budget_seconds=5, n_trials=0
        )
    with pytest.raises(ValueError, match="unknown architecture 'BERT4Rec'"):
        search_sequence_model(seq_split, architecture="BERT4Rec", seed=1, budget_seconds=5)
    with pytest.raises(ValueError, match="GRU4Rec needs a GRU4RecConfig"):
        search_sequence_model(
            seq_split, architecture="GRU4Rec", base=TINY_SASREC, seed=1, budget_seconds=5
        )


# ----------------------------------------------------------------------------- SASRec / GRU4Rec


def test_sequence_search_beats_a_deliberately_bad_base_and_returns_the_best_trial(seq_split):
    bad = replace(TINY_SASREC, learning_rate=1e-6)
    bad_value = train_sasrec(split=seq_split, config=bad, seed=7).best_valid["Recall@20"]
    search = search_sequence_model(
        seq_split,
        architecture="SASRec",
        base=bad,
        seed=7,
        budget_seconds=300.0,
        n_trials=3,
        space=SEQUENCE_SPACE,
    )
    assert search.model == "SASRec" and search.metric == "Recall@20"
    assert [trial.number for trial in search.trials] == [0, 1, 2]
    assert all(set(trial.params) == set(SEQUENCE_SPACE) for trial in search.trials)
    best = max(search.trials, key=lambda trial: (trial.value, -trial.number))
    assert (search.best_trial, search.best_value) == (best.number, best.value)
    assert search.best_config == replace(bad, **best.params)
    assert search.best_value > 2 * bad_value


def test_gru4rec_search_by_name_searches_its_dropout(seq_split):
    base = GRU4RecConfig(max_seq_len=8, d_model=16, batch_size=64, max_epochs=4, patience=2)
    search = search_sequence_model(
        seq_split,
        architecture="GRU4Rec",
        base=base,
        seed=1,
        budget_seconds=300.0,
        n_trials=2,
        space={**SEQUENCE_SPACE, "n_heads": Choice((1, 2))},  # GRU4Rec has no heads
    )
    assert search.model == "GRU4Rec"
    assert set(search.space) == set(SEQUENCE_SPACE)
    assert isinstance(search.best_config, GRU4RecConfig)
    assert search.best_config.dropout == search.trials[search.best_trial].params["dropout"]


def test_a_lightgcn_trial_whose_budget_ends_before_its_first_validation_pass_is_scored_there(
    cf_split,
):
    """On a large graph one epoch outlasts a trial's budget: the trial stops within a batch of
    it, is validated where it stopped instead of leaving the search with nothing to compare,
    and its epochs are the fraction of the first one it trained."""
    base = replace(TINY_LIGHTGCN, max_epochs=1000, patience=1000)  # validation every 4 epochs
    search = search_lightgcn(
        cf_split.train, cf_split.valid, base=base, seed=1, budget_seconds=1e-3,
        space=LIGHTGCN_SPACE,
    )  # fmt: skip

    assert [(trial.state, trial.epochs) for trial in search.trials] == [("complete", 1)]
    batches = -(-cf_split.train.nnz // epoch_batch_size(cf_split.train.nnz, base))
    assert batches > 1
    assert search.trials[0].value is not None and search.best_epoch == round(1 / batches, 4)
    assert search.best_value == search.trials[0].value and search.best_trial == 0


def test_a_search_whose_trials_all_end_without_a_score_keeps_the_base_and_says_why():
    base = replace(TINY_LIGHTGCN, lr=0.03)

    def unscored_trial(config, seconds_left):
        return tuning._Outcome(value=None, best_epoch=None, epochs=1, result=None)

    search = tuning._search(
        model="LightGCN", metric="nDCG@20", base=base, space=LIGHTGCN_SPACE, seed=1,
        budget_seconds=60.0, n_trials=3, n_startup_trials=2, try_base=False,
        train_trial=unscored_trial,
    )  # fmt: skip

    assert [trial.state for trial in search.trials] == ["pruned"] * 3
    assert search.best_config == base
    assert (search.best_value, search.best_trial, search.best_params) == (None, None, {})
    report = search.to_dict()
    assert "base configuration is used unchanged" in report["note"]
    assert report["best"]["value"] is None
    json.dumps(report)  # JSON-ready: goes into the version's report


def _timed_trial(seconds: float, *, epochs: int = 1, time_cut: bool = False):
    """A fake trial that takes `seconds` and scores its learning rate."""

    def train_trial(config, seconds_left):
        time.sleep(seconds)
        return tuning._Outcome(
            value=config.lr, best_epoch=1, epochs=epochs, result=config, time_cut=time_cut
        )

    return train_trial


@pytest.mark.parametrize(
    ("trial_seconds", "budget", "trials", "stopped_by"),
    [(0.5, 1.2, 1, "trial_cost"), (0.05, 1.2, 3, "n_trials")],
)
def test_a_search_whose_first_trial_costs_over_a_third_of_its_budget_stops_there(
    trial_seconds, budget, trials, stopped_by
):
    search = tuning._search(
        model="LightGCN", metric="nDCG@20", base=TINY_LIGHTGCN, space=LIGHTGCN_SPACE, seed=1,
        budget_seconds=budget, n_trials=3, n_startup_trials=2, try_base=False,
        train_trial=_timed_trial(trial_seconds),
    )  # fmt: skip

    assert len(search.trials) == trials
    assert search.stopped_by == stopped_by
    assert search.best_trial == 0 if trials == 1 else search.best_trial is not None
    if stopped_by == "trial_cost":
        assert "affords fewer than 3 trials" in search.to_dict()["note"]
    else:
        assert "note" not in search.to_dict()


@pytest.mark.parametrize(("epochs", "trials"), [(1, 1), (2, 1), (3, 3)])
def test_a_search_whose_first_trial_its_time_limit_ended_within_3_epochs_stops_there(
    epochs, trials
):
    search = tuning._search(
        model="GRU4Rec", metric="Recall@20", base=TINY_LIGHTGCN, space=LIGHTGCN_SPACE, seed=1,
        budget_seconds=60.0, n_trials=3, n_startup_trials=2, try_base=False,
        train_trial=_timed_trial(0.01, epochs=epochs, time_cut=True),
    )  # fmt: skip

    assert len(search.trials) == trials
    assert search.trials[0].time_cut
    if trials == 1:
        assert search.stopped_by == "trial_cost"
        assert f"ended it after {epochs} epoch(s)" in search.to_dict()["note"]


def test_a_lightgcn_trial_records_whether_its_time_limit_ended_it(cf_split):
    base = replace(TINY_LIGHTGCN, max_epochs=100_000, patience=100_000, max_seconds=0.3)
    cut = search_lightgcn(
        cf_split.train, cf_split.valid, base=base, seed=1, budget_seconds=30.0, n_trials=1,
        space=LIGHTGCN_SPACE, trial_max_epochs=100_000,
    )  # fmt: skip
    ended = search_lightgcn(
        cf_split.train, cf_split.valid, base=TINY_LIGHTGCN, seed=1, budget_seconds=30.0,
        n_trials=1, space=LIGHTGCN_SPACE,
    )  # fmt: skip

    assert cut.trials[0].time_cut and cut.trials[0].epochs >= 3
    assert not ended.trials[0].time_cut and ended.trials[0].epochs <= TINY_LIGHTGCN.max_epochs
