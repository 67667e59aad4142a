"""Interleaved A/B tests (mltasks.interleaving_services and _selectors): starting one between
the active recommender and a trained challenger, with its offline replay; crediting shown
lists from impressions and feedback; stopping; promoting.

Two real versions are trained on a tiny demo world, LightGCN only (as test_activation.py
trains them): forty epochs (activated) and one epoch (kept ready). The credit tests write
impressions and feedback by hand, as the impressions log and the feedback API store them.
"""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from catalog.models import Track
from catalog.tests.factories import UserFactory
from feedback.models import Impression, Interaction
from mltasks.interleaving_selectors import (
    interleaving_challengers,
    interleaving_results,
    interleaving_team_counts,
    interleaving_test_running,
)
from mltasks.interleaving_services import (
    InterleavingTestError,
    interleaving_test_promote,
    interleaving_test_start,
    interleaving_test_stop,
)
from mltasks.models import InterleavingTest, ModelVersion, TrackVector
from mltasks.services import model_version_train
from mltasks.tests.conftest import world_delete

TINY_WORLD = ["--users", "60", "--artists", "16", "--tracks", "300", "--events", "8000",
              "--playlists", "40", "--seed", "3"]  # fmt: skip
LIGHTGCN_ONLY = {"SERVED_CANDIDATES": ("LightGCN",)}
FORTY_EPOCHS = {"TRAINING_BUDGET_SECONDS": 600.0, "TRAINING_MAX_EPOCHS": 40}
ONE_EPOCH = {"TRAINING_BUDGET_SECONDS": 600.0, "TRAINING_MAX_EPOCHS": 1}


