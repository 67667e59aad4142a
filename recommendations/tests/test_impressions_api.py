"""Every list the API serves is logged as impressions under the request_id of its response:
/api/rec (api_rec), /api/continue and /api/playlists/{id}/continue (continuation),
/api/tracks/{id}/similar (similar). Real Redis and PostgreSQL; the flush is the service the beat
task calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid

import pytest
import redis
from django.db import connection
from rest_framework.authtoken.models import Token

from catalog.tests.factories import TrackFactory, UserFactory
from conftest import ROOT, database_url_for
from feedback import impression_buffer
from feedback.models import Impression
from feedback.services import impressions_flush, impressions_push
from playlists.tests.factories import playlist_with_tracks
from tunedin.tests.test_metrics import _free_port, _wait_for

pytestmark = pytest.mark.django_db


def shown(request_id: str) -> list[tuple[int, int]]:
    """(position, track id) of the tracks the list `request_id` showed, in order."""
    row = Impression.objects.get(request_id=uuid.UUID(request_id))
    return [(row.position_of(track_id), track_id) for track_id in row.track_ids]


def test_a_served_list_logs_its_tracks_in_order_after_a_flush(api_client, planted_world):
    fan_of_a = planted_world["users"][0]
    api_client.force_authenticate(fan_of_a)
    body = api_client.get(f"/api/rec/users/{fan_of_a.pk}?n=5&offset=2").json()

    assert Impression.objects.count() == 0  # written asynchronously, not by the request
    impressions_flush()

    assert shown(body["request_id"]) == [
        (2 + index, item["track_id"]) for index, item in enumerate(body["items"])
    ]  # a later page goes on from the positions of the one before
    row = Impression.objects.get(request_id=body["request_id"])
    assert (row.user_id, row.surface, row.model_version_id, row.pipeline) == (
        fan_of_a.pk, "api_rec", planted_world["version"].pk, "planted",
    )  # fmt: skip
    assert (row.interleaving_test_id, row.teams) == (None, [])


def test_a_cached_list_shown_again_is_a_new_impression_with_a_new_request_id(
    api_client, planted_world, django_assert_max_num_queries
):
    fan_of_a = planted_world["users"][0]
    api_client.force_authenticate(fan_of_a)
    url = f"/api/rec/users/{fan_of_a.pk}?n=4"
    first = api_client.get(url).json()
    with django_assert_max_num_queries(2):  # served from the cache: logging adds no query
        second = api_client.get(url).json()

    assert second["items"] == first["items"]
    assert second["request_id"] != first["request_id"]
    # Time-ordered ids (UUIDv7): the later list's id sorts after the earlier one's.
    first_id, second_id = uuid.UUID(first["request_id"]), uuid.UUID(second["request_id"])
    assert (first_id.version, second_id.version) == (7, 7)
    assert first_id < second_id
    impressions_flush()
    assert [t for _, t in shown(first["request_id"])] == [t for _, t in shown(second["request_id"])]
    assert Impression.objects.count() == 2


def test_a_staff_member_reading_a_list_logs_it_as_shown_to_its_listener(api_client, planted_world):
    fan_of_a = planted_world["users"][0]
    api_client.force_authenticate(UserFactory(is_staff=True))
    body = api_client.get(f"/api/rec/users/{fan_of_a.pk}?n=3").json()
    impressions_flush()
    assert set(
        Impression.objects.filter(request_id=body["request_id"]).values_list("user_id", flat=True)
    ) == {fan_of_a.pk}


def test_similar_tracks_log_with_the_version_whose_vectors_ranked_them(api_client, planted_world):
    listener = planted_world["users"][1]
    api_client.force_authenticate(listener)
    track = planted_world["tracks"][0]
    body = api_client.get(f"/api/tracks/{track.pk}/similar?n=5").json()
    impressions_flush()

    assert shown(body["request_id"]) == [
        (i, item["track_id"]) for i, item in enumerate(body["items"])
    ]
    row = Impression.objects.get(request_id=body["request_id"])
    assert (row.user_id, row.surface, row.model_version_id, row.pipeline) == (
        listener.pk, "similar", planted_world["version"].pk, "planted",
    )  # fmt: skip


def test_continuations_log_under_the_continuation_surface(api_client):
    listener = UserFactory()
    api_client.force_authenticate(listener)
    seed, *others = TrackFactory.create_batch(6)
    playlist, playlist_tracks = playlist_with_tracks(3, owner=listener)

    free = api_client.post("/api/continue", {"tracks": [seed.pk], "k": 4}, format="json").json()
    from_playlist = api_client.post(
        f"/api/playlists/{playlist.pk}/continue", {"k": 3}, format="json"
    ).json()
    impressions_flush()

    for body in (free, from_playlist):
        assert body["items"]
        assert shown(body["request_id"]) == [
            (i, item["track_id"]) for i, item in enumerate(body["items"])
        ]
        row = Impression.objects.get(request_id=body["request_id"])
        # No continuation model: a popularity fallback, logged under no version.
        assert (row.user_id, row.surface, row.model_version_id, row.pipeline) == (
            listener.pk, "continuation", None, "",
        )  # fmt: skip


def test_feedback_with_a_served_request_id_links_to_that_impression(api_client, planted_world):
    fan_of_a = planted_world["users"][0]
    api_client.force_authenticate(fan_of_a)
    body = api_client.get(f"/api/rec/users/{fan_of_a.pk}?n=3").json()
    liked = body["items"][1]["track_id"]
    impressions_flush()

    response = api_client.post(
        "/api/feedback",
        {"track_id": liked, "event": "like", "request_id": body["request_id"]},
        format="json",
    )

    impression = Impression.objects.get(request_id=body["request_id"])
    assert response.status_code == 201
    assert response.json()["impression_id"] == impression.pk
    assert impression.position_of(liked) == 1


def test_lists_are_served_when_the_impressions_redis_is_unreachable(
    api_client, planted_world, settings
):
    reachable = settings.IMPRESSIONS_REDIS_URL
    settings.IMPRESSIONS_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    fan_of_a = planted_world["users"][0]
    api_client.force_authenticate(fan_of_a)

    try:
        rec = api_client.get(f"/api/rec/users/{fan_of_a.pk}?n=5")
        similar = api_client.get(f"/api/tracks/{planted_world['tracks'][0].pk}/similar?n=3")
        continued = api_client.post(
            "/api/continue", {"tracks": [planted_world["tracks"][0].pk], "k": 3}, format="json"
        )
        assert impressions_push() == 0  # Redis refused them: they wait in this process
    finally:
        impression_buffer.pending.clear()

    for response in (rec, similar, continued):
        assert response.status_code == 200
        assert uuid.UUID(response.json()["request_id"])
    assert len(rec.json()["items"]) == 5
    settings.IMPRESSIONS_REDIS_URL = reachable
    impressions_flush()
    assert not Impression.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_list_served_by_a_real_gunicorn_worker_reaches_redis_when_the_server_stops_at_once(
    tmp_path, settings
):
    listener = UserFactory()
    TrackFactory.create_batch(6)
    token = Token.objects.create(user=listener)
    port = _free_port()
    (tmp_path / "prometheus").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "tunedin/gunicorn.conf.py"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url_for(connection.settings_dict),
            "IMPRESSIONS_REDIS_URL": settings.IMPRESSIONS_REDIS_URL,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_WORKERS": "1",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "WARNING",
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/healthz", server)
        request = urllib.request.Request(
            f"{base}/api/rec/users/{listener.pk}?n=4",
            headers={"Authorization": f"Token {token.key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
    finally:
        server.terminate()  # at once: the worker pushes what it holds as it exits
        server.wait(timeout=30)

    assert len(body["items"]) == 4
    client = redis.Redis.from_url(settings.IMPRESSIONS_REDIS_URL)
    records = [
        json.loads(raw)
        for key in client.scan_iter(match="*impressions:buffer")
        for raw in client.lrange(key, 0, -1)
    ]
    served = [record for record in records if record["r"] == uuid.UUID(body["request_id"]).hex]
    assert len(served) == 1
    assert served[0]["u"] == listener.pk
    shown = ",".join(str(item["track_id"]) for item in body["items"])
    assert served[0]["t"] == "{" + shown + "}"  # a PostgreSQL array literal
