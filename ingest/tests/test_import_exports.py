"""`manage.py import_dataset` on the exports listeners download: Spotify's streaming history,
ListenBrainz and Last.fm. The fixtures are small files in each real format."""

import io
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from catalog.models import Artist, Track
from feedback.models import Interaction
from ingest import services

FIXTURES = Path(__file__).parent / "fixtures"
User = get_user_model()


def run_import(dataset_format: str, *paths, user: str | None = None) -> str:
    arguments = ["--format", dataset_format, *(str(path) for path in paths)]
    if user is not None:
        arguments += ["--user", user]
    output = io.StringIO()
    call_command("import_dataset", *arguments, stdout=output)
    return output.getvalue()


def counts() -> tuple[int, int, int, int]:
    return (User.objects.count(), Artist.objects.count(), Track.objects.count(),
            Interaction.objects.count())  # fmt: skip


def kinds_by_title(username: str) -> list[tuple[str, str]]:
    return sorted(
        Interaction.objects.filter(user__username=username).values_list("track__title", "kind")
    )


# Spotify


@pytest.mark.django_db
def test_spotify_history_maps_streams_to_plays_and_skips_and_leaves_out_podcasts():
    output = run_import(
        "spotify", FIXTURES / "spotify" / "Streaming_History_Audio_2023-2024_0.json"
    )
    # a full stream is a play; a skipped one, or one under 30 s (skipped: null), is a skip
    assert kinds_by_title("spotifan") == [
        ("Comets, in Lisbon", "play"),
        ("Comets, in Lisbon", "skip"),
        ("Neon Tides", "skip"),
        ("Paper Ghosts", "play"),
    ]
    assert "1 rows skipped" in output  # the podcast episode
    assert Artist.objects.count() == 2
    paper_ghosts = Track.objects.get(spotify_uri="spotify:track:0VjIjW4GlUZAMYd2vXMi3b")
    assert (paper_ghosts.title, paper_ghosts.artist.name) == ("Paper Ghosts", "The Velvet Harbor")
    play = Interaction.objects.get(track=paper_ghosts)
    # ts is when the stream ended; the listen is dated when it started
    assert play.occurred_at == datetime(2023, 11, 2, 7, 45, 12, tzinfo=UTC) - timedelta(
        milliseconds=215000
    )
    assert play.source == Interaction.Source.IMPORT


@pytest.mark.django_db
def test_spotify_export_directory_reads_every_audio_history_file():
    run_import("spotify", FIXTURES / "spotify")
    assert Interaction.objects.filter(user__username="spotifan").count() == 5
    assert Track.objects.filter(title="Paper Ghosts").count() == 1
    assert Interaction.objects.filter(track__title="Paper Ghosts", kind="play").count() == 2


@pytest.mark.django_db
def test_spotify_export_zip_reads_its_audio_history_and_nothing_else(tmp_path):
    archive = tmp_path / "my_spotify_data.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((FIXTURES / "spotify").iterdir()):
            zipped.write(path, f"Spotify Extended Streaming History/{path.name}")
        # neither is a listening history: reading them would fail the import
        zipped.writestr(
            "Spotify Extended Streaming History/ReadMeFirst_ExtendedHistory.pdf", "%PDF"
        )
        zipped.writestr("Spotify Extended Streaming History/Streaming_History_Video_2024.json", "{")
    run_import("spotify", archive)
    assert Interaction.objects.filter(user__username="spotifan").count() == 5


@pytest.mark.django_db
def test_spotify_export_without_usernames_needs_user_and_writes_nothing_without_it():
    name = FIXTURES / "spotify-2025-no-username.json"
    with pytest.raises(CommandError) as error:
        run_import("spotify", FIXTURES / "spotify", name)
    assert str(error.value) == f"{name}:2: the stream names no user; pass --user NAME"
    assert counts() == (0, 0, 0, 0)  # the files before it were rolled back too

    run_import("spotify", name, user="ana")
    assert kinds_by_title("ana") == [("Neon Tides", "play")]


@pytest.mark.django_db
def test_user_option_takes_the_place_of_the_exported_username():
    run_import("spotify", FIXTURES / "spotify", user="ana")
    assert not User.objects.filter(username="spotifan").exists()
    assert Interaction.objects.filter(user__username="ana").count() == 5


@pytest.mark.django_db
def test_spotify_account_data_history_is_read_too():
    run_import("spotify", FIXTURES / "StreamingHistory_music_0.json", user="ana")
    assert kinds_by_title("ana") == [("Comets, in Lisbon", "play"), ("Neon Tides", "skip")]
    comets = Interaction.objects.get(track__title="Comets, in Lisbon")
    assert comets.occurred_at == datetime(2023, 11, 4, 9, 12, tzinfo=UTC) - timedelta(
        milliseconds=251000
    )


