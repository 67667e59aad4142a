"""The activation rule (mltasks.training.activation): a new version replaces the active one only
when it beats MostPop and is at least as good as the active version on the same held-out data.

Real training runs on a tiny demo world, weakened by their training budget or epoch count
(never by touching a metric). By default a run serves the best of everything it trains (the
ranker, Markov, session-kNN...), which a weak neural model cannot spoil; the runs that test the
rule itself restrict what may be served (SERVED_CANDIDATES) to the neural models, or to
LightGCN. The comparison's branches that need new data or broken artifacts are driven with
hand-made vectors.
"""

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from django.core.management import call_command
from django.test import Client, override_settings

from catalog.tests.factories import UserFactory
from mltasks.ml.artifacts import ServingVectors, save_serving_vectors
from mltasks.ml.data.interactions import Interactions
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.models import ModelVersion
from mltasks.services import model_version_activate, model_version_train
from mltasks.tests.conftest import world_delete
from mltasks.training.activation import (
    MIN_UNSEEN_USERS,
    RecommenderHeldOut,
    activation_decide,
)
from mltasks.training.recommender import first_positive_times

TINY_WORLD = ["--users", "60", "--artists", "16", "--tracks", "300", "--events", "8000",
              "--playlists", "40", "--seed", "3"]  # fmt: skip
# Budgets far above what the runs need, so the epoch count alone decides (deterministic).
ONE_BATCH = {"TRAINING_BUDGET_SECONDS": 1e-4, "TRAINING_MAX_EPOCHS": 1}  # stops after a batch
ONE_EPOCH = {"TRAINING_BUDGET_SECONDS": 600.0, "TRAINING_MAX_EPOCHS": 1}
THREE_EPOCHS = {"TRAINING_BUDGET_SECONDS": 600.0, "TRAINING_MAX_EPOCHS": 3}
FORTY_EPOCHS = {"TRAINING_BUDGET_SECONDS": 600.0, "TRAINING_MAX_EPOCHS": 40}
NEURAL_ONLY = {"SERVED_CANDIDATES": ("SASRec", "GRU4Rec")}
LIGHTGCN_ONLY = {"SERVED_CANDIDATES": ("LightGCN",)}


