"""Generated playlists: Weekly Exploration and Daily Jams built for each active listener by the
beat task, replaced on each run, diverse, and clear of do-not-recommend marks."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.tests.factories import ArtistFactory, TrackFactory, UserFactory
from feedback.services import do_not_recommend_mark
from feedback.tests.factories import InteractionFactory
from playlists.models import Playlist
from playlists.tests.factories import track_order
from recommendations.generated_playlists import generated_playlists_build
from recommendations.tests.planted import planted_recommender, random_vectors

pytestmark = pytest.mark.django_db

WEEKLY, JAMS = Playlist.Generated.WEEKLY_EXPLORATION, Playlist.Generated.DAILY_JAMS


@pytest.fixture
def world(settings, tmp_path):
    """40 artists with 4 tracks each under a planted model; a listener with old and recent
    plays, a disliked track and a blocked artist; a listener gone quiet for 100 days."""
    settings.ARTIFACTS_DIR = tmp_path
    artists = ArtistFactory.create_batch(40)
    tracks = [TrackFactory(artist=artists[i // 4]) for i in range(160)]
    listener, quiet = UserFactory(), UserFactory()
    planted_recommender(
        directory=tmp_path,
        vectors=random_vectors(track_ids=[t.pk for t in tracks], user_ids=[listener.pk]),
    )
    now = timezone.now()
    old, recent = tracks[0:24], tracks[24:30]  # old: 6 artists x 4 tracks
    for index, track in enumerate(old):
        for _ in range(1 + index % 3):  # played 1-3 times, 90 days ago
            InteractionFactory(user=listener, track=track, occurred_at=now - timedelta(days=90))
    for track in recent:
        InteractionFactory(user=listener, track=track, occurred_at=now - timedelta(days=5))
    InteractionFactory(user=listener, track=old[5], kind="dislike",
                       occurred_at=now - timedelta(days=4))  # fmt: skip
    do_not_recommend_mark(user=listener, artist_id=artists[39].pk)
    InteractionFactory(user=quiet, track=tracks[100], occurred_at=now - timedelta(days=100))
    return {"tracks": tracks, "artists": artists, "listener": listener, "quiet": quiet,
            "old": old, "recent": recent}  # fmt: skip


def _tracks(owner, kind) -> list:
    from catalog.models import Track

    playlist = Playlist.objects.get(owner=owner, generated=kind)
    order = track_order(playlist)
    tracks = Track.objects.in_bulk(order)
    return [tracks[t] for t in order]


def _at_most_two_per_artist(tracks) -> bool:
    return max(Counter(t.artist_id for t in tracks).values()) <= 2


def test_weekly_exploration_holds_50_never_heard_tracks_two_per_artist_at_most(world):
    summary = generated_playlists_build()

    listener = world["listener"]
    assert summary["listeners"] == 1 and summary["playlists"] == 2
    exploration = _tracks(listener, WEEKLY)
    heard = {t.pk for t in world["old"] + world["recent"]}
    assert len(exploration) == 50
    assert not {t.pk for t in exploration} & heard
    assert _at_most_two_per_artist(exploration)
    assert world["artists"][39].pk not in {t.artist_id for t in exploration}  # blocked
    assert not Playlist.objects.filter(owner=world["quiet"]).exists()  # not active


def test_daily_jams_mix_long_unplayed_favourites_with_close_picks(world):
    generated_playlists_build()

    listener = world["listener"]
    jams = _tracks(listener, JAMS)
    old_ids = {t.pk for t in world["old"]}
    recent_ids = {t.pk for t in world["recent"]}
    jam_ids = [t.pk for t in jams]
    assert len(jams) == 50
    assert _at_most_two_per_artist(jams)
    assert not set(jam_ids) & recent_ids  # played in the last 60 days
    assert world["old"][5].pk not in jam_ids  # disliked
    known = [t for t in jam_ids if t in old_ids]
    assert len(known) == 12  # 6 artists, two each
    assert jam_ids[0] in old_ids and jam_ids[1] not in old_ids  # alternating
    # the most played first: each artist's kept tracks are among its most played ones
    exploration = {t.pk for t in _tracks(listener, WEEKLY)}
    assert not set(jam_ids) & exploration  # the two playlists do not repeat each other


def test_each_run_replaces_the_playlists_in_place(world, caplog):
    generated_playlists_build()
    first = {p.generated: p.pk for p in Playlist.objects.filter(owner=world["listener"])}
    listener = world["listener"]
    newest_pick = _tracks(listener, WEEKLY)[0]
    InteractionFactory(user=listener, track=newest_pick)  # heard now: not new any more

    with caplog.at_level(logging.INFO, logger="recommendations.generated_playlists"):
        generated_playlists_build(batch_size=1)

    again = {p.generated: p.pk for p in Playlist.objects.filter(owner=listener)}
    assert again == first  # the same two playlists, rebuilt
    assert newest_pick.pk not in {t.pk for t in _tracks(listener, WEEKLY)}
    assert len(_tracks(listener, WEEKLY)) == 50
    assert "generated playlists: 1/1 listeners" in caplog.text


def test_daily_jams_alone_keep_clear_of_this_weeks_exploration(world):
    generated_playlists_build(kinds=[WEEKLY])
    assert not Playlist.objects.filter(generated=JAMS).exists()
    exploration = [t.pk for t in _tracks(world["listener"], WEEKLY)]

    generated_playlists_build(kinds=[JAMS])

    assert [t.pk for t in _tracks(world["listener"], WEEKLY)] == exploration
    assert not {t.pk for t in _tracks(world["listener"], JAMS)} & set(exploration)


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown generated playlist"):
        generated_playlists_build(kinds=["monthly-mix"])


def test_without_a_model_the_playlists_come_from_tags_and_popularity(db):
    listener = UserFactory()
    tracks = [TrackFactory(artist=ArtistFactory(), popularity=100 - i) for i in range(60)]
    InteractionFactory(user=listener, track=tracks[0],
                       occurred_at=timezone.now() - timedelta(days=70))  # fmt: skip

    generated_playlists_build()

    exploration = _tracks(listener, WEEKLY)
    assert [t.pk for t in exploration] == [t.pk for t in tracks[1:51]]  # by popularity
    assert [t.pk for t in _tracks(listener, JAMS)][:2] == [tracks[0].pk, tracks[51].pk]


def test_the_beat_entries_call_the_registered_task():
    from django_celery_beat.models import PeriodicTask

    from tunedin.celery import app

    entries = PeriodicTask.objects.filter(task="recommendations.tasks.generated_playlists_build")
    assert {entry.name for entry in entries} == {"Build Daily Jams", "Build Weekly Exploration"}
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert "recommendations.tasks.generated_playlists_build" in app.tasks
    kinds = {entry.name: entry.kwargs for entry in entries}
    assert '"daily-jams"' in kinds["Build Daily Jams"]
