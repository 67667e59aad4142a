"""Impressions: logged to Redis by a served list, written in bulk by the flush, linked to the
feedback that answers them, pruned after the retention window, summed up per version and day.
Real Redis and PostgreSQL throughout."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from catalog.tests.factories import TrackFactory, UserFactory
from feedback import impression_buffer, services
from feedback.models import Impression, Interaction
from feedback.selectors import impression_daily_stats
from feedback.services import (
    _impressions_key,
    impressions_flush,
    impressions_log,
    impressions_prune,
    impressions_push,
)
from feedback.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def log_list(*, user, tracks, request_id=None, surface="api_rec", **options) -> uuid.UUID:
    request_id = request_id or uuid.uuid4()
    logged = impressions_log(
        user_id=user.pk,
        surface=surface,
        request_id=request_id,
        track_ids=[track.pk for track in tracks],
        model_version_id=options.pop("model_version_id", 7),
        pipeline=options.pop("pipeline", "tunedin-ranker"),
        **options,
    )
    assert logged
    return request_id


def buffer() -> redis.Redis:
    return redis.Redis.from_url(settings.IMPRESSIONS_REDIS_URL)


def test_request_ids_sort_in_the_order_they_were_made():
    ids = [services.impression_request_id() for _ in range(1000)]
    assert {request_id.version for request_id in ids} == {7}
    assert len(set(ids)) == 1000
    assert sorted(ids) == ids  # new rows land at the right edge of the request_id index
    time.sleep(0.002)
    later = services.impression_request_id()
    assert later.int >> 80 >= time.time_ns() // 10**6 - 1000  # the leading 48 bits: ms now
    assert later > ids[-1]


def test_a_logged_list_is_written_by_the_flush_one_row_per_track_in_order():
    user, tracks = UserFactory(), TrackFactory.create_batch(4)
    request_id = log_list(
        user=user, tracks=tracks, first_position=10, interleaving_test_id=3,
        teams={tracks[0].pk: "A", tracks[1].pk: "B", tracks[2].pk: "A", tracks[3].pk: "B"},
    )  # fmt: skip
    assert not Impression.objects.exists()  # the request wrote nothing to the database

    flushed = impressions_flush()

    assert (flushed.lists, flushed.written, flushed.impressions) == (1, 1, 4)
    shown = Impression.objects.get()
    assert shown.request_id == request_id
    assert shown.track_ids == [track.pk for track in tracks]
    assert (shown.first_position, shown.teams) == (10, ["A", "B", "A", "B"])
    assert [shown.position_of(track.pk) for track in tracks] == [10, 11, 12, 13]
    assert [shown.team_of(track.pk) for track in tracks] == ["A", "B", "A", "B"]
    assert shown.position_of(TrackFactory().pk) is None
    assert (shown.user_id, shown.surface, shown.model_version_id, shown.pipeline) == (
        user.pk, "api_rec", 7, "tunedin-ranker",
    )  # fmt: skip
    assert shown.interleaving_test_id == 3
    assert abs((timezone.now() - shown.shown_at).total_seconds()) < 60
    assert buffer().llen(_impressions_key("buffer")) == 0


def test_a_list_outside_a_test_has_no_teams():
    user, tracks = UserFactory(), TrackFactory.create_batch(2)
    log_list(user=user, tracks=tracks)
    impressions_flush()
    shown = Impression.objects.get()
    assert shown.teams == [] and shown.team_of(tracks[0].pk) == ""
    assert (shown.first_position, shown.position_of(tracks[1].pk)) == (0, 1)


def test_flushing_twice_writes_once_and_a_list_sent_again_is_not_duplicated():
    user, tracks = UserFactory(), TrackFactory.create_batch(3)
    request_id = log_list(user=user, tracks=tracks)
    assert impressions_flush().impressions == 3
    assert impressions_flush().lists == 0  # nothing left
    log_list(user=user, tracks=tracks, request_id=request_id)  # the same list again
    again = impressions_flush()
    assert (again.lists, again.written, again.impressions) == (1, 0, 0)
    assert Impression.objects.count() == 1


def test_the_pushing_thread_moves_a_logged_list_to_redis_within_a_second():
    user, tracks = UserFactory(), TrackFactory.create_batch(2)
    log_list(user=user, tracks=tracks)
    deadline = time.monotonic() + 5
    while buffer().llen(_impressions_key("buffer")) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert buffer().llen(_impressions_key("buffer")) == 1
    assert len(impression_buffer.pending) == 0


def test_a_batch_claimed_by_a_run_that_died_is_written_by_the_next_run():
    user, tracks = UserFactory(), TrackFactory.create_batch(2)
    first = log_list(user=user, tracks=tracks[:1])
    second = log_list(user=user, tracks=tracks[1:])
    impressions_push()
    client = buffer()
    # A run claimed the first list and died before writing it.
    client.lmove(_impressions_key("buffer"), _impressions_key("flushing"), "LEFT", "RIGHT")

    flushed = impressions_flush()

    assert (flushed.lists, flushed.impressions) == (2, 2)
    assert set(Impression.objects.values_list("request_id", flat=True)) == {first, second}
    assert client.llen(_impressions_key("flushing")) == 0


def test_a_malformed_record_or_a_deleted_user_does_not_stop_the_rest(caplog):
    kept, gone = UserFactory(), UserFactory()
    tracks = TrackFactory.create_batch(2)
    buffer().rpush(_impressions_key("buffer"), b'{"r": "not a uuid"}', b"\xff")
    log_list(user=gone, tracks=tracks)
    log_list(user=kept, tracks=tracks)
    gone.delete()

    with caplog.at_level(logging.WARNING, logger="feedback.services"):
        flushed = impressions_flush()

    assert (flushed.lists, flushed.written, flushed.impressions) == (4, 1, 2)
    assert set(Impression.objects.values_list("user_id", flat=True)) == {kept.pk}
    assert sum("impression record dropped" in r.getMessage() for r in caplog.records) == 2


def _record(**fields) -> bytes:
    record = {"r": uuid.uuid4().hex, "s": "api_rec", "v": None, "p": "", "i": None, "o": 0,
              "a": time.time(), **fields}  # fmt: skip
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    "track_ids",
    ["{}", "{0,5}", "{5,-1}", "{5,,6}", "{1234567890123456789}", "{5} ", "5,6", "{5;6}", [],
     [5, True], [5, 0], ["5"], [2**63]],
)  # fmt: skip
def test_a_record_whose_tracks_are_not_an_array_of_positive_ids_is_dropped(track_ids, caplog):
    user, track = UserFactory(), TrackFactory()
    buffer().rpush(_impressions_key("buffer"), _record(u=user.pk, t=track_ids))
    log_list(user=user, tracks=[track])

    with caplog.at_level(logging.WARNING, logger="feedback.services"):
        flushed = impressions_flush()

    assert (flushed.lists, flushed.written, flushed.impressions) == (2, 1, 1)
    assert Impression.objects.get().track_ids == [track.pk]
    assert sum("impression record dropped" in r.getMessage() for r in caplog.records) == 1


def test_a_record_logged_with_a_json_list_of_tracks_is_still_written():
    # Records buffered by a server from before the array literal, at the deploy.
    user, tracks = UserFactory(), TrackFactory.create_batch(2)
    teams = ["A", "B"]
    ids = [track.pk for track in tracks]
    buffer().rpush(_impressions_key("buffer"), _record(u=user.pk, t=ids, m=teams, i=4))

    assert impressions_flush().impressions == 2
    shown = Impression.objects.get()
    assert (shown.track_ids, shown.teams, shown.interleaving_test_id) == (ids, teams, 4)


def test_a_team_for_each_track_or_none_else_the_record_is_dropped():
    user, tracks = UserFactory(), TrackFactory.create_batch(2)
    literal = "{" + ",".join(str(track.pk) for track in tracks) + "}"
    buffer().rpush(_impressions_key("buffer"), _record(u=user.pk, t=literal, m=["A"], i=4))
    assert impressions_flush().written == 0


def log_lists_and_record_pauses(monkeypatch, *, lists: int) -> list[float]:
    """Log `lists` lists; returns the list the flush's pauses (in seconds) are appended to."""
    user, tracks = UserFactory(), TrackFactory.create_batch(2)
    for _ in range(lists):
        log_list(user=user, tracks=tracks)
    pauses = []
    monkeypatch.setattr(services, "_pause", pauses.append)
    return pauses


