"""Readers for the listening histories listeners can download themselves. Each streams one
source and yields records (`ingest.records`); a malformed record raises `DataFormatError`
(`file:line: reason`, the line where the record starts).

- `spotify`: Spotify's extended streaming history, `Streaming_History_Audio_*.json` (older:
  `endsong_*.json`), each a JSON array of plays: `ts` (when the stream ended, UTC),
  `ms_played`, `master_metadata_track_name`, `master_metadata_album_artist_name`,
  `spotify_track_uri`, `skipped`, `username`, … Rows without a track (podcast episodes,
  audiobooks, unavailable tracks) are skipped. The account-data `StreamingHistory*.json`
  (`endTime`, `artistName`, `trackName`, `msPlayed`) is read too.
- `listenbrainz`: a ListenBrainz export, JSON lines (one listen per line: `listened_at` in
  Unix seconds, `track_metadata` with `artist_name`, `track_name`, `additional_info`,
  `mbid_mapping`), the export zip (`user.json` + `listens/<year>/<month>.jsonl`) or an older
  export's JSON array of listens.
- `lastfm-csv`: a Last.fm scrobble CSV, either with the header
  `uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid` (lastfm.ghan.nl and
  similar exporters) or headerless `artist,album,track,date` (lastfm-to-csv), dates like
  `31 Jan 2021 12:34`. It names no user: pass --user.
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from ingest.records import (
    ArtistRecord,
    EventRecord,
    ImportRecord,
    SkippedRecord,
    TrackRecord,
    event_key,
    musicbrainz_id,
    username_problem,
)
from ingest.sources import Source, first_character, json_array, json_lines
from mltasks.ml.data.parsing import DataFormatError, parse_datetime, read_delimited_rows

PLAY, SKIP = "play", "skip"
# A Spotify stream shorter than this (Spotify's own threshold for counting a stream) or one the
# listener skipped is a skip; anything else a play.
SPOTIFY_MIN_PLAY_MS = 30_000
SPOTIFY_FILES = (
    re.compile(r"(^|/)(Streaming_History_Audio_[^/]*|endsong_[^/]*)\.json$", re.IGNORECASE),
    re.compile(r"(^|/)StreamingHistory(_music_)?\d*\.json$", re.IGNORECASE),
)
LISTENBRAINZ_FILES = (re.compile(r"(^|/)listens/[^/]+(/[^/]+)*\.jsonl$"),)
LASTFM_COLUMNS = ("uts", "utc_time", "artist", "artist_mbid", "album", "album_mbid", "track",
                  "track_mbid")  # fmt: skip
# The largest value of a PostgreSQL integer column (Track.duration_ms); a longer stream (24 days)
# is not a listen either.
MAX_DURATION_MS = MAX_PLAYED_MS = 2**31 - 1
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
)}  # fmt: skip
_LASTFM_DATE = re.compile(
    r"(\d{1,2}) ([A-Za-z]{3})[A-Za-z]* (\d{4}),? (\d{1,2}):(\d{2})(?::(\d{2}))?"
)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _username(candidates: tuple[object, ...], *, fail, what: str) -> str:
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            name = candidate.strip()
            if problem := username_problem(name):
                raise fail(problem)
            return name
    raise fail(f"{what} names no user; pass --user NAME")


# Spotify


def read_spotify(source: Source, *, user: str | None) -> Iterator[ImportRecord]:
    for line, record in json_array(source, description="spotify"):
        yield _spotify_record(record, name=source.name, line=line, user=user)


def _spotify_record(
    record: object, *, name: Path, line: int, user: str | None
) -> EventRecord | SkippedRecord:
    fail = partial(DataFormatError, name, line)
    if not isinstance(record, dict):
        raise fail("expected a JSON object (one stream)")
    if "ts" in record:  # extended streaming history
        time_field, played_field = "ts", "ms_played"
        title = record.get("master_metadata_track_name")
        artist = record.get("master_metadata_album_artist_name")
        uri, skipped = record.get("spotify_track_uri"), record.get("skipped")
        exported_user = record.get("username")
    elif "endTime" in record:  # the account data's StreamingHistory*.json
        time_field, played_field = "endTime", "msPlayed"
        title, artist = record.get("trackName"), record.get("artistName")
        uri = skipped = exported_user = None
    else:
        raise fail('expected a "ts" (extended streaming history) or an "endTime" field')
    ended, played = record[time_field], record.get(played_field)
    try:
        ended_at = parse_datetime(ended) if isinstance(ended, str) else None
    except ValueError:
        ended_at = None
    if ended_at is None:
        raise fail(f"bad {time_field} {ended!r}")
    if isinstance(played, bool) or not isinstance(played, int) or not 0 <= played <= MAX_PLAYED_MS:
        raise fail(f"bad {played_field} {played!r}")
    for field_name, value in (("track", title), ("artist", artist), ("track uri", uri)):
        if value is not None and not isinstance(value, str):
            raise fail(f"bad {field_name} {value!r}")
    if skipped is not None and not isinstance(skipped, bool):
        raise fail(f"bad skipped {skipped!r}")
    if not _text(title) or not _text(artist):
        return SkippedRecord("not a music track (a podcast episode, an audiobook or no metadata)")
    title, artist = title.strip(), artist.strip()
    track_uri = uri if uri and uri.startswith("spotify:track:") and len(uri) <= 100 else None
    username = _username((user, exported_user), fail=fail, what="the stream")
    identity = track_uri or f"{artist}\x1f{title}"
    return EventRecord(
        username=username,
        track=TrackRecord(title=title, artist=ArtistRecord(name=artist), spotify_uri=track_uri),
        kind=SKIP if skipped or played < SPOTIFY_MIN_PLAY_MS else PLAY,
        # `ts` is when the stream ended; a listen is dated when it started, as scrobbles are
        occurred_at=ended_at - timedelta(milliseconds=played),
        idempotency_key=event_key("spotify", ended, identity, str(played)),
    )


# ListenBrainz


def read_listenbrainz(source: Source, *, user: str | None) -> Iterator[ImportRecord]:
    exported_user = _listenbrainz_export_user(source)
    if source.member is None and first_character(source) == "[":
        listens = json_array(source, description="listenbrainz")
    else:
        listens = json_lines(source, description="listenbrainz")
    for line, record in listens:
        yield _listen(record, name=source.name, line=line, user=user, exported_user=exported_user)


def _listenbrainz_export_user(source: Source) -> str | None:
    """The user name in the export's user.json, next to its listens/ folder."""
    try:
        if source.member is not None:
            prefix = source.member.rpartition("listens/")[0]
            with zipfile.ZipFile(source.path) as archive, archive.open(f"{prefix}user.json") as f:
                document = json.load(f)
        else:
            parts = source.path.parts
            if "listens" not in parts:
                return None
            root = Path(*parts[: len(parts) - 1 - parts[::-1].index("listens")])
            document = json.loads((root / "user.json").read_text(encoding="utf-8"))
    except (KeyError, OSError, ValueError):
        return None
    username = document.get("username") if isinstance(document, dict) else None
    return username if isinstance(username, str) and username.strip() else None


