"""Issue 12: reused idempotency keys, bounded timestamps, concurrent bulk posts, popularity."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Track
from catalog.tests.factories import TrackFactory, UserFactory
from feedback.models import Interaction
from feedback.services import track_popularity_refresh
from feedback.tests.factories import InteractionFactory

URL = "/api/feedback"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changed",
    [{"event": "like"}, {"track_id": "OTHER"}, {"ts": "2026-11-20T23:00:00Z"}],
    ids=["event", "track", "ts"],
)
def test_a_reused_idempotency_key_with_a_different_body_is_a_409_naming_the_key(
    api_client, listener, changed
):
    track, other = TrackFactory(), TrackFactory()
    first = {"track_id": track.pk, "event": "play", "ts": "2026-11-20T22:15:00Z",
             "idempotency_key": "abc-1"}  # fmt: skip
    assert api_client.post(URL, first, format="json").status_code == 201
    retry = {**first, **{k: other.pk if v == "OTHER" else v for k, v in changed.items()}}

    response = api_client.post(URL, retry, format="json")

    assert response.status_code == 409
    assert "'abc-1'" in response.json()["detail"]
    assert Interaction.objects.get().kind == "play"


@pytest.mark.django_db
def test_a_bulk_request_with_one_conflicting_key_stores_nothing(api_client, listener):
    track = TrackFactory()
    api_client.post(URL, {"track_id": track.pk, "event": "play", "idempotency_key": "old"},
                    format="json")  # fmt: skip
    events = [
        {"track_id": track.pk, "event": "like", "idempotency_key": "new"},
        {"track_id": track.pk, "event": "skip", "idempotency_key": "old"},
    ]

    response = api_client.post(URL, events, format="json")

    assert response.status_code == 409
    assert "'old'" in response.json()["detail"]
    assert list(Interaction.objects.values_list("idempotency_key", flat=True)) == ["old"]


@pytest.mark.django_db
def test_the_schema_documents_the_409_of_feedback(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()

    responses = schema["paths"]["/api/feedback"]["post"]["responses"]

    assert "409" in responses
    assert "idempotency_key" in responses["409"]["description"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "ts",
    ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "1970-01-01T00:00:00+05:00"],
)
def test_a_timestamp_before_2000_is_a_400(api_client, listener, ts):
    track = TrackFactory()

    response = api_client.post(URL, {"track_id": track.pk, "event": "play", "ts": ts},
                               format="json")  # fmt: skip

    assert response.status_code == 400
    assert "before 2000-01-01" in response.json()["detail"]
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_the_earliest_timestamp_is_a_setting(api_client, listener, settings):
    settings.FEEDBACK_MIN_TIMESTAMP = "2020-01-01T00:00:00Z"
    track = TrackFactory()
    old = {"track_id": track.pk, "event": "play", "ts": "2019-06-01T00:00:00Z"}
    recent = {**old, "ts": "2020-01-01T00:00:00Z"}

    assert api_client.post(URL, old, format="json").status_code == 400
    assert api_client.post(URL, recent, format="json").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("send_as", ["json", "multipart"])
def test_a_blank_timestamp_is_a_400_not_now(api_client, listener, send_as):
    track = TrackFactory()

    response = api_client.post(URL, {"track_id": track.pk, "event": "play", "ts": ""},
                               format=send_as)  # fmt: skip

    assert response.status_code == 400
    assert "ts" in response.json()
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_one_listener_moves_a_tracks_popularity_by_one(api_client, listener):
    track = TrackFactory()
    InteractionFactory(track=track, kind="play", occurred_at=timezone.now() - timedelta(days=1))
    track_popularity_refresh(days=30)
    before = Track.objects.get(pk=track.pk).popularity
    events = [{"track_id": track.pk, "event": kind} for kind in ["play", "like"] * 200]

    assert api_client.post(URL, events, format="json").status_code == 201
    track_popularity_refresh(days=30)

    assert (before, Track.objects.get(pk=track.pk).popularity) == (1, 2)


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_posts_with_the_same_keys_in_opposite_order_do_not_deadlock():
    user = UserFactory()
    tracks = TrackFactory.create_batch(5)

    def post(body, barrier, statuses) -> None:
        client = APIClient()
        client.force_authenticate(user)
        client.raise_request_exception = False  # a deadlock would come back as a 500
        try:
            barrier.wait(timeout=30)
            statuses.append(client.post(URL, body, format="json").status_code)
        finally:
            connections.close_all()

    for attempt in range(3):
        events = [
            {"track_id": tracks[n % 5].pk, "event": "play", "ts": "2026-11-20T22:15:00Z",
             "idempotency_key": f"try-{attempt}-{n:03d}"}
            for n in range(300)
        ]  # fmt: skip
        barrier, statuses = threading.Barrier(2), []
        threads = [
            threading.Thread(target=post, args=(events, barrier, statuses)),
            threading.Thread(target=post, args=(events[::-1], barrier, statuses)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert sorted(statuses) == [200, 201], statuses
        stored = Interaction.objects.filter(idempotency_key__startswith=f"try-{attempt}-")
        assert stored.count() == 300