def test_a_run_pauses_between_batches_as_long_as_the_last_batch_took(monkeypatch):
    pauses = log_lists_and_record_pauses(monkeypatch, lists=5)
    written = []
    write = services.impressions_write

    def timed_write(*, records):
        started = time.perf_counter()
        result = write(records=records)
        written.append(time.perf_counter() - started)
        return result

    monkeypatch.setattr(services, "impressions_write", timed_write)

    flushed = impressions_flush(batch_lists=2, pause_ratio=2.0)

    assert (flushed.lists, Impression.objects.count()) == (5, 5)
    assert len(written) == 3 and len(pauses) == 2  # between batches, none after the last
    for pause, batch_seconds in zip(pauses, written[:2], strict=True):
        assert 2.0 * batch_seconds <= pause <= 2.0 * batch_seconds + 0.05


def test_a_run_without_a_pause_ratio_never_pauses(monkeypatch):
    pauses = log_lists_and_record_pauses(monkeypatch, lists=3)
    assert impressions_flush(batch_lists=1, pause_ratio=0).lists == 3
    assert pauses == []


def test_nothing_is_logged_when_impressions_are_off(settings):
    settings.IMPRESSIONS_ENABLED = False
    user, track = UserFactory(), TrackFactory()
    logged = impressions_log(
        user_id=user.pk, surface="discover", request_id=uuid.uuid4(), track_ids=[track.pk],
        model_version_id=None, pipeline="",
    )  # fmt: skip
    assert logged is False
    settings.IMPRESSIONS_ENABLED = True
    assert impressions_flush().lists == 0