@pytest.mark.django_db
def test_malformed_spotify_record_fails_with_its_line_and_writes_nothing():
    name = FIXTURES / "spotify-bad-ms-played.json"
    with pytest.raises(CommandError) as error:
        run_import("spotify", name)
    assert str(error.value) == f"{name}:28: bad ms_played 'twelve seconds'"
    assert counts() == (0, 0, 0, 0)


@pytest.mark.django_db
def test_an_error_after_chunks_were_written_rolls_them_back(monkeypatch):
    monkeypatch.setattr(services, "IMPORT_CHUNK", 2)
    with pytest.raises(CommandError, match="names no user"):
        run_import("spotify", FIXTURES / "spotify", FIXTURES / "spotify-2025-no-username.json")
    assert counts() == (0, 0, 0, 0)


# ListenBrainz


@pytest.mark.django_db
def test_listenbrainz_export_zip_takes_its_user_from_user_json(tmp_path):
    archive = tmp_path / "listenbrainz_lb-listener_1735000000.zip"
    export = FIXTURES / "listenbrainz-export"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(export.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(export).as_posix())
    run_import("listenbrainz", archive)
    assert kinds_by_title("lb-listener") == [
        ("Harbour Lights", "play"),
        ("Paper Ghosts", "play"),
        ("Paper Ghosts", "play"),
    ]
    paper_ghosts = Track.objects.get(title="Paper Ghosts")
    assert paper_ghosts.musicbrainz_id == "8f3471b5-7e6a-48da-86a9-c1c07a0f47ae"
    assert paper_ghosts.duration_ms == 215000
    assert paper_ghosts.artist.musicbrainz_id == "5b11f4ce-a62d-471e-81fc-a69a8278c7da"
    # a credit of two artists keeps its name, without either artist's id
    duet = Track.objects.get(title="Harbour Lights")
    assert (duet.artist.name, duet.artist.musicbrainz_id) == (
        "Ada Brandt & The Velvet Harbor",
        None,
    )
    assert duet.duration_ms == 187000
    first = Interaction.objects.filter(track=paper_ghosts).order_by("occurred_at").first()
    assert first.occurred_at == datetime.fromtimestamp(1704100000, tz=UTC)

    # the unpacked export is the same listens
    before = counts()
    run_import("listenbrainz", export)
    assert counts() == before


@pytest.mark.django_db
def test_listenbrainz_listens_name_their_user_and_the_players_mbid_wins():
    run_import("listenbrainz", FIXTURES / "listenbrainz-listens.jsonl")
    assert kinds_by_title("lb-other") == [("Flashdance", "play"), ("Neon Tides", "play")]
    neon_tides = Track.objects.get(title="Neon Tides")
    assert neon_tides.musicbrainz_id == "11111111-2222-4333-8444-555555555555"
    assert Track.objects.get(title="Flashdance").musicbrainz_id is None


@pytest.mark.django_db
def test_listenbrainz_export_of_a_json_array_is_read():
    run_import("listenbrainz", FIXTURES / "listenbrainz-old-export.json")
    assert kinds_by_title("lb-old") == [("Comets, in Lisbon", "play")]
    assert Artist.objects.get().musicbrainz_id == "a74b1b7f-71a5-4011-9441-d0b5e4122711"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("listenbrainz-bad.jsonl", "3: track_metadata needs artist_name and track_name"),
        (
            "listenbrainz-bad-json.jsonl",
            "2: invalid JSON: Expecting property name enclosed in double quotes",
        ),  # fmt: skip
    ],
)
def test_malformed_listen_fails_with_its_line_and_writes_nothing(name, reason):
    with pytest.raises(CommandError) as error:
        run_import("listenbrainz", FIXTURES / name)
    assert str(error.value) == f"{FIXTURES / name}:{reason}"
    assert counts() == (0, 0, 0, 0)


# Last.fm


@pytest.mark.django_db
def test_lastfm_scrobbles_csv_with_header():
    output = run_import("lastfm-csv", FIXTURES / "lastfm-scrobbles.csv", user="ana")
    # the export repeats a scrobble: it is stored once
    assert kinds_by_title("ana") == [
        ("Comets, in Lisbon", "play"),
        ("Flashdance", "play"),
        ("Paper Ghosts", "play"),
    ]
    assert "1 events were already there" in output
    comets = Interaction.objects.get(track__title="Comets, in Lisbon")
    assert comets.occurred_at == datetime.fromtimestamp(1699047250, tz=UTC)
    assert comets.track.musicbrainz_id == "c0ffee00-1234-4abc-8def-0123456789ab"
    assert comets.track.artist.musicbrainz_id == "a74b1b7f-71a5-4011-9441-d0b5e4122711"


