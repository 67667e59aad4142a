"""Do-not-recommend marks: the services' rules and the /api/do-not-recommend endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.tests.factories import ArtistFactory, TrackFactory, UserFactory
from feedback.models import DoNotRecommend
from feedback.selectors import do_not_recommend_blocked, do_not_recommend_blocked_for
from feedback.services import DoNotRecommendError, do_not_recommend_mark, do_not_recommend_unmark

pytestmark = pytest.mark.django_db

URL = "/api/do-not-recommend"


# ----------------------------------------------------------------------------- services


def test_marking_an_artist_blocks_all_their_tracks_and_marking_again_replaces_until():
    user, artist = UserFactory(), ArtistFactory()
    tracks = TrackFactory.create_batch(3, artist=artist)
    other = TrackFactory()
    mark, created = do_not_recommend_mark(user=user, artist_id=artist.pk)
    assert created and mark.until is None

    blocked = do_not_recommend_blocked_for(user_id=user.pk)
    assert blocked.track_ids == {t.pk for t in tracks} and other.pk not in blocked.track_ids
    assert blocked.changes_at is None

    until = timezone.now() + timedelta(days=30)
    again, created = do_not_recommend_mark(user=user, artist_id=artist.pk, until=until)
    assert not created and again.pk == mark.pk and again.until == until
    assert DoNotRecommend.objects.count() == 1
    assert do_not_recommend_blocked_for(user_id=user.pk).changes_at == until


@pytest.mark.parametrize(
    ("target", "reason"),
    [({}, "exactly one"), ({"track_id": 1, "artist_id": 1}, "exactly one"),
     ({"track_id": 987654}, "unknown track_id 987654"),
     ({"artist_id": 987654}, "unknown artist_id 987654")],
)  # fmt: skip
def test_a_mark_needs_exactly_one_known_track_or_artist(target, reason):
    with pytest.raises(DoNotRecommendError, match=reason):
        do_not_recommend_mark(user=UserFactory(), **target)
    assert not DoNotRecommend.objects.exists()


def test_until_must_be_a_future_moment_with_a_timezone():
    user, track = UserFactory(), TrackFactory()
    with pytest.raises(DoNotRecommendError, match="not in the future"):
        do_not_recommend_mark(user=user, track_id=track.pk, until=timezone.now())
    with pytest.raises(DoNotRecommendError, match="timezone"):
        naive = (timezone.now() + timedelta(days=1)).replace(tzinfo=None)
        do_not_recommend_mark(user=user, track_id=track.pk, until=naive)
    assert not DoNotRecommend.objects.exists()


def test_the_database_refuses_a_mark_on_both_or_neither_and_a_duplicate():
    user, track = UserFactory(), TrackFactory()
    for fields in ({}, {"track": track, "artist": track.artist}):
        with pytest.raises(IntegrityError), transaction.atomic():
            DoNotRecommend.objects.create(user=user, **fields)
    DoNotRecommend.objects.create(user=user, track=track)
    with pytest.raises(IntegrityError):
        DoNotRecommend.objects.create(user=user, track=track)


def test_lapsed_marks_block_nothing_and_each_user_gets_their_own_set():
    first, second, third = UserFactory.create_batch(3)
    lapsed, kept = TrackFactory(), TrackFactory()
    DoNotRecommend.objects.create(
        user=first, track=lapsed, until=timezone.now() - timedelta(minutes=1)
    )
    do_not_recommend_mark(user=first, track_id=kept.pk)
    do_not_recommend_mark(user=second, artist_id=lapsed.artist_id)

    blocked = do_not_recommend_blocked(user_ids=[first.pk, second.pk, third.pk])

    assert blocked[first.pk].track_ids == {kept.pk}
    assert blocked[second.pk].track_ids == {lapsed.pk}
    assert blocked[third.pk].track_ids == frozenset()


def test_unmarking_tells_whether_there_was_a_mark():
    user, track = UserFactory(), TrackFactory()
    do_not_recommend_mark(user=user, track_id=track.pk)
    assert do_not_recommend_unmark(user=user, track_id=track.pk) is True
    assert do_not_recommend_unmark(user=user, track_id=track.pk) is False


# ----------------------------------------------------------------------------- API


def test_post_marks_get_lists_and_delete_removes(api_client, listener):
    track, artist = TrackFactory(), ArtistFactory()
    created = api_client.post(URL, {"track_id": track.pk}, format="json")
    assert created.status_code == 201
    assert created.json()["track_id"] == track.pk and created.json()["artist_id"] is None
    assert created.json()["in_force"] is True and created.json()["user_id"] == listener.pk
    until = (timezone.now() + timedelta(days=7)).isoformat()
    artist_mark = api_client.post(URL, {"artist_id": artist.pk, "until": until}, format="json")
    assert artist_mark.status_code == 201 and artist_mark.json()["until"] is not None
    again = api_client.post(URL, {"artist_id": artist.pk}, format="json")
    assert again.status_code == 200 and again.json()["until"] is None

    listed = api_client.get(URL).json()
    assert [(m["track_id"], m["artist_id"]) for m in listed] == [
        (None, artist.pk), (track.pk, None),
    ]  # fmt: skip

    assert api_client.delete(f"{URL}?track_id={track.pk}").status_code == 204
    assert api_client.delete(f"{URL}?track_id={track.pk}").status_code == 404
    assert [m["artist_id"] for m in api_client.get(URL).json()] == [artist.pk]


def test_a_lapsed_mark_is_listed_as_not_in_force(api_client, listener):
    DoNotRecommend.objects.create(
        user=listener, track=TrackFactory(), until=timezone.now() - timedelta(days=1)
    )
    assert [m["in_force"] for m in api_client.get(URL).json()] == [False]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "non_field_errors"), ({"track_id": 1, "artist_id": 1}, "non_field_errors"),
     ({"track_id": "1"}, "track_id"), ({"track_id": 0}, "track_id"),
     ({"track_id": 987654}, "detail"), ({"artist_id": 987654}, "detail"),
     ({"track_id": "TRACK", "until": "soon"}, "until"),
     ({"track_id": "TRACK", "until": "2020-01-01T00:00:00Z"}, "detail"),
     ({"track_id": "TRACK", "until": ""}, "until")],
)  # fmt: skip
def test_bad_marks_are_a_400_with_the_reason_and_store_nothing(api_client, listener, body, field):
    track = TrackFactory()
    body = {key: track.pk if value == "TRACK" else value for key, value in body.items()}
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not DoNotRecommend.objects.exists()


@pytest.mark.parametrize("query", ["", "?track_id=1&artist_id=1", "?track_id=x", "?track_id="])
def test_delete_needs_exactly_one_target(api_client, listener, query):
    assert api_client.delete(f"{URL}{query}").status_code == 400


def test_only_your_own_marks_unless_staff(api_client, listener):
    other = UserFactory()
    track = TrackFactory()
    do_not_recommend_mark(user=other, track_id=track.pk)

    assert api_client.get(URL).json() == []
    assert api_client.get(f"{URL}?user_id={other.pk}").status_code == 404
    response = api_client.post(URL, {"track_id": track.pk, "user_id": other.pk}, format="json")
    assert response.status_code == 404
    assert api_client.delete(f"{URL}?track_id={track.pk}&user_id={other.pk}").status_code == 404
    assert DoNotRecommend.objects.filter(user=other).count() == 1

    api_client.force_authenticate(UserFactory(is_staff=True))
    assert [m["track_id"] for m in api_client.get(f"{URL}?user_id={other.pk}").json()] == [track.pk]
    artist = ArtistFactory()
    response = api_client.post(URL, {"artist_id": artist.pk, "user_id": other.pk}, format="json")
    assert response.status_code == 201 and response.json()["user_id"] == other.pk
    assert api_client.delete(f"{URL}?track_id={track.pk}&user_id={other.pk}").status_code == 204
    assert api_client.get(f"{URL}?user_id=987654").status_code == 404


def test_the_endpoint_needs_a_login(api_client):
    assert api_client.get(URL).status_code == 401
    assert api_client.post(URL, {"track_id": 1}, format="json").status_code == 401


def test_the_schema_documents_the_endpoint(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    operations = schema["paths"]["/api/do-not-recommend"]
    assert set(operations) == {"get", "post", "delete"}
    assert {"201", "200", "400", "404"} <= set(operations["post"]["responses"])
    body = schema["components"]["schemas"]["DoNotRecommendInput"]["properties"]
    assert {"track_id", "artist_id", "until", "user_id"} <= set(body)
    assert body["track_id"]["minimum"] == 1
    delete_parameters = {p["name"] for p in operations["delete"]["parameters"]}
    assert delete_parameters == {"track_id", "artist_id", "user_id"}