def test_an_unreachable_redis_keeps_the_records_pending_with_a_warning_and_no_error(
    settings, caplog
):
    settings.IMPRESSIONS_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    user, track = UserFactory(), TrackFactory()
    started = time.monotonic()
    logged = impressions_log(
        user_id=user.pk, surface="api_rec", request_id=uuid.uuid4(), track_ids=[track.pk],
        model_version_id=None, pipeline="",
    )  # fmt: skip
    assert logged is True and time.monotonic() - started < 0.1  # the request never waits
    try:
        with caplog.at_level(logging.WARNING, logger="feedback.impression_buffer"):
            assert impressions_push() == 0
        assert len(impression_buffer.pending) == 1  # kept for the next push
        assert any("impressions not pushed" in record.getMessage() for record in caplog.records)
    finally:
        impression_buffer.pending.clear()


# ----------------------------------------------------------------------------- feedback links


def post_feedback(api_client, **body):
    return api_client.post("/api/feedback", body, format="json")


def test_feedback_with_the_request_id_of_a_written_list_links_at_once(api_client, listener):
    tracks = TrackFactory.create_batch(3)
    request_id = log_list(user=listener, tracks=tracks)
    impressions_flush()
    shown = Impression.objects.get(request_id=request_id)

    response = post_feedback(
        api_client, track_id=tracks[1].pk, event="like", request_id=str(request_id)
    )

    assert response.status_code == 201
    assert response.json()["impression_id"] == shown.pk
    assert response.json()["request_id"] == str(request_id)
    assert Interaction.objects.get(pk=response.json()["id"]).impression == shown


def test_feedback_sent_before_the_flush_is_linked_by_the_flush(api_client, listener):
    tracks = TrackFactory.create_batch(3)
    request_id = log_list(user=listener, tracks=tracks)
    response = post_feedback(
        api_client, track_id=tracks[2].pk, event="skip", request_id=request_id.hex
    )
    assert response.status_code == 201 and response.json()["impression_id"] is None

    flushed = impressions_flush()

    assert flushed.linked == 1
    event = Interaction.objects.get(pk=response.json()["id"])
    assert event.impression == Impression.objects.get(request_id=request_id)


def test_a_request_id_links_only_feedback_on_a_track_its_list_showed(api_client, listener):
    shown_tracks, other = TrackFactory.create_batch(2), TrackFactory()
    request_id = log_list(user=listener, tracks=shown_tracks)
    impressions_flush()

    response = post_feedback(
        api_client, track_id=other.pk, event="like", request_id=str(request_id)
    )

    assert response.status_code == 201 and response.json()["impression_id"] is None


def test_someone_elses_request_id_never_links(api_client, listener):
    other = UserFactory()
    track = TrackFactory()
    their_list = log_list(user=other, tracks=[track])
    before_flush = post_feedback(
        api_client, track_id=track.pk, event="like", request_id=str(their_list)
    )
    impressions_flush()
    after_flush = post_feedback(
        api_client, track_id=track.pk, event="play", request_id=str(their_list)
    )

    assert before_flush.status_code == after_flush.status_code == 201
    assert after_flush.json()["impression_id"] is None
    assert not Interaction.objects.filter(user=listener, impression__isnull=False).exists()
    assert not Impression.objects.get(request_id=their_list).feedback.exists()