@pytest.mark.django_db
def test_lastfm_csv_without_header_reads_its_dates():
    run_import("lastfm-csv", FIXTURES / "lastfm-to-csv.csv", user="ana")
    times = dict(
        Interaction.objects.values_list("track__title", "occurred_at").order_by("occurred_at")
    )
    assert times == {
        "Flashdance": datetime(2023, 11, 2, 4, 40, tzinfo=UTC),
        "Paper Ghosts": datetime(2023, 11, 2, 7, 44, tzinfo=UTC),
        "Comets, in Lisbon": datetime(2023, 11, 3, 21, 34, tzinfo=UTC),
    }


@pytest.mark.django_db
def test_lastfm_csv_needs_a_user():
    with pytest.raises(CommandError) as error:
        run_import("lastfm-csv", FIXTURES / "lastfm-scrobbles.csv")
    assert str(error.value) == "lastfm-csv names no user: pass --user NAME"
    assert counts() == (0, 0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("dataset_format", "name", "user", "message"),
    [
        (
            "lastfm-1k",
            "lastfm-1k.tsv",
            "ana",
            "--user does not apply to lastfm-1k: it names its users",
        ),
        ("spotify", "spotify", " ", "--user: the user name is empty"),
        ("spotify", "spotify", "x" * 151, "--user: the user name is longer than 150 characters"),
    ],
)
def test_bad_user_option_is_refused_before_reading(dataset_format, name, user, message):
    with pytest.raises(CommandError) as error:
        run_import(dataset_format, FIXTURES / name, user=user)
    assert str(error.value) == message
    assert counts() == (0, 0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("lastfm-scrobbles-bad.csv", "3: bad uts 'yesterday'"),
        ("lastfm-to-csv-bad.csv", "2: expected 4 fields, got 3"),
    ],
)
def test_malformed_scrobble_fails_with_its_line_and_writes_nothing(name, reason):
    with pytest.raises(CommandError) as error:
        run_import("lastfm-csv", FIXTURES / name, user="ana")
    assert str(error.value) == f"{FIXTURES / name}:{reason}"
    assert counts() == (0, 0, 0, 0)


# Across formats


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("dataset_format", "path", "user"),
    [
        ("spotify", "spotify", None),
        ("listenbrainz", "listenbrainz-export", None),
        ("listenbrainz", "listenbrainz-listens.jsonl", None),
        ("lastfm-csv", "lastfm-scrobbles.csv", "ana"),
        ("lastfm-csv", "lastfm-to-csv.csv", "ana"),
    ],
)
def test_importing_an_export_twice_adds_nothing_the_second_time(dataset_format, path, user):
    run_import(dataset_format, FIXTURES / path, user=user)
    before = counts()
    output = run_import(dataset_format, FIXTURES / path, user=user)
    assert counts() == before
    assert "added 0 artists, 0 tracks, 0 users, 0 interactions" in output


@pytest.mark.django_db
def test_the_same_song_from_spotify_listenbrainz_and_lastfm_is_one_catalog_track():
    run_import("spotify", FIXTURES / "spotify", user="ana")
    run_import("listenbrainz", FIXTURES / "listenbrainz-export", user="ana")
    run_import("lastfm-csv", FIXTURES / "lastfm-scrobbles.csv", user="ana")
    paper_ghosts = Track.objects.get(title="Paper Ghosts")
    # each source added the id it knows to the one row
    assert paper_ghosts.spotify_uri == "spotify:track:0VjIjW4GlUZAMYd2vXMi3b"
    assert paper_ghosts.musicbrainz_id == "8f3471b5-7e6a-48da-86a9-c1c07a0f47ae"
    assert Artist.objects.filter(name="The Velvet Harbor").count() == 1
    assert Interaction.objects.filter(track=paper_ghosts).count() == 2 + 2 + 1


@pytest.mark.django_db
def test_imports_match_catalog_rows_that_exist_by_name():
    harbor = Artist.objects.create(name="The Velvet Harbor")
    neon_tides = Track.objects.create(title="Neon Tides", artist=harbor)
    run_import("spotify", FIXTURES / "spotify-2025-no-username.json", user="ana")
    assert Artist.objects.count() == 1
    assert Track.objects.get().pk == neon_tides.pk
    assert Interaction.objects.get().track_id == neon_tides.pk


@pytest.mark.django_db
def test_missing_path_and_empty_export_directory_are_reported(tmp_path):
    with pytest.raises(CommandError) as error:
        run_import("spotify", tmp_path / "nowhere.json")
    assert str(error.value) == f"{tmp_path / 'nowhere.json'}: no such file"
    shutil.copy(FIXTURES / "lastfm-to-csv.csv", tmp_path)
    with pytest.raises(CommandError, match=r": no Streaming_History_Audio_\*\.json"):
        run_import("spotify", tmp_path)
