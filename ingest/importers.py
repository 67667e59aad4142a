"""Readers for outside datasets. Each reads a whole file into plain records, validating every
line first, so a malformed file stops with its path, line and reason before anything is
written; `ingest.services.dataset_import` then writes the records in one transaction. Lines,
fields, timestamps and the `path:line: reason` errors (`DataFormatError`) are parsed by
`mltasks.ml.data.parsing`, as in the ML core's dataset readers.

Formats:
- `lastfm-1k`: the Last.fm 1K listening log, TSV without header:
  user, timestamp (ISO 8601), artist MusicBrainz id, artist name, track MusicBrainz id, track name
- `mpd`: a Spotify Million Playlist Dataset slice: {"playlists": [{"pid", "name", "tracks":
  [{"pos", "track_uri", "track_name", "artist_uri", "artist_name", "duration_ms"?}]}]}
- `csv`: header `user,track,artist,timestamp,event`; timestamp ISO 8601 or Unix seconds;
  event one of play / like / skip / dislike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from mltasks.ml.data.parsing import DataFormatError, parse_datetime, parse_json, read_delimited_rows

EVENT_KINDS = ("play", "like", "skip", "dislike")
FORMATS = ("lastfm-1k", "mpd", "csv")
CSV_COLUMNS = ("user", "track", "artist", "timestamp", "event")


@dataclass(frozen=True)
class ArtistRecord:
    name: str
    musicbrainz_id: str | None = None
    spotify_uri: str | None = None


@dataclass(frozen=True)
class TrackRecord:
    title: str
    artist: ArtistRecord
    musicbrainz_id: str | None = None
    spotify_uri: str | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class EventRecord:
    username: str
    track: TrackRecord
    kind: str
    occurred_at: datetime
    idempotency_key: str


@dataclass(frozen=True)
class PlaylistRecord:
    external_id: str
    name: str
    tracks: list[TrackRecord]


@dataclass
class ImportBatch:
    events: list[EventRecord] = field(default_factory=list)
    playlists: list[PlaylistRecord] = field(default_factory=list)


def _key(prefix: str, *parts: str) -> str:
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()
    return f"{prefix}:{digest}"


def _occurred_at(timestamp: str, *, path: Path, line_number: int) -> datetime:
    try:
        return parse_datetime(timestamp)
    except ValueError:
        raise DataFormatError(path, line_number, f"bad timestamp {timestamp!r}") from None


def read_lastfm_1k(path: Path) -> ImportBatch:
    batch = ImportBatch()
    rows = read_delimited_rows(path, delimiter="\t", n_columns=6, progress="lastfm-1k")
    for line_number, fields in rows:
        user, timestamp, artist_mbid, artist_name, track_mbid, track_name = (
            f.strip() for f in fields
        )
        if not user:
            raise DataFormatError(path, line_number, "empty user")
        if not artist_name or not track_name:
            raise DataFormatError(path, line_number, "empty artist or track name")
        occurred_at = _occurred_at(timestamp, path=path, line_number=line_number)
        artist = ArtistRecord(name=artist_name, musicbrainz_id=artist_mbid or None)
        track = TrackRecord(title=track_name, artist=artist, musicbrainz_id=track_mbid or None)
        batch.events.append(
            EventRecord(
                username=user,
                track=track,
                kind="play",
                occurred_at=occurred_at,
                idempotency_key=_key("lastfm-1k", "\t".join(fields)),
            )
        )
    return batch


def read_mpd(path: Path) -> ImportBatch:
    document = parse_json(path.read_text(encoding="utf-8"), path=path)
    playlists = document.get("playlists") if isinstance(document, dict) else None
    if not isinstance(playlists, list):
        raise DataFormatError(path, None, 'expected an object with a "playlists" list')
    batch = ImportBatch()
    for index, playlist in enumerate(tqdm(playlists, desc="mpd", unit=" playlists", leave=False)):
        where = f"playlists[{index}]"
        if not isinstance(playlist, dict) or "pid" not in playlist or "tracks" not in playlist:
            raise DataFormatError(path, None, f'{where}: needs "pid" and "tracks"')
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
                    duration_ms=int(duration) if isinstance(duration, int | float) else None,
                )
            )
        batch.playlists.append(
            PlaylistRecord(
                external_id=f"mpd:{playlist['pid']}",
                name=str(playlist.get("name") or f"Playlist {playlist['pid']}")[:200],
                tracks=tracks,
            )
        )
    return batch


def read_csv(path: Path) -> ImportBatch:
    batch = ImportBatch()
    rows = read_delimited_rows(
        path, delimiter=",", n_columns=len(CSV_COLUMNS), header=CSV_COLUMNS, progress="csv"
    )
    for line_number, row in rows:
        user, title, artist_name, timestamp, event = (cell.strip() for cell in row)
        if not user or not title or not artist_name:
            raise DataFormatError(path, line_number, "empty user, track or artist")
        if event not in EVENT_KINDS:
            raise DataFormatError(
                path,
                line_number,
                f"unknown event {event!r} (expected {', '.join(EVENT_KINDS)})",
            )
        occurred_at = _occurred_at(timestamp, path=path, line_number=line_number)
        track = TrackRecord(title=title, artist=ArtistRecord(name=artist_name))
        batch.events.append(
            EventRecord(
                username=user,
                track=track,
                kind=event,
                occurred_at=occurred_at,
                idempotency_key=_key("csv", user, title, artist_name, timestamp, event),
            )
        )
    return batch


def read_dataset(*, dataset_format: str, path: Path) -> ImportBatch:
    readers = {"lastfm-1k": read_lastfm_1k, "mpd": read_mpd, "csv": read_csv}
    if dataset_format not in readers:
        raise ValueError(f"unknown format {dataset_format!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataFormatError(path, None, "no such file")
    return readers[dataset_format](path)