@pytest.mark.parametrize("request_id", ["not-a-uuid", 12345, "", "1" * 100])
def test_a_malformed_request_id_is_a_400_with_the_reason(api_client, listener, request_id):
    track = TrackFactory()
    response = post_feedback(api_client, track_id=track.pk, event="like", request_id=request_id)
    assert response.status_code == 400
    assert "UUID" in response.json()["request_id"][0]
    assert not Interaction.objects.exists()


def test_feedback_without_a_request_id_links_to_the_latest_impression_in_the_window(
    api_client, listener, settings
):
    settings.IMPRESSIONS_LINK_MINUTES = 30
    track = TrackFactory()
    now = timezone.now()

    def shown(minutes_ago: int) -> Impression:
        return Impression.objects.create(
            request_id=uuid.uuid4(), user=listener, track_ids=[TrackFactory().pk, track.pk],
            surface="discover", shown_at=now - timedelta(minutes=minutes_ago),
        )  # fmt: skip

    older, latest, later = shown(20), shown(10), shown(-5)  # `later`: after the play

    play = post_feedback(api_client, track_id=track.pk, event="play", ts=now.isoformat())
    stale = post_feedback(
        api_client, track_id=track.pk, event="play",
        ts=(now - timedelta(minutes=60)).isoformat(),
    )  # fmt: skip

    assert play.json()["impression_id"] == latest.pk
    assert stale.json()["impression_id"] is None  # 40 minutes and more after every impression
    assert not older.feedback.exists() and not later.feedback.exists()


def test_feedback_without_a_request_id_looks_back_at_most_link_lists_lists(
    api_client, listener, settings
):
    settings.IMPRESSIONS_LINK_MINUTES, settings.IMPRESSIONS_LINK_LISTS = 30, 3
    early, recent, never = TrackFactory(), TrackFactory(), TrackFactory()
    now = timezone.now()
    shown = {
        minutes_ago: Impression.objects.create(
            request_id=uuid.uuid4(), user=listener, surface="discover",
            track_ids=[early.pk] if minutes_ago == 25 else [recent.pk, TrackFactory().pk],
            shown_at=now - timedelta(minutes=minutes_ago),
        )
        for minutes_ago in (25, 20, 15, 10, 5)
    }  # fmt: skip
    events = [
        {"track_id": track.pk, "event": "play", "ts": (now - timedelta(minutes=ago)).isoformat()}
        for track, ago in ((early, 0), (recent, 12), (never, 0), (early, 24))
    ]

    response = api_client.post("/api/feedback", events, format="json")

    assert response.status_code == 201
    linked = [event["impression_id"] for event in response.json()]
    # `early` was shown only 25 minutes ago, behind 4 later lists: out of reach at 3 lists
    # back, but the play 24 minutes ago has it among its own 3 latest.
    assert linked == [None, shown[15].pk, None, shown[25].pk]


# ----------------------------------------------------------------------------- retention


def test_prune_deletes_only_impressions_older_than_the_window(settings):
    settings.IMPRESSIONS_RETENTION_DAYS = 30
    user, track = UserFactory(), TrackFactory()
    now = timezone.now()

    def shown(days_ago: float) -> Impression:
        return Impression.objects.create(
            request_id=uuid.uuid4(), user=user, track_ids=[track.pk], surface="api_rec",
            shown_at=now - timedelta(days=days_ago),
        )  # fmt: skip

    old = [shown(31), shown(40), shown(365)]
    kept = [shown(29), shown(0)]
    answer = InteractionFactory(
        user=user, track=track, kind="like", request_id=old[0].request_id, impression=old[0]
    )

    assert impressions_prune(batch_size=2) == 3  # two batches

    assert set(Impression.objects.values_list("pk", flat=True)) == {row.pk for row in kept}
    answer.refresh_from_db()
    assert answer.impression is None and answer.request_id == old[0].request_id


# ----------------------------------------------------------------------------- daily stats


