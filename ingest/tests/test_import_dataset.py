from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from catalog.models import Artist, Track
from feedback.models import Interaction
from playlists.models import Playlist

FIXTURES = Path(__file__).parent / "fixtures"


def run_import(dataset_format: str, name: str) -> None:
    call_command("import_dataset", "--format", dataset_format, str(FIXTURES / name))


@pytest.mark.django_db
def test_lastfm_1k_import_creates_users_artists_tracks_and_plays():
    run_import("lastfm-1k", "lastfm-1k.tsv")
    assert get_user_model().objects.filter(username__startswith="user_0000").count() == 2
    # the MusicBrainz id identifies 坂本龍一 across lines; a track without an id is keyed by title
    assert Artist.objects.filter(musicbrainz_id="a7f7df4a-77d8-4f12-8acd-5c60c93f4de8").count() == 1
    assert Artist.objects.count() == 3
    assert Track.objects.count() == 4
    assert Interaction.objects.filter(kind="play").count() == 5
    first = Interaction.objects.get(track__title__startswith="Fuck Me")
    assert first.occurred_at == datetime(2009, 5, 4, 23, 8, 57, tzinfo=UTC)
    assert (first.hour, first.day_of_week) == (23, 0)
    assert first.source == Interaction.Source.IMPORT


@pytest.mark.django_db
def test_reimporting_the_same_file_adds_nothing():
    run_import("lastfm-1k", "lastfm-1k.tsv")
    run_import("csv", "events.csv")
    run_import("mpd", "mpd.json")
    counts = (Artist.objects.count(), Track.objects.count(), Interaction.objects.count(),
              Playlist.objects.count())  # fmt: skip
    run_import("lastfm-1k", "lastfm-1k.tsv")
    run_import("csv", "events.csv")
    run_import("mpd", "mpd.json")
    assert counts == (Artist.objects.count(), Track.objects.count(), Interaction.objects.count(),
                      Playlist.objects.count())  # fmt: skip


@pytest.mark.django_db
def test_csv_import_keeps_event_kinds_and_timezones():
    run_import("csv", "events.csv")
    assert Interaction.objects.count() == 5
    kinds = sorted(Interaction.objects.values_list("kind", flat=True))
    assert kinds == ["dislike", "like", "play", "play", "skip"]
    offset = Interaction.objects.get(user__username="bo", kind="play")
    assert offset.occurred_at == datetime(2026, 10, 2, 19, 30, tzinfo=UTC)
    assert Track.objects.get(title="Comets, in Lisbon").artist.name == "Ada Brandt"
    # the same (artist, title) is one track
    assert Track.objects.filter(title="Paper Ghosts").count() == 1


@pytest.mark.django_db
def test_mpd_import_keeps_playlist_order_and_spotify_ids():
    run_import("mpd", "mpd.json")
    playlist = Playlist.objects.get(external_id="mpd:0")
    titles = list(playlist.entries.order_by("position").values_list("track__title", flat=True))
    assert titles == ["Lose Control (feat. Ciara & Fat Man Scoop)", "Toxic", "Crazy In Love"]
    assert Track.objects.count() == 3  # shared between the two playlists
    assert (
        Track.objects.get(spotify_uri="spotify:track:6I9VzXrHxO9rA9A5euc8Ak").duration_ms == 198800
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("dataset_format", "name", "message"),
    [
        (
            "lastfm-1k",
            "lastfm-1k-bad-timestamp.tsv",
            r"lastfm-1k-bad-timestamp.tsv:2: bad timestamp",
        ),
        ("lastfm-1k", "lastfm-1k-bad-fields.tsv", r"lastfm-1k-bad-fields.tsv:1: expected 6"),
        ("csv", "events-bad.csv", r"events-bad.csv:3: unknown event 'love'"),
        ("mpd", "mpd-bad.json", r"mpd-bad.json: playlists\[0\].tracks\[0\]: needs track_uri"),
        ("csv", "no-such-file.csv", r"no such file"),
    ],
)
def test_malformed_files_fail_with_file_line_and_reason_and_write_nothing(
    dataset_format, name, message
):
    with pytest.raises(CommandError, match=message):
        run_import(dataset_format, name)
    assert Interaction.objects.count() == 0
    assert Track.objects.count() == 0
