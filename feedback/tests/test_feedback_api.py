from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.tests.factories import TrackFactory, UserFactory
from feedback.models import Interaction

URL = "/api/feedback"


@pytest.mark.django_db
def test_feedback_is_stored_with_its_context(api_client, listener):
    track = TrackFactory()
    response = api_client.post(
        URL, {"track_id": track.pk, "event": "like", "ts": "2026-11-20T22:15:00Z"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["event"] == "like"
    stored = Interaction.objects.get()
    assert (stored.user, stored.track, stored.kind) == (listener, track, "like")
    assert (stored.hour, stored.day_of_week) == (22, 4)  # a Friday
    assert stored.source == "api"


@pytest.mark.django_db
def test_repeated_idempotency_key_returns_the_stored_event_once(api_client, listener):
    track = TrackFactory()
    body = {"track_id": track.pk, "event": "play", "idempotency_key": "abc-1"}
    first = api_client.post(URL, body, format="json")
    second = api_client.post(URL, body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_idempotency_keys_are_per_user(api_client, listener):
    track = TrackFactory()
    body = {"track_id": track.pk, "event": "play", "idempotency_key": "shared"}
    assert api_client.post(URL, body, format="json").status_code == 201
    api_client.force_authenticate(UserFactory())
    assert api_client.post(URL, body, format="json").status_code == 201
    assert Interaction.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"track_id": 999999, "event": "play"}, "unknown track_id"),
        ({"track_id": "TRACK", "event": "like"}, "track_id"),
        ({"event": "like"}, "track_id"),
        ({"track_id": "{track}", "event": "love"}, "event"),
        ({"track_id": "{track}", "event": "play", "ts": "yesterday"}, "ts"),
        ({"track_id": "{track}", "event": "play", "ts": "{future}"}, "future"),
    ],
)
def test_bad_feedback_is_rejected_with_a_reason_and_nothing_stored(
    api_client, listener, body, reason
):
    track = TrackFactory()
    future = (timezone.now() + timedelta(days=2)).isoformat()
    body = {k: (v.format(track=track.pk, future=future) if isinstance(v, str) else v)
            for k, v in body.items()}  # fmt: skip
    if body.get("track_id") == str(track.pk):
        body["track_id"] = track.pk
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_malformed_json_is_a_400(api_client, listener):
    response = api_client.post(URL, '{"track_id": 1,', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


@pytest.mark.django_db
def test_anonymous_feedback_is_a_401(api_client):
    response = api_client.post(URL, {"track_id": 1, "event": "play"}, format="json")
    assert response.status_code == 401


@pytest.mark.django_db
def test_bulk_feedback_is_all_or_nothing(api_client, listener):
    tracks = TrackFactory.create_batch(3)
    events = [{"track_id": t.pk, "event": "play"} for t in tracks]
    response = api_client.post(URL, events, format="json")
    assert response.status_code == 201
    assert len(response.json()) == 3
    assert Interaction.objects.count() == 3

    broken = [{"track_id": tracks[0].pk, "event": "skip"}, {"track_id": 424242, "event": "play"}]
    response = api_client.post(URL, broken, format="json")
    assert response.status_code == 400
    assert Interaction.objects.count() == 3


@pytest.mark.django_db
def test_bulk_feedback_is_limited_to_500_events(api_client, listener):
    track = TrackFactory()
    response = api_client.post(URL, [{"track_id": track.pk, "event": "play"}] * 501, format="json")
    assert response.status_code == 400
    assert "500" in response.content.decode()
    assert api_client.post(URL, [], format="json").status_code == 400