@pytest.fixture(scope="module")
def tiny_world(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("seed_demo", *TINY_WORLD)
        yield
        world_delete()


@pytest.fixture(scope="module")
def train(tiny_world, django_db_blocker, tmp_path_factory):
    """Train a version of `kind` with the given settings; the module's runs share one world."""
    artifacts = tmp_path_factory.mktemp("artifacts")

    def run(kind: str, **training) -> ModelVersion:
        with django_db_blocker.unblock(), override_settings(ARTIFACTS_DIR=artifacts, **training):
            return model_version_train(kind=kind)

    with override_settings(ARTIFACTS_DIR=artifacts):
        yield run


def fresh(version: ModelVersion) -> ModelVersion:
    return ModelVersion.objects.get(pk=version.pk)


def statuses(*versions: ModelVersion) -> tuple[str, ...]:
    return tuple(fresh(version).status for version in versions)


# ----------------------------------------------------------------------------- continuation


@pytest.fixture(scope="module")
def one_batch_continuation(train):
    return train("continuation", **ONE_BATCH, **NEURAL_ONLY)


@pytest.fixture(scope="module")
def three_epoch_continuation(one_batch_continuation, train, django_db_blocker):
    """Staff activated the one-batch version by hand; then three epochs are trained."""
    with django_db_blocker.unblock():
        model_version_activate(version=one_batch_continuation)
    return train("continuation", **THREE_EPOCHS, **NEURAL_ONLY)


@pytest.fixture(scope="module")
def one_epoch_continuation(three_epoch_continuation, train):
    return train("continuation", **ONE_EPOCH, **NEURAL_ONLY)


@pytest.fixture(scope="module")
def most_popular_continuation(train):
    """A run allowed to serve MostPop alone: its served model cannot beat MostPop. (A weak
    neural model is no sure loser: one batch of GRU4Rec already scores about MostPop's
    Recall@20 on this world, on either side of it from run to run.)"""
    return train("continuation", **ONE_BATCH, SERVED_CANDIDATES=("MostPop",))


@pytest.mark.django_db
def test_a_version_not_better_than_most_popular_stays_ready_with_the_reason(
    most_popular_continuation,
):
    version = most_popular_continuation
    decision = version.metrics["activation"]

    assert version.metrics["served"] == "MostPop"
    assert version.status == ModelVersion.Status.READY
    assert decision["activated"] is False
    assert decision["new_metric"] == decision["most_popular_metric"]
    assert "MostPop does not beat MostPop" in decision["reason"]
    assert decision["metric"] == "Recall@20"
    assert not ModelVersion.objects.filter(kind="continuation", status="active").exists()


@pytest.mark.django_db
def test_a_version_better_than_the_active_one_replaces_it(
    one_batch_continuation, three_epoch_continuation
):
    decision = fresh(three_epoch_continuation).metrics["activation"]

    assert statuses(three_epoch_continuation, one_batch_continuation) == ("active", "retired")
    assert decision["activated"] is True
    assert decision["active_version"] == one_batch_continuation.pk
    assert decision["new_metric"] >= decision["active_metric_on_new_split"]
    assert "at least as good as the active version" in decision["reason"]
    # Same data, same split: the active model, loaded from its artifacts and asked as serving
    # asks it, scores what its own run measured on these validation cases.
    own_valid = one_batch_continuation.metrics["activation"]["new_metric"]
    assert decision["active_metric_on_new_split"] == pytest.approx(own_valid, abs=0.01)
    comparison = decision["comparison"]
    # Compared on the validation cases the new pipeline was not fitted on (the selection half).
    assert comparison["evaluated"] == three_epoch_continuation.metrics["selection"]["cases"]
    assert comparison["evaluated"] < three_epoch_continuation.params["split"]["valid_cases"]
    assert comparison["active_scored_by_popularity"] == 0
    assert comparison["leak"]["active_own_validation_targets"] == comparison["evaluated"]
    assert "favours it" in comparison["leak"]["note"]


@pytest.mark.django_db
def test_a_version_worse_than_the_active_one_stays_ready_and_staff_can_still_activate_it(
    three_epoch_continuation, one_epoch_continuation
):
    decision = fresh(one_epoch_continuation).metrics["activation"]

    assert statuses(one_epoch_continuation, three_epoch_continuation) == ("ready", "active")
    assert decision["activated"] is False
    assert decision["new_metric"] > decision["most_popular_metric"]
    assert decision["new_metric"] < decision["active_metric_on_new_split"]
    assert decision["reason"].startswith(
        f"worse than the active version #{three_epoch_continuation.pk}"
    )

    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    page = staff.get("/dashboard/models/").content.decode()
    assert "kept ready" in page and "worse than the active version" in page
    staff.post(f"/dashboard/models/{one_epoch_continuation.pk}/activate/")
    assert statuses(one_epoch_continuation, three_epoch_continuation) == ("active", "retired")


@pytest.fixture(scope="module")
def default_continuation(one_epoch_continuation, train, django_db_blocker):
    """Every model may serve (the default), at three epochs; returns the neural-only version
    that was active before it, and it."""
    with django_db_blocker.unblock():
        active = ModelVersion.objects.get(kind="continuation", status=ModelVersion.Status.ACTIVE)
    return active, train("continuation", **THREE_EPOCHS)


@pytest.mark.django_db
def test_by_default_the_served_pipeline_is_the_best_on_validation_and_replaces_a_worse_one(
    default_continuation,
):
    active, version = default_continuation
    version = fresh(version)
    selection = version.metrics["selection"]
    scores = selection["scores"]

    assert set(scores) >= {"MostPop", "Markov", "SKNN", "SASRec", "GRU4Rec"}
    assert version.metrics["served"] == selection["served"] == max(scores, key=scores.get)
    for baseline in ("MostPop", "Markov", "SKNN"):
        assert scores[selection["served"]] >= scores[baseline]
    # The neural-only version it is compared with serves SASRec or GRU4Rec at a few epochs;
    # this run serves what beats them on the same cases, so it replaces it.
    assert active.metrics["served"] in ("SASRec", "GRU4Rec")
    decision = version.metrics["activation"]
    assert decision["active_version"] == active.pk
    assert decision["activated"] is True and version.status == ModelVersion.Status.ACTIVE
    assert decision["new_metric"] >= decision["active_metric_on_new_split"]

    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    page = staff.get("/dashboard/models/").content.decode()
    assert f"Served pipeline: {selection['served']}." in page
    assert selection["reason"] in page


# ----------------------------------------------------------------------------- recommender


@pytest.fixture(scope="module")
def recommender_runs(train):
    """Forty LightGCN epochs, then one: the same data, so the same split."""
    strong = train("recommender", **FORTY_EPOCHS, **LIGHTGCN_ONLY)
    weak = train("recommender", **ONE_EPOCH, **LIGHTGCN_ONLY)
    return strong, weak


@pytest.mark.django_db
def test_a_recommender_worse_on_the_identical_split_stays_ready(recommender_runs):
    strong, weak = map(fresh, recommender_runs)

    assert strong.metrics["activation"]["activated"] is True
    assert "no active version" in strong.metrics["activation"]["reason"]
    assert statuses(strong, weak) == ("active", "ready")
    decision = weak.metrics["activation"]
    assert decision["metric"] == "nDCG@20"
    assert decision["held_out"] == "identical split"
    assert decision["active_version"] == strong.pk
    served = strong.metrics["served"]
    assert served == "LightGCN"
    assert (
        decision["active_metric_on_new_split"]
        == strong.metrics["models"][served]["selection"]["nDCG@20"]
    )
    assert decision["new_metric"] < decision["active_metric_on_new_split"]
    assert decision["activated"] is False and "worse than the active version" in decision["reason"]


# ----------------------------------------------------------------------------- held-out data


def held_out_world(seed: int = 0, n_users: int = 80, n_items: int = 40):
    """Users who like the items of their own half of the catalog; ids are 1000 + index."""
    rng = np.random.default_rng(seed)
    likes = np.zeros((n_users, n_items), dtype=np.float32)
    for user in range(n_users):
        own = np.arange(n_items // 2) + (user % 2) * (n_items // 2)
        likes[user, rng.choice(own, 8, replace=False)] = 1.0
    train, valid = likes.copy(), np.zeros_like(likes)
    for user in range(n_users):
        held = rng.choice(np.flatnonzero(likes[user]), 2, replace=False)
        train[user, held], valid[user, held] = 0.0, 1.0
    halves = np.repeat(np.eye(2, dtype=np.float32), n_items // 2, axis=0)  # item -> its half
    return sp.csr_matrix(train), sp.csr_matrix(valid), halves


def factor(user_vectors, item_vectors) -> FactorScorer:
    return FactorScorer(item_vectors=item_vectors, user_vectors=user_vectors)


def a_version(*, kind=ModelVersion.Kind.RECOMMENDER, **fields) -> ModelVersion:
    metrics = {"served": "M", "models": {"M": {"valid": {"nDCG@20": 0.5}},
                                         "MostPop": {"valid": {"nDCG@20": 0.1}}}}  # fmt: skip
    return ModelVersion.objects.create(kind=kind, algorithm="m", metrics=metrics, **fields)


def an_active_recommender(directory: Path, *, item_vectors, user_vectors, trained_until):
    save_serving_vectors(
        ServingVectors(
            track_ids=np.arange(len(item_vectors)) + 1000,
            item_vectors=item_vectors,
            user_ids=np.arange(len(user_vectors)) + 1000,
            user_vectors=user_vectors,
        ),
        directory,
    )
    version = a_version(
        artifact_path=str(directory), params={"trained_until": trained_until.isoformat()}
    )
    version.activate()
    return version


@pytest.mark.django_db
def test_pairs_the_active_recommender_never_saw_are_compared_without_leak(tmp_path):
    train, valid, halves = held_out_world()
    n_users = train.shape[0]
    data_end = datetime(2025, 1, 1, tzinfo=UTC)
    # The active version knows the halves but recommends the wrong one to every user.
    wrong = halves[:, ::-1]
    active = an_active_recommender(
        tmp_path, item_vectors=halves, user_vectors=train @ wrong / 8, trained_until=data_end
    )
    first_seen = np.full(valid.nnz, data_end.timestamp() + 60.0)  # all after its data end
    first_seen[: valid.nnz // 4] = data_end.timestamp() - 60.0  # a quarter it saw
    held_out = RecommenderHeldOut(
        user_ids=np.arange(n_users) + 1000, item_ids=np.arange(40) + 1000, train=train,
        valid=valid, valid_first_seen=first_seen,
        valid_scorer=factor(np.asarray(train @ halves) / 8, halves),
    )  # fmt: skip

    decision = activation_decide(version=a_version(), held_out=held_out, active=active)

    assert decision["held_out"] == "unseen pairs"
    assert decision["activated"] is True
    assert decision["new_metric"] > decision["active_metric_on_new_split"]
    leak = decision["comparison"]["leak"]
    assert leak["pairs_after_active_data_end"] == valid.nnz - valid.nnz // 4
    assert decision["comparison"]["evaluated"] == leak["users_with_such_pairs"]
    assert decision["comparison"]["active_scored_with_own_vector"] == leak["users_with_such_pairs"]


@pytest.mark.django_db
def test_with_too_few_unseen_pairs_the_whole_split_is_compared_and_the_leak_is_counted(tmp_path):
    train, valid, halves = held_out_world()
    data_end = datetime(2025, 1, 1, tzinfo=UTC)
    active = an_active_recommender(
        tmp_path, item_vectors=halves, user_vectors=np.asarray(train @ halves) / 8,
        trained_until=data_end,
    )  # fmt: skip
    first_seen = np.full(valid.nnz, data_end.timestamp() - 60.0)
    first_seen[: MIN_UNSEEN_USERS - 1] = data_end.timestamp() + 60.0  # at most 49 users
    held_out = RecommenderHeldOut(
        user_ids=np.arange(train.shape[0]) + 1000, item_ids=np.arange(40) + 1000, train=train,
        valid=valid, valid_first_seen=first_seen, valid_scorer=factor(np.zeros((80, 2)), halves),
    )  # fmt: skip

    decision = activation_decide(version=a_version(), held_out=held_out, active=active)

    assert decision["held_out"] == "full split"
    assert decision["new_metric"] == 0.5  # the new version's own validation metric
    leak = decision["comparison"]["leak"]
    assert leak["pairs_in_active_fit"] == valid.nnz - (MIN_UNSEEN_USERS - 1)
    assert "favours it" in leak["note"]
    assert decision["activated"] is (decision["active_metric_on_new_split"] <= 0.5)


@pytest.mark.django_db
def test_users_and_tracks_the_active_version_does_not_know_are_scored_as_serving_would(tmp_path):
    train, valid, halves = held_out_world()
    data_end = datetime(2025, 1, 1, tzinfo=UTC)
    # It knows only the first 60 users and the first 30 tracks.
    active = an_active_recommender(
        tmp_path, item_vectors=halves[:30], user_vectors=np.asarray(train @ halves)[:60] / 8,
        trained_until=data_end,
    )  # fmt: skip
    held_out = RecommenderHeldOut(
        user_ids=np.arange(80) + 1000, item_ids=np.arange(40) + 1000, train=train, valid=valid,
        valid_first_seen=np.full(valid.nnz, data_end.timestamp() + 1.0),
        valid_scorer=factor(np.asarray(train @ halves) / 8, halves),
    )  # fmt: skip

    comparison = activation_decide(version=a_version(), held_out=held_out, active=active)[
        "comparison"
    ]

    assert comparison["active_scored_with_own_vector"] == 60
    assert comparison["active_scored_by_fold_in"] == 20  # their histories hold known tracks
    assert comparison["active_scored_by_popularity"] == 0
    assert comparison["held_out_items_unknown_to_active"] == valid[:, 30:].nnz


@pytest.mark.django_db
def test_an_active_version_without_artifacts_cannot_be_compared_and_the_reason_says_why(tmp_path):
    train, valid, halves = held_out_world()
    active = a_version(artifact_path=str(tmp_path / "gone"))
    active.activate()
    held_out = RecommenderHeldOut(
        user_ids=np.arange(80) + 1000, item_ids=np.arange(40) + 1000, train=train, valid=valid,
        valid_first_seen=np.zeros(valid.nnz), valid_scorer=factor(np.zeros((80, 2)), halves),
    )  # fmt: skip

    decision = activation_decide(version=a_version(), held_out=held_out, active=active)

    assert decision["activated"] is True  # it beats MostPop; the active one cannot be served
    assert f"not compared with the active version #{active.pk}" in decision["reason"]
    assert "has no vectors file" in decision["reason"]
    assert decision["active_metric_on_new_split"] is None


def test_each_held_out_pair_is_dated_by_its_first_positive_event():
    interactions = Interactions(
        user_ids=np.array([1, 1, 1, 2, 2, 2]),
        item_ids=np.array([10, 10, 11, 10, 11, 11]),
        weights=np.array([1.0, 3.0, -1.0, 1.0, 1.0, 1.0]),  # (1, 11) is a skip only
        timestamps=np.array([50, 20, 5, 70, 90, 60]),
    )
    pairs = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 1], [0, 0, 1])), shape=(2, 2))

    assert first_positive_times(interactions, pairs).tolist() == [20.0, 70.0, 60.0]


