"""Readers for outside datasets. Each streams its files into plain records (`ingest.records`)
and raises `DataFormatError` (`path:line: reason`) at the first malformed line;
`ingest.services.dataset_import` writes the records as they come, in one transaction, so a
malformed file leaves nothing written. Lines, fields, timestamps and the errors are parsed by
`mltasks.ml.data.parsing`, as in the ML core's dataset readers.

Formats (a path may be a file; for mpd, spotify and listenbrainz also a directory or a zip
archive holding the export's files):
- `lastfm-1k`: the Last.fm 1K listening log, TSV without header:
  user, timestamp (ISO 8601), artist MusicBrainz id, artist name, track MusicBrainz id, track name
- `mpd`: Spotify Million Playlist Dataset slices: {"playlists": [{"pid", "name", "tracks":
  [{"pos", "track_uri", "track_name", "artist_uri", "artist_name", "duration_ms"?}]}]}
- `csv`: header `user,track,artist,timestamp,event`; timestamp ISO 8601 or Unix seconds;
  event one of play / like / skip / dislike.
- `spotify`, `listenbrainz`, `lastfm-csv`: listeners' own exports, see `ingest.exports`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from tqdm import tqdm

from ingest.exports import (
    LISTENBRAINZ_FILES,
    SPOTIFY_FILES,
    read_lastfm_csv,
    read_listenbrainz,
    read_spotify,
)
from ingest.records import (
    ArtistRecord,
    EventRecord,
    ImportOptionError,
    ImportRecord,
    PlaylistRecord,
    TrackRecord,
    checked_username,
    event_key,
    musicbrainz_id,
    username_problem,
)
from ingest.sources import Source, file_source, sources_at
from mltasks.ml.data.parsing import DataFormatError, parse_datetime, parse_json, read_delimited_rows

EVENT_KINDS = ("play", "like", "skip", "dislike")
CSV_COLUMNS = ("user", "track", "artist", "timestamp", "event")
MPD_FILES = (re.compile(r"(^|/)mpd\.slice\.[^/]*\.json$"),)


def _occurred_at(timestamp: str, *, path: Path, line_number: int) -> datetime:
    try:
        return parse_datetime(timestamp)
    except ValueError:
        raise DataFormatError(path, line_number, f"bad timestamp {timestamp!r}") from None


def read_lastfm_1k(source: Source, *, user: str | None = None) -> Iterator[ImportRecord]:
    rows = read_delimited_rows(source.path, delimiter="\t", n_columns=6, progress="lastfm-1k")
    for line_number, fields in rows:
        username, timestamp, artist_mbid, artist_name, track_mbid, track_name = (
            f.strip() for f in fields
        )
        if not username:
            raise DataFormatError(source.name, line_number, "empty user")
        if problem := username_problem(username):
            raise DataFormatError(source.name, line_number, problem)
        if not artist_name or not track_name:
            raise DataFormatError(source.name, line_number, "empty artist or track name")
        occurred_at = _occurred_at(timestamp, path=source.name, line_number=line_number)
        artist = ArtistRecord(name=artist_name, musicbrainz_id=musicbrainz_id(artist_mbid))
        yield EventRecord(
            username=username,
            track=TrackRecord(
                title=track_name, artist=artist, musicbrainz_id=musicbrainz_id(track_mbid)
            ),
            kind="play",
            occurred_at=occurred_at,
            idempotency_key=event_key("lastfm-1k", "\t".join(fields)),
        )


def read_mpd(source: Source, *, user: str | None = None) -> Iterator[ImportRecord]:
    # One slice is a single JSON object of at most 1,000 playlists: read whole.
    with source.open() as handle:
        document = parse_json(handle.read().decode("utf-8"), path=source.name)
    playlists = document.get("playlists") if isinstance(document, dict) else None
    if not isinstance(playlists, list):
        raise DataFormatError(source.name, None, 'expected an object with a "playlists" list')
    for index, playlist in enumerate(tqdm(playlists, desc="mpd", unit=" playlists", leave=False)):
        yield _mpd_playlist(playlist, where=f"playlists[{index}]", path=source.name)


def _mpd_playlist(playlist: object, *, where: str, path: Path) -> PlaylistRecord:
    if not isinstance(playlist, dict) or "pid" not in playlist or "tracks" not in playlist:
        raise DataFormatError(path, None, f'{where}: needs "pid" and "tracks"')
    if not isinstance(playlist["tracks"], list):
        raise DataFormatError(path, None, f'{where}: "tracks" must be a list')
    tracks = []
    ordered = sorted(
        playlist["tracks"], key=lambda t: t.get("pos", 0) if isinstance(t, dict) else 0
    )
    for position, item in enumerate(ordered):
        required = ("track_uri", "track_name", "artist_uri", "artist_name")
        if not isinstance(item, dict) or any(not item.get(k) for k in required):
            raise DataFormatError(
                path, None, f"{where}.tracks[{position}]: needs {', '.join(required)}"
            )
        artist = ArtistRecord(name=item["artist_name"], spotify_uri=item["artist_uri"])
        duration = item.get("duration_ms")
        tracks.append(
            TrackRecord(
                title=item["track_name"],
                artist=artist,
                spotify_uri=item["track_uri"],
                duration_ms=int(duration)
                if isinstance(duration, int | float) and 0 < duration < 2**31
                else None,
            )
        )
    return PlaylistRecord(
        external_id=f"mpd:{playlist['pid']}",
        name=str(playlist.get("name") or f"Playlist {playlist['pid']}")[:200],
        tracks=tracks,
    )


def read_csv(source: Source, *, user: str | None = None) -> Iterator[ImportRecord]:
    rows = read_delimited_rows(
        source.path, delimiter=",", n_columns=len(CSV_COLUMNS), header=CSV_COLUMNS, progress="csv"
    )
    for line_number, row in rows:
        username, title, artist_name, timestamp, event = (cell.strip() for cell in row)
        if not username or not title or not artist_name:
            raise DataFormatError(source.name, line_number, "empty user, track or artist")
        if problem := username_problem(username):
            raise DataFormatError(source.name, line_number, problem)
        if event not in EVENT_KINDS:
            raise DataFormatError(
                source.name,
                line_number,
                f"unknown event {event!r} (expected {', '.join(EVENT_KINDS)})",
            )
        occurred_at = _occurred_at(timestamp, path=source.name, line_number=line_number)
        yield EventRecord(
            username=username,
            track=TrackRecord(title=title, artist=ArtistRecord(name=artist_name)),
            kind=event,
            occurred_at=occurred_at,
            idempotency_key=event_key("csv", username, title, artist_name, timestamp, event),
        )


@dataclass(frozen=True)
class DatasetFormat:
    sources: Callable[[Path], list[Source]]
    read: Callable[..., Iterator[ImportRecord]]
    # "none": the file names its users; "required": only --user does; "optional": --user
    # names the listener when the export does not (and overrides it when it does)
    user: str = "none"


DATASET_FORMATS: dict[str, DatasetFormat] = {
    "lastfm-1k": DatasetFormat(sources=file_source, read=read_lastfm_1k),
    "mpd": DatasetFormat(
        sources=partial(sources_at, patterns=MPD_FILES, expected="mpd.slice.*.json"),
        read=read_mpd,
    ),
    "csv": DatasetFormat(sources=file_source, read=read_csv),
    "spotify": DatasetFormat(
        sources=partial(
            sources_at,
            patterns=SPOTIFY_FILES,
            expected="Streaming_History_Audio_*.json, endsong_*.json or StreamingHistory*.json",
        ),
        read=read_spotify,
        user="optional",
    ),
    "listenbrainz": DatasetFormat(
        sources=partial(sources_at, patterns=LISTENBRAINZ_FILES, expected="listens/*.jsonl"),
        read=read_listenbrainz,
        user="optional",
    ),
    "lastfm-csv": DatasetFormat(sources=file_source, read=read_lastfm_csv, user="required"),
}
FORMATS = tuple(DATASET_FORMATS)


def read_dataset(
    *, dataset_format: str, paths: Sequence[Path], user: str | None = None
) -> Iterator[ImportRecord]:
    """The records of every file the paths name, streamed in order. The paths and options are
    checked now (ImportOptionError, DataFormatError for a missing file); the records' own
    errors surface while they are read."""
    if dataset_format not in DATASET_FORMATS:
        raise ValueError(f"unknown format {dataset_format!r}; expected one of {', '.join(FORMATS)}")
    spec = DATASET_FORMATS[dataset_format]
    if user is not None:
        user = checked_username(user)
        if spec.user == "none":
            raise ImportOptionError(
                f"--user does not apply to {dataset_format}: it names its users"
            )
    elif spec.user == "required":
        raise ImportOptionError(f"{dataset_format} names no user: pass --user NAME")
    sources = [source for path in paths for source in spec.sources(Path(path))]
    return _records(spec, sources, user)


def _records(spec: DatasetFormat, sources: list[Source], user: str | None):
    for source in sources:
        yield from spec.read(source, user=user)