def _duration_ms(info: dict) -> int | None:
    for field_name, scale in (("duration_ms", 1), ("duration", 1000)):
        value = info.get(field_name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            duration = value * scale
            if 0 < duration <= MAX_DURATION_MS:
                return int(duration)
    return None


def _listen(
    record: object, *, name: Path, line: int, user: str | None, exported_user: str | None
) -> EventRecord:
    fail = partial(DataFormatError, name, line)
    if not isinstance(record, dict):
        raise fail("expected a JSON object (one listen)")
    listened_at = record.get("listened_at")
    occurred_at = None
    if isinstance(listened_at, int | float) and not isinstance(listened_at, bool):
        with contextlib.suppress(OverflowError, OSError, ValueError):
            occurred_at = datetime.fromtimestamp(listened_at, tz=UTC)
    if occurred_at is None:
        raise fail(f"bad listened_at {listened_at!r} (expected Unix seconds)")
    metadata = record.get("track_metadata")
    if not isinstance(metadata, dict):
        raise fail('expected a "track_metadata" object')
    artist, title = _text(metadata.get("artist_name")), _text(metadata.get("track_name"))
    if not artist or not title:
        raise fail("track_metadata needs artist_name and track_name")
    info = metadata.get("additional_info") or {}
    mapping = metadata.get("mbid_mapping") or {}
    if not isinstance(info, dict) or not isinstance(mapping, dict):
        raise fail("additional_info and mbid_mapping must be objects")
    # the player's own ids first, then ListenBrainz's mapping
    recording = musicbrainz_id(info.get("recording_mbid")) or musicbrainz_id(
        mapping.get("recording_mbid")
    )
    artist_mbids = info.get("artist_mbids") or mapping.get("artist_mbids")
    # one id only: the id of one artist of a credit "A feat. B" would merge the credit into A
    artist_id = (
        musicbrainz_id(artist_mbids[0])
        if isinstance(artist_mbids, list) and len(artist_mbids) == 1
        else None
    )
    msid = metadata.get("recording_msid") or info.get("recording_msid")
    username = _username(
        (user, record.get("user_name"), exported_user), fail=fail, what="the listen"
    )
    return EventRecord(
        username=username,
        track=TrackRecord(
            title=title,
            artist=ArtistRecord(name=artist, musicbrainz_id=artist_id),
            musicbrainz_id=recording,
            duration_ms=_duration_ms(info),
        ),
        kind=PLAY,
        occurred_at=occurred_at,
        idempotency_key=event_key(
            "listenbrainz",
            occurred_at.isoformat(),
            msid if isinstance(msid, str) and msid else f"{artist}\x1f{title}",
        ),
    )


# Last.fm


def lastfm_date(text: str) -> datetime:
    """A Last.fm export date: "31 Jan 2021 12:34" or "31 Jan 2021, 12:34" (UTC), ISO 8601 or
    Unix seconds. Raises ValueError."""
    match = _LASTFM_DATE.fullmatch(text.strip())
    if match is None:
        return parse_datetime(text)
    day, month, year, hour, minute, second = match.groups()
    if month.lower() not in _MONTHS:
        raise ValueError(f"unknown month {month!r}")
    return datetime(
        int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute), int(second or 0),
        tzinfo=UTC,
    )  # fmt: skip