@pytest.fixture(scope="module")
def versions(django_db_setup, django_db_blocker, tmp_path_factory):
    """(the strong active version, the weak ready one), trained on the same tiny world."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    with django_db_blocker.unblock(), override_settings(ARTIFACTS_DIR=artifacts):
        call_command("seed_demo", *TINY_WORLD)
        with override_settings(**FORTY_EPOCHS, **LIGHTGCN_ONLY):
            strong = model_version_train(kind="recommender")
        with override_settings(**ONE_EPOCH, **LIGHTGCN_ONLY):
            weak = model_version_train(kind="recommender")
    with override_settings(ARTIFACTS_DIR=artifacts):
        yield strong, weak
    with django_db_blocker.unblock():
        world_delete()


@pytest.fixture
def strong(versions):
    return ModelVersion.objects.get(pk=versions[0].pk)


@pytest.fixture
def weak(versions):
    return ModelVersion.objects.get(pk=versions[1].pk)


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


# ----------------------------------------------------------------------------- start


@pytest.mark.django_db
def test_a_test_starts_against_the_active_version_with_the_offline_replay(strong, weak, staff):
    assert (strong.status, weak.status) == ("active", "ready")

    test = interleaving_test_start(challenger=weak, share=0.25, started_by=staff)

    assert interleaving_test_running() == test
    assert (test.control, test.challenger, test.share) == (strong, weak, 0.25)
    assert test.status == "running" and test.started_by == staff
    offline = InterleavingTest.objects.get(pk=test.pk).offline
    assert offline["users"] == offline["lists"] > 0 and offline["list_length"] == 20
    assert offline["wins"] + offline["losses"] + offline["ties"] == offline["n"] <= offline["lists"]
    # Forty epochs against one: the replay of the held-out split prefers the control.
    assert offline["wins"] > offline["losses"] and offline["delta"] > 0
    assert offline["ci_low"] < offline["delta"] < offline["ci_high"]
    # Both versions were fitted on every interaction up to their data end: the record says so.
    assert offline["held_out_pairs_in_control_data"] == offline["held_out_pairs"]
    assert "favours" in offline["note"]


@pytest.mark.django_db
def test_only_one_test_runs_at_a_time(strong, weak):
    interleaving_test_start(challenger=weak, share=0.5)

    with pytest.raises(InterleavingTestError, match="already running"):
        interleaving_test_start(challenger=weak, share=0.5)
    assert InterleavingTest.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused(weak, share):
    with pytest.raises(InterleavingTestError, match=r"share of listeners must be in \(0, 1\]"):
        interleaving_test_start(challenger=weak, share=share)


@pytest.mark.django_db
def test_the_challenger_must_be_another_trained_recommender_with_artifacts(strong, weak):
    with pytest.raises(InterleavingTestError, match="is the active version"):
        interleaving_test_start(challenger=strong, share=0.5)
    failed = ModelVersion.objects.create(kind="recommender", algorithm="x", status="failed")
    with pytest.raises(InterleavingTestError, match="is failed; only trained versions"):
        interleaving_test_start(challenger=failed, share=0.5)
    bare = ModelVersion.objects.create(kind="recommender", algorithm="x", status="ready")
    with pytest.raises(InterleavingTestError, match="has no artifacts"):
        interleaving_test_start(challenger=bare, share=0.5)
    gone = ModelVersion.objects.create(
        kind="recommender", algorithm="x", status="ready", artifact_path="/nonexistent/version"
    )
    with pytest.raises(InterleavingTestError, match="cannot be replayed: .*no vectors file"):
        interleaving_test_start(challenger=gone, share=0.5)
    other_kind = ModelVersion.objects.create(kind="continuation", algorithm="x", status="ready")
    with pytest.raises(InterleavingTestError, match="only recommenders"):
        interleaving_test_start(challenger=other_kind, share=0.5)
    assert not InterleavingTest.objects.exists()
    challengers = list(interleaving_challengers())
    assert weak in challengers and gone in challengers  # (gone is refused when it is loaded)
    assert not {strong, failed, bare, other_kind} & set(challengers)


@pytest.mark.django_db
def test_without_an_active_version_there_is_nothing_to_test(strong, weak):
    ModelVersion.objects.filter(pk=strong.pk).update(status="retired")

    with pytest.raises(InterleavingTestError, match="No recommender version is active"):
        interleaving_test_start(challenger=weak, share=0.5)


# ----------------------------------------------------------------------------- credit


def shown(test, user, tracks, teams, *, surface=Impression.Surface.DISCOVER, in_test=True):
    """One list shown to `user`: its request id and its impression, as the flush writes it."""
    assert len(teams) == len(tracks)
    impression = Impression.objects.create(
        request_id=uuid.uuid4(), user=user, track_ids=[track.pk for track in tracks],
        surface=surface, model_version_id=test.control_id, pipeline="interleaved",
        interleaving_test_id=test.pk if in_test else None,
        teams=list(teams) if in_test else [], shown_at=timezone.now(),
    )  # fmt: skip
    return impression.request_id, impression


def feedback(user, track, kind, *, impression=None, request_id=None) -> Interaction:
    now = timezone.now()
    return Interaction.objects.create(
        user=user, track=track, kind=kind, occurred_at=now, hour=now.hour,
        day_of_week=now.weekday(), impression=impression, request_id=request_id,
    )  # fmt: skip


@pytest.fixture
def running_test(strong, weak):
    return InterleavingTest.objects.create(control=strong, challenger=weak, share=1.0)


@pytest.mark.django_db
def test_each_like_or_play_credits_the_version_that_contributed_the_track(running_test):
    user, other = UserFactory(), UserFactory()
    t = list(Track.objects.order_by("pk")[:8])
    like, play, skip, dislike = "like", "play", "skip", "dislike"

    # A list the control wins: a like linked to its impression, a play linked by request id.
    won, won_list = shown(running_test, user, t[:4], ["A", "B", "A", "B"])
    feedback(user, t[0], like, impression=won_list)
    feedback(user, t[2], play, request_id=won)
    feedback(user, t[1], skip, request_id=won)  # neither a skip nor a dislike is a positive
    feedback(user, t[3], dislike, request_id=won)
    # A list the challenger wins: two plays of its track against one like of the control's.
    lost, lost_list = shown(running_test, user, t[4:7], ["A", "B", "A"])
    feedback(user, t[5], play, impression=lost_list)
    feedback(user, t[5], play, impression=lost_list)
    feedback(user, t[4], like, request_id=lost)
    # A tie, by another listener.
    tied, _ = shown(running_test, other, t[:2], ["B", "A"])
    feedback(other, t[0], like, request_id=tied)
    feedback(other, t[1], like, request_id=tied)
    # A list nobody reacted to: no outcome.
    shown(running_test, user, t[6:8], ["A", "B"])
    # Feedback on a list outside the test, and with another listener's request id: no credit.
    outside, _ = shown(running_test, user, t[:2], ["A", "B"], in_test=False)
    feedback(user, t[0], like, request_id=outside)
    feedback(other, t[2], like, request_id=won)

    counts = interleaving_team_counts(test=running_test)
    summary = interleaving_results(test=running_test)

    assert counts[str(won)] == {"A": 2, "B": 0}
    assert counts[str(lost)] == {"A": 1, "B": 2}
    assert counts[str(tied)] == {"A": 1, "B": 1}
    assert len(counts) == 4
    assert (summary.lists, summary.wins, summary.losses, summary.ties) == (4, 1, 1, 1)
    assert summary.delta == 0.0 and summary.significant is False


@pytest.mark.django_db
def test_the_results_are_read_in_one_query(running_test, django_assert_num_queries):
    user = UserFactory()
    tracks = list(Track.objects.order_by("pk")[:2])
    for _ in range(5):
        request_id, _ = shown(running_test, user, tracks, ["A", "B"])
        feedback(user, tracks[1], "like", request_id=request_id)

    with django_assert_num_queries(1):
        summary = interleaving_results(test=running_test)

    assert (summary.wins, summary.losses) == (0, 5)


# ----------------------------------------------------------------------------- stop, promote


@pytest.mark.django_db
def test_a_stopped_test_no_longer_runs_and_cannot_be_stopped_twice(weak):
    test = interleaving_test_start(challenger=weak, share=0.5)

    interleaving_test_stop(test=test)

    test.refresh_from_db()
    assert test.status == "stopped" and test.stopped_at is not None
    assert interleaving_test_running() is None
    with pytest.raises(InterleavingTestError, match="is not running"):
        interleaving_test_stop(test=test)
    # A new test may start once the last one stopped.
    assert interleaving_test_start(challenger=weak, share=0.5).status == "running"


@pytest.mark.django_db
def test_promoting_the_challenger_activates_it_and_ends_the_test(strong, weak):
    test = interleaving_test_start(challenger=weak, share=0.5)

    interleaving_test_promote(test=test, version=weak)

    strong.refresh_from_db()
    weak.refresh_from_db()
    test.refresh_from_db()
    assert (weak.status, strong.status) == ("active", "retired")
    assert test.status == "promoted" and test.stopped_at is not None
    assert interleaving_test_running() is None
    # As any activation: only the serving version's vectors stay in pgvector.
    assert set(TrackVector.objects.values_list("model_version_id", flat=True)) == {weak.pk}


@pytest.mark.django_db
def test_keeping_the_control_ends_the_test_and_changes_nothing_else(strong, weak):
    test = interleaving_test_start(challenger=weak, share=0.5)

    interleaving_test_promote(test=test, version=strong)

    assert ModelVersion.objects.get(status="active") == strong
    assert InterleavingTest.objects.get(pk=test.pk).status == "promoted"


@pytest.mark.django_db
def test_promotion_without_a_version_needs_a_significant_winner(strong, weak, running_test):
    user = UserFactory()
    tracks = list(Track.objects.order_by("pk")[:2])
    request_id, _ = shown(running_test, user, tracks, ["A", "B"])
    feedback(user, tracks[1], "like", request_id=request_id)
    with pytest.raises(InterleavingTestError, match="no significant winner yet"):
        interleaving_test_promote(test=running_test)

    for _ in range(24):  # the challenger wins list after list
        request_id, _ = shown(running_test, user, tracks, ["A", "B"])
        feedback(user, tracks[1], "like", request_id=request_id)
    assert interleaving_results(test=running_test).winner == "B"
    interleaving_test_promote(test=running_test)

    assert ModelVersion.objects.get(status="active") == weak


@pytest.mark.django_db
def test_only_the_tests_own_versions_can_be_promoted(strong, running_test):
    stranger = ModelVersion.objects.create(kind="recommender", algorithm="x", status="ready")

    with pytest.raises(InterleavingTestError, match="is not part of test"):
        interleaving_test_promote(test=running_test, version=stranger)
    assert ModelVersion.objects.get(status="active") == strong
    assert InterleavingTest.objects.get(pk=running_test.pk).status == "running"