@pytest.mark.django_db
def test_the_train_command_prints_why_a_version_was_not_activated(train):
    """`manage.py train` says what the activation rule decided, not only the metrics."""
    output = io.StringIO()
    with override_settings(**ONE_BATCH, **NEURAL_ONLY):
        call_command("train", "--kind", "continuation", stdout=output)
    version = ModelVersion.objects.filter(kind="continuation").latest("pk")

    assert version.status == ModelVersion.Status.READY
    assert f"activation: {version.metrics['activation']['reason']}" in output.getvalue()


# ----------------------------------------------------------------------------- drop shares


@pytest.mark.django_db
def test_the_shares_below_which_neural_models_are_dropped_are_settings(train):
    """A share no model reaches drops LightGCN, SASRec and GRU4Rec, with the reason in the
    version's report; 0 drops none of them, however weak. (Serving MostPop alone keeps the runs
    from replacing the module's active versions.)"""
    most_popular = {"SERVED_CANDIDATES": ("MostPop",), **ONE_EPOCH}
    recommender = {
        share: train("recommender", TRAINING_LIGHTGCN_MIN_BASELINE_SHARE=share, **most_popular)
        for share in (100.0, 0.0)
    }
    continuation = {
        share: train("continuation", TRAINING_SEQUENCE_MIN_BASELINE_SHARE=share, **most_popular)
        for share in (100.0, 0.0)
    }

    dropped = recommender[100.0].params["models"]["LightGCN"]["dropped"]
    assert "below 100 x" in dropped and "not refitted" in dropped
    assert recommender[100.0].metrics["models"]["LightGCN"]["test"] == {}
    assert "dropped" not in recommender[0.0].params["models"]["LightGCN"]
    assert recommender[0.0].metrics["models"]["LightGCN"]["test"]
    for name in ("SASRec", "GRU4Rec"):
        assert "below 100 x SKNN's" in continuation[100.0].params["models"][name]["dropped"]
        assert continuation[100.0].metrics["models"][name]["test"] == {}
        assert "dropped" not in continuation[0.0].params["models"][name]
        assert continuation[0.0].metrics["models"][name]["test"]
