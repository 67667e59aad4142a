"""Serving inside an interleaved A/B test: a listener in the test's share gets one list drafted
from the active version's ranking and the challenger's, with the team of every track; the others
are served as before; a stopped test stops at once. Planted versions (known vectors): the
control recommends genre A to the first listener, the challenger genre B."""

from __future__ import annotations

import numpy as np
import pytest

from feedback.models import Interaction
from feedback.services import do_not_recommend_mark, interaction_record
from mltasks.interleaving_services import interleaving_test_start, interleaving_test_stop
from mltasks.ml.artifacts import ServingVectors
from mltasks.ml.eval.interleaving import in_share
from recommendations.selectors import Slate
from recommendations.services import recommendation_page_for_user, recommendations_for_user
from recommendations.serving import interleaving_tests
from recommendations.tests.planted import planted_recommender

pytestmark = pytest.mark.django_db

NO_CAP = Slate(max_per_artist=None)


@pytest.fixture(autouse=True)
def _no_remembered_test():
    interleaving_tests.reset()
    yield
    interleaving_tests.reset()


@pytest.fixture
def challenger(planted_world, tmp_path):
    """A ready version that sends the first listener to genre B, least popular first."""
    tracks, users = planted_world["tracks"], planted_world["users"]
    item_vectors = np.zeros((40, 16), dtype=np.float32)
    item_vectors[:20, 0] = np.linspace(1, 2, 20)  # genre A, order reversed
    item_vectors[20:, 1] = np.linspace(1, 2, 20)  # genre B, order reversed
    user_vectors = np.zeros((3, 16), dtype=np.float32)
    user_vectors[0, 1] = 1.0  # the control's fan of A is sent to B
    user_vectors[1, 0] = 1.0
    user_vectors[2, 1] = 1.0
    vectors = ServingVectors(
        track_ids=np.array([t.pk for t in tracks]),
        item_vectors=item_vectors,
        user_ids=np.array([u.pk for u in users]),
        user_vectors=user_vectors,
    )
    return planted_recommender(directory=tmp_path / "challenger", vectors=vectors, activate=False)


def genre(track_id: int, tracks) -> str:
    position = [t.pk for t in tracks].index(track_id)
    return "A" if position < 20 else "B"


def ids(result) -> list[int]:
    return [item.track.pk for item in result.items]


def test_a_listener_in_the_share_gets_one_list_drafted_from_both_versions(
    planted_world, challenger
):
    fan_of_a, tracks = planted_world["users"][0], planted_world["tracks"]
    test = interleaving_test_start(challenger=challenger, share=1.0)

    result = recommendations_for_user(user=fan_of_a, n=10, slate=NO_CAP)

    assert result.interleaving_test == test.pk
    assert result.model_version == planted_world["version"].pk  # the control serves it
    assert result.pipeline.startswith("interleaved:")
    assert set(result.teams) == set(ids(result))
    assert abs(list(result.teams.values()).count("A") - 5) <= 1
    # Each team's tracks are the ones its version ranks first, in its order: the control's
    # most popular genre-A tracks, the challenger's least popular genre-B ones.
    team_a = [t for t in ids(result) if result.teams[t] == "A"]
    team_b = [t for t in ids(result) if result.teams[t] == "B"]
    assert team_a == [t.pk for t in tracks[: len(team_a)]]
    assert team_b == [t.pk for t in tracks[39 : 39 - len(team_b) : -1]]
    assert {genre(t, tracks) for t in team_a} == {"A"} and {genre(t, tracks) for t in team_b} == {
        "B"
    }


def test_the_drafted_list_is_cached_with_its_teams_and_pages_carry_them(planted_world, challenger):
    fan_of_a = planted_world["users"][0]
    test = interleaving_test_start(challenger=challenger, share=1.0)

    first = recommendation_page_for_user(user=fan_of_a, n=8)
    again = recommendation_page_for_user(user=fan_of_a, n=8)
    listed = recommendations_for_user(user=fan_of_a, n=8)

    assert (first.cached, again.cached) == (False, True)
    assert again.items == first.items and again.teams == first.teams
    assert first.interleaving_test == again.interleaving_test == test.pk
    assert set(first.teams) == {item["track_id"] for item in first.items}
    assert set(first.teams.values()) == {"A", "B"}
    assert ids(listed) == [item["track_id"] for item in first.items]  # one ranking for both


def test_listeners_outside_the_share_and_everyone_without_a_test_are_served_as_before(
    planted_world, challenger
):
    fan_of_a = planted_world["users"][0]
    before = recommendations_for_user(user=fan_of_a, n=10)
    test = interleaving_test_start(challenger=challenger, share=1e-9)
    assert not in_share(test_id=test.pk, user_id=fan_of_a.pk, share=test.share)

    during = recommendations_for_user(user=fan_of_a, n=10)

    assert ids(during) == ids(before)
    assert (during.interleaving_test, during.teams) == (None, {})
    assert during.pipeline == before.pipeline == "planted"


def test_a_stopped_test_stops_serving_drafted_lists_at_once(planted_world, challenger):
    fan_of_a = planted_world["users"][0]
    plain = recommendations_for_user(user=fan_of_a, n=10, slate=NO_CAP)
    test = interleaving_test_start(challenger=challenger, share=1.0)
    assert recommendations_for_user(user=fan_of_a, n=10, slate=NO_CAP).interleaving_test == test.pk

    interleaving_test_stop(test=test)
    after = recommendations_for_user(user=fan_of_a, n=10, slate=NO_CAP)

    assert (after.interleaving_test, after.teams) == (None, {})
    assert ids(after) == ids(plain)


def test_exclusions_and_the_artist_cap_apply_to_the_drafted_list(
    planted_world, challenger, django_capture_on_commit_callbacks
):
    fan_of_a, tracks = planted_world["users"][0], planted_world["tracks"]
    interleaving_test_start(challenger=challenger, share=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        do_not_recommend_mark(user=fan_of_a, artist_id=tracks[0].artist_id)
        interaction_record(user=fan_of_a, track=tracks[39], kind=Interaction.Kind.PLAY)

    result = recommendations_for_user(user=fan_of_a, n=12)

    shown = ids(result)
    assert result.interleaving_test is not None and set(result.teams.values()) == {"A", "B"}
    assert not {t.pk for t in tracks[:10]} & set(shown)  # the marked artist's tracks
    assert tracks[39].pk not in shown  # a track the listener played
    # Three artists remain: the first six tracks hold two of each (the others follow them).
    artists = [next(t.artist_id for t in tracks if t.pk == pk) for pk in shown[:6]]
    assert sorted(artists.count(artist) for artist in set(artists)) == [2, 2, 2]


def test_a_like_drops_the_cached_drafted_list(
    planted_world, challenger, django_capture_on_commit_callbacks
):
    fan_of_a = planted_world["users"][0]
    interleaving_test_start(challenger=challenger, share=1.0)
    first = recommendations_for_user(user=fan_of_a, n=10, slate=NO_CAP)
    liked = ids(first)[0]

    with django_capture_on_commit_callbacks(execute=True):
        interaction_record(user=fan_of_a, track=first.items[0].track, kind=Interaction.Kind.LIKE)
    after = recommendations_for_user(user=fan_of_a, n=10, slate=NO_CAP)

    assert after.cached is False and liked not in ids(after)
    assert after.interleaving_test == first.interleaving_test
