"""Listener control over what is served: do-not-recommend marks honoured in every ranking, a
dislike pushing down the disliked track's neighbours, and artist diversity in every slate."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from catalog.models import TrackTag
from catalog.tests.factories import ArtistFactory, TagFactory, TrackFactory, UserFactory
from feedback.models import DoNotRecommend
from feedback.services import do_not_recommend_mark, do_not_recommend_unmark
from mltasks.ml.artifacts import ServingVectors
from playlists.tests.factories import PlaylistFactory
from recommendations.tests.planted import planted_continuation, planted_recommender
from recommendations.tests.test_rec_api import rec_url

pytestmark = pytest.mark.django_db


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["track_id"] for item in response.json()["items"]]


def _mark(django_capture_on_commit_callbacks, **target):
    with django_capture_on_commit_callbacks(execute=True):
        return do_not_recommend_mark(**target)


# ----------------------------------------------------------------------------- do not recommend


def test_a_marked_artist_is_left_out_of_the_ranking_not_cut_from_a_short_list(
    api_client, planted_world, django_capture_on_commit_callbacks
):
    fan_of_a = planted_world["users"][0]
    tracks = planted_world["tracks"]
    api_client.force_authenticate(fan_of_a)
    url = rec_url(fan_of_a, n=10, max_per_artist=0)
    assert _ids(api_client.get(url)) == [t.pk for t in tracks[:10]]  # all by the first artist

    _mark(django_capture_on_commit_callbacks, user=fan_of_a, artist_id=tracks[0].artist_id)

    after = _ids(api_client.get(url))  # the cached list was dropped with the change
    assert len(after) == 10  # a full page: the artist's tracks never took a place in it
    assert after == [t.pk for t in tracks[10:20]]  # the next genre-A artist
    stored_artist = DoNotRecommend.objects.get(user=fan_of_a).artist_id
    assert stored_artist == tracks[0].artist_id


def test_a_marked_track_is_gone_and_comes_back_once_unmarked(
    api_client, planted_world, django_capture_on_commit_callbacks
):
    fan_of_a = planted_world["users"][0]
    first = planted_world["tracks"][0]
    api_client.force_authenticate(fan_of_a)
    url = rec_url(fan_of_a, n=5)
    assert first.pk in _ids(api_client.get(url))

    _mark(django_capture_on_commit_callbacks, user=fan_of_a, track_id=first.pk)
    assert first.pk not in _ids(api_client.get(url))

    with django_capture_on_commit_callbacks(execute=True):
        assert do_not_recommend_unmark(user=fan_of_a, track_id=first.pk)
    assert first.pk in _ids(api_client.get(url))


def test_marks_apply_to_their_own_listener_only(
    api_client, planted_world, django_capture_on_commit_callbacks
):
    fan_of_a, _, neighbour = planted_world["users"]
    first = planted_world["tracks"][0]
    _mark(django_capture_on_commit_callbacks, user=fan_of_a, track_id=first.pk)
    api_client.force_authenticate(neighbour)
    assert first.pk in _ids(api_client.get(rec_url(neighbour, n=5)))


def test_a_mark_lapses_at_its_until_even_in_a_cached_list(
    api_client, planted_world, django_capture_on_commit_callbacks
):
    fan_of_a = planted_world["users"][0]
    first = planted_world["tracks"][0]
    api_client.force_authenticate(fan_of_a)
    until = timezone.now() + timedelta(seconds=1)
    _mark(django_capture_on_commit_callbacks, user=fan_of_a, track_id=first.pk, until=until)
    url = rec_url(fan_of_a, n=5)
    assert first.pk not in _ids(api_client.get(url))  # cached now, until `until`

    time.sleep(max(0.0, (until - timezone.now()).total_seconds()) + 0.2)

    assert first.pk in _ids(api_client.get(url))


def test_a_mark_whose_until_has_passed_no_longer_applies(api_client, planted_world):
    fan_of_a = planted_world["users"][0]
    first = planted_world["tracks"][0]
    DoNotRecommend.objects.create(
        user=fan_of_a, track=first, until=timezone.now() - timedelta(days=1)
    )
    api_client.force_authenticate(fan_of_a)
    assert first.pk in _ids(api_client.get(rec_url(fan_of_a, n=5)))


def test_a_cold_start_list_honours_marks_too(api_client, django_capture_on_commit_callbacks):
    user = UserFactory()
    liked_artist, blocked_artist = ArtistFactory(), ArtistFactory()
    jazz = TagFactory(name="jazz")
    for index in range(6):
        track = TrackFactory(artist=blocked_artist if index < 3 else liked_artist)
        TrackTag.objects.create(track=track, tag=jazz, weight=1.0)
    user.favourite_tags.add(jazz)
    _mark(django_capture_on_commit_callbacks, user=user, artist_id=blocked_artist.pk)
    api_client.force_authenticate(user)
    body = api_client.get(rec_url(user, n=10)).json()
    assert body["model_version"] is None
    assert len(body["items"]) == 3
    assert {item["artist"] for item in body["items"]} == {liked_artist.name}


@pytest.mark.parametrize("use_ann", ["false", "true"])
def test_similar_tracks_leave_out_the_listeners_marks(
    api_client, planted_world, django_capture_on_commit_callbacks, use_ann
):
    fan_of_a, fan_of_b, _ = planted_world["users"]
    tracks = planted_world["tracks"]
    url = f"/api/tracks/{tracks[0].pk}/similar?n=5&use_ann={use_ann}"
    api_client.force_authenticate(fan_of_a)
    before = _ids(api_client.get(url))
    _mark(django_capture_on_commit_callbacks, user=fan_of_a, track_id=before[0])

    after = _ids(api_client.get(url))

    assert before[0] not in after and len(after) == 5
    api_client.force_authenticate(fan_of_b)  # someone else's cached page is not theirs
    assert _ids(api_client.get(url)) == before


def test_continuation_leaves_out_a_marked_artists_tracks(
    api_client, db, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.ARTIFACTS_DIR = tmp_path
    artists = ArtistFactory.create_batch(3)
    tracks = [TrackFactory(artist=artists[i % 3]) for i in range(30)]
    planted_continuation(directory=tmp_path, track_ids=[t.pk for t in tracks])
    user = UserFactory()
    api_client.force_authenticate(user)
    body = {"tracks": [tracks[0].pk, tracks[1].pk], "k": 10, "max_per_artist": None}
    before = api_client.post("/api/continue", body, format="json").json()["items"]
    assert artists[2].name in {item["artist"] for item in before}

    _mark(django_capture_on_commit_callbacks, user=user, artist_id=artists[2].pk)

    after = api_client.post("/api/continue", body, format="json").json()["items"]
    assert len(after) == 10
    assert artists[2].name not in {item["artist"] for item in after}
    playlist = PlaylistFactory(owner=user)
    from playlists.services import playlist_add_tracks

    playlist_add_tracks(playlist=playlist, track_ids=[tracks[0].pk])
    continued = api_client.post(f"/api/playlists/{playlist.pk}/continue", {"k": 10},
                                format="json").json()["items"]  # fmt: skip
    assert continued and artists[2].name not in {item["artist"] for item in continued}


def test_the_popularity_fallback_of_continuation_honours_marks(
    api_client, db, django_capture_on_commit_callbacks
):
    user = UserFactory()
    popular = TrackFactory(popularity=90)
    runner_up = TrackFactory(popularity=80)
    seed = TrackFactory(popularity=1)
    _mark(django_capture_on_commit_callbacks, user=user, track_id=popular.pk)
    api_client.force_authenticate(user)
    body = {"tracks": [seed.pk], "k": 1}
    items = api_client.post("/api/continue", body, format="json").json()["items"]
    assert [item["track_id"] for item in items] == [runner_up.pk]


# ----------------------------------------------------------------------------- dislikes


@pytest.fixture
def neighbourhood(db, settings, tmp_path):
    """Six tracks: a disliked one, its close neighbour (the user's best match), and four
    others unlike the disliked one."""
    settings.ARTIFACTS_DIR = tmp_path
    tracks = [TrackFactory(artist=ArtistFactory()) for _ in range(6)]
    user = UserFactory()
    item_vectors = np.array(
        [
            [1.0, 0.0, 0.0],  # disliked
            [0.9, 0.15, 0.0],  # its neighbour: the user's best match
            [0.0, 0.9, 0.3],
            [0.0, 0.8, 0.6],
            [0.0, 0.7, 0.7],
            [0.0, 0.0, 1.0],
        ],
        dtype=np.float32,
    )
    vectors = ServingVectors(
        track_ids=np.array([t.pk for t in tracks]),
        item_vectors=item_vectors,
        user_ids=np.array([user.pk]),
        user_vectors=np.array([[1.0, 1.0, 0.2]], dtype=np.float32),
    )
    planted_recommender(directory=tmp_path, vectors=vectors)
    return user, tracks


def test_a_dislike_pushes_the_disliked_tracks_neighbour_down(
    api_client, neighbourhood, django_capture_on_commit_callbacks
):
    user, tracks = neighbourhood
    api_client.force_authenticate(user)
    url = rec_url(user, n=6, max_per_artist=0)
    before = _ids(api_client.get(url))
    assert before[0] == tracks[1].pk  # the neighbour leads (the disliked one is unseen yet)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/feedback", {"track_id": tracks[0].pk, "event": "dislike"}, format="json"
        )
    assert response.status_code == 201

    after = _ids(api_client.get(url))
    assert tracks[0].pk not in after
    # moved down below the tracks unlike the disliked one, which keep their order
    assert after == [tracks[2].pk, tracks[3].pk, tracks[4].pk, tracks[1].pk, tracks[5].pk]


# ----------------------------------------------------------------------------- diversity


def test_recommendations_hold_at_most_two_tracks_per_artist_by_default(api_client, planted_world):
    fan_of_a = planted_world["users"][0]
    api_client.force_authenticate(fan_of_a)
    items = api_client.get(rec_url(fan_of_a, n=8)).json()["items"]
    artists = [item["artist"] for item in items]
    assert len(items) == 8 and all(artists.count(a) == 2 for a in set(artists))
    assert len(set(artists)) == 4
    one_each = api_client.get(rec_url(fan_of_a, n=4, max_per_artist=1)).json()["items"]
    assert len({item["artist"] for item in one_each}) == 4
    # the capped tracks are not lost: they come after the other artists'
    everything = _ids(api_client.get(rec_url(fan_of_a, n=40)))
    uncapped = _ids(api_client.get(rec_url(fan_of_a, n=40, max_per_artist=0)))
    assert sorted(everything) == sorted(uncapped) and everything != uncapped


def test_diversity_reranks_by_tags(api_client, planted_world):
    fan_of_a = planted_world["users"][0]
    tracks = planted_world["tracks"]
    rock, folk = TagFactory(name="rock"), TagFactory(name="folk")
    for index, track in enumerate(tracks[:20]):
        TrackTag.objects.create(track=track, tag=rock if index < 15 else folk, weight=1.0)
    api_client.force_authenticate(fan_of_a)
    plain = _ids(api_client.get(rec_url(fan_of_a, n=3, max_per_artist=0)))
    diverse = _ids(api_client.get(rec_url(fan_of_a, n=3, max_per_artist=0, diversity="0.9")))
    assert plain == [t.pk for t in tracks[:3]]  # all rock
    assert diverse[0] == tracks[0].pk
    folk_ids = {t.pk for t in tracks[15:20]}
    assert diverse[1] in folk_ids  # the next pick is the other tag


@pytest.mark.parametrize(
    ("query", "field"),
    [("max_per_artist=-1", "max_per_artist"), ("max_per_artist=201", "max_per_artist"),
     ("max_per_artist=", "max_per_artist"), ("diversity=1.5", "diversity"),
     ("diversity=-0.1", "diversity"), ("diversity=nan", "diversity"),
     ("diversity=inf", "diversity"), ("diversity=1e0", "diversity"), ("diversity=", "diversity"),
     ("diversity=true", "diversity")],
)  # fmt: skip
def test_diversity_options_out_of_range_are_a_400(api_client, planted_world, query, field):
    user = planted_world["users"][0]
    api_client.force_authenticate(user)
    response = api_client.get(f"{rec_url(user)}?{query}")
    assert response.status_code == 400
    assert field in response.json()