def read_lastfm_csv(source: Source, *, user: str | None) -> Iterator[ImportRecord]:
    if not user:
        raise DataFormatError(source.name, None, "a Last.fm CSV names no user; pass --user NAME")
    rows = read_delimited_rows(
        source.path, delimiter=",", encoding="utf-8-sig", progress="lastfm-csv"
    )
    columns: dict[str, int] | None = None
    for line, fields in rows:
        fail = partial(DataFormatError, source.name, line)
        if columns is None:
            names = [field.strip().lower() for field in fields]
            if "artist" in names and "track" in names:
                if "uts" not in names and "utc_time" not in names:
                    raise fail("the header has neither a uts nor a utc_time column")
                columns = {name: index for index, name in enumerate(names)}
                continue
            if len(fields) != 4:
                raise fail(
                    f"expected the header {','.join(LASTFM_COLUMNS)} or 4 fields "
                    f"artist,album,track,date, got {len(fields)} fields"
                )
            columns = {"artist": 0, "album": 1, "track": 2, "utc_time": 3}
        if len(fields) != len(columns):
            raise fail(f"expected {len(columns)} fields, got {len(fields)}")
        yield _scrobble(fields, columns=columns, user=user, fail=fail)


def _scrobble(fields: list[str], *, columns: dict[str, int], user: str, fail) -> ImportRecord:
    def cell(name: str) -> str:
        return fields[columns[name]].strip() if name in columns else ""

    artist, title = cell("artist"), cell("track")
    if not artist or not title:
        raise fail("empty artist or track")
    uts, date = cell("uts"), cell("utc_time")
    if not uts and not date:
        return SkippedRecord("a scrobble without a date (playing now)")
    try:
        occurred_at = parse_datetime(uts) if uts else lastfm_date(date)
    except ValueError:
        raise fail(f"bad uts {uts!r}" if uts else f"bad date {date!r}") from None
    return EventRecord(
        username=user,
        track=TrackRecord(
            title=title,
            artist=ArtistRecord(name=artist, musicbrainz_id=musicbrainz_id(cell("artist_mbid"))),
            musicbrainz_id=musicbrainz_id(cell("track_mbid")),
        ),
        kind=PLAY,
        occurred_at=occurred_at,
        idempotency_key=event_key("lastfm", occurred_at.isoformat(), artist, title),
    )