def test_daily_stats_compute_the_rates_from_linked_feedback():
    user = UserFactory()
    tracks = TrackFactory.create_batch(10)  # the catalog
    now = timezone.now()

    def shown(shown_tracks, *, version, days_ago=0) -> Impression:
        return Impression.objects.create(
            request_id=uuid.uuid4(), user=user, track_ids=[track.pk for track in shown_tracks],
            surface="api_rec", model_version_id=version, pipeline="sasrec" if version else "",
            shown_at=now - timedelta(days=days_ago),
        )  # fmt: skip

    # Version 7 today: a list of 3 and a list of 1 showing tracks[0] again: 4 impressions of 3
    # distinct tracks.
    first_list = shown(tracks[:3], version=7)
    shown(tracks[:1], version=7)
    for track, kind in [
        (tracks[0], "like"), (tracks[0], "play"), (tracks[1], "play"), (tracks[2], "skip"),
    ]:  # fmt: skip
        InteractionFactory(user=user, track=track, kind=kind, impression=first_list)
    InteractionFactory(user=user, track=tracks[3], kind="like")  # not linked: not counted
    shown(tracks[4:5], version=None, days_ago=1)
    shown(tracks[5:6], version=7, days_ago=30)  # outside the 7 days asked for
    interleaved = shown(tracks[6:8], version=7)
    interleaved.interleaving_test_id, interleaved.teams = 1, ["A", "B"]
    interleaved.save()  # the test's own reading, not the version's

    stats = {(row.model_version_id, row.day): row for row in impression_daily_stats(days=7)}

    today = timezone.localdate()
    assert set(stats) == {(7, today), (None, today - timedelta(days=1))}
    version_7 = stats[(7, today)]
    assert (version_7.impressions, version_7.positive, version_7.skipped) == (4, 2, 1)
    assert version_7.positive_rate == pytest.approx(0.5)
    assert version_7.skip_rate == pytest.approx(0.25)
    assert version_7.coverage == pytest.approx(3 / 10)
    assert version_7.pipelines == "sasrec"
    fallback = stats[(None, today - timedelta(days=1))]
    assert (fallback.impressions, fallback.positive_rate, fallback.coverage) == (1, 0.0, 0.1)


def test_daily_stats_are_empty_without_impressions():
    assert impression_daily_stats(days=14) == []


# ----------------------------------------------------------------------------- beat and worker


def test_beat_flushes_every_few_seconds_and_prunes_daily_with_the_apps_tasks():
    from django_celery_beat.models import PeriodicTask

    from feedback import tasks

    flush = PeriodicTask.objects.get(task=tasks.impressions_flush.name)
    prune = PeriodicTask.objects.get(task=tasks.impressions_prune.name)
    assert flush.enabled and flush.interval.period == "seconds"
    assert flush.interval.every == settings.IMPRESSIONS_FLUSH_SECONDS
    assert flush.expire_seconds == settings.IMPRESSIONS_FLUSH_SECONDS  # no pile-up
    assert prune.enabled and prune.crontab is not None


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_flushes_the_buffer_into_the_database(celery_worker_with):
    from feedback.tasks import impressions_flush as flush_task

    user, tracks = UserFactory(), TrackFactory.create_batch(3)
    request_id = log_list(user=user, tracks=tracks)
    impressions_push()  # the worker is another process: it flushes what is in Redis
    with celery_worker_with(IMPRESSIONS_REDIS_URL=settings.IMPRESSIONS_REDIS_URL):
        flush_task.delay()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Impression.objects.filter(request_id=request_id).exists():
                break
            time.sleep(0.2)
    assert Impression.objects.get(request_id=request_id).track_ids == [t.pk for t in tracks]


# ----------------------------------------------------------------------------- admin


def test_the_admin_lists_impressions_read_only_filtered_by_surface_and_version(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    user, track = UserFactory(username="ada"), TrackFactory(title="Teardrop")
    shown = [
        Impression.objects.create(
            request_id=uuid.uuid4(), user=user, track_ids=[track.pk], surface=surface,
            model_version_id=version, shown_at=timezone.now(),
        )
        for surface, version in [("discover", 7), ("similar", 8)]
    ]  # fmt: skip
    url = "/admin/feedback/impression/"

    by_surface = client.get(url, {"surface__exact": "discover"})
    by_version = client.get(url, {"model_version_id": "8"})
    by_request = client.get(url, {"q": str(shown[1].request_id)})
    by_name = client.get(url, {"q": "ada"})

    assert {page.status_code for page in (by_surface, by_version, by_request, by_name)} == {200}
    assert [row.surface for row in by_surface.context["cl"].result_list] == ["discover"]
    assert [row.surface for row in by_version.context["cl"].result_list] == ["similar"]
    assert list(by_request.context["cl"].result_list) == [shown[1]]
    assert len(by_name.context["cl"].result_list) == 2
    assert client.get(f"{url}add/").status_code == 403
    impression = Impression.objects.first()
    assert client.post(f"{url}{impression.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Impression.objects.count() == 2
