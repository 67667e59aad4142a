"""Loaders for playlist / session continuation data, returning plain arrays.

Every loader returns a `SequenceEvents`: parallel arrays of (sequence id, item id, timestamp
[, artist id]) in the order the events happened inside each sequence. Ids stay the original
strings so that top-K dumps can be written back in the dataset's own ids. Timestamps are
seconds since the Unix epoch (UTC) as float64, NaN where the dataset has none.

Formats (`load_sequence_dataset(name=..., path=...)`):
- `hetrec-lastfm-2k-tags`: user_taggedartists.dat read as each user's artists ordered by the
  date they tagged them (year, month, day; ties broken by the file's order), each artist once at
  its first date. The item is the artist, so the artist id equals the item id.
- `csv`: `user,track,artist,timestamp,event` (header optional). Rows whose event is one of
  `NEGATIVE_EVENTS` (skips, dislikes) are dropped; the rest are listening events of a user, to
  be cut into sessions (`needs_sessionization=True`).
- `mpd`: a Spotify Million Playlist Dataset slice (a JSON file, or a folder of them); one
  sequence per playlist, tracks by `pos`, no timestamps.
- `presplit`: a folder with train.txt (`user item item ...`, items in time order), valid.txt and
  test.txt (`user target`); `roles` marks each event as training / validation / test target so
  that `sequences.presplit_split` reproduces that split exactly.

Malformed input raises parsing.DataFormatError (a ValueError) naming the file, the line and the
reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mltasks.ml.data.parsing import (
    WHITESPACE,
    DataFormatError,
    parse_json,
    parse_timestamp,
    read_delimited_rows,
)

DATASETS = ("hetrec-lastfm-2k-tags", "csv", "mpd", "presplit")
NEGATIVE_EVENTS = frozenset({"skip", "dislike", "ban", "remove"})
CSV_COLUMNS = ("user", "track", "artist", "timestamp", "event")
HETREC_TAG_COLUMNS = ("userID", "artistID", "tagID", "day", "month", "year")

ROLE_TRAIN, ROLE_VALID, ROLE_TEST = 0, 1, 2


@dataclass
class SequenceEvents:
    """Events of many sequences as parallel arrays, grouped by sequence, in time order."""

    sequence_ids: np.ndarray  # str, one per event
    item_ids: np.ndarray  # str
    timestamps: np.ndarray  # float64 seconds since epoch (UTC), NaN = absent
    artist_ids: np.ndarray | None = None  # str, "" = unknown
    has_time_of_day: bool = True  # False when timestamps are dates only (hour is meaningless)
    needs_sessionization: bool = False  # True when sequence ids are users to cut into sessions
    roles: np.ndarray | None = None  # int8 ROLE_* per event, only for pre-split data
    name: str = ""

    def __post_init__(self) -> None:
        n_events = len(self.item_ids)
        columns = {"sequence_ids": self.sequence_ids, "timestamps": self.timestamps}
        if self.artist_ids is not None:
            columns["artist_ids"] = self.artist_ids
        if self.roles is not None:
            columns["roles"] = self.roles
        for column_name, column in columns.items():
            if len(column) != n_events:
                raise ValueError(f"{column_name} has {len(column)} entries, item_ids {n_events}")

    def __len__(self) -> int:
        return len(self.item_ids)


def _str_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.array([], dtype="<U1")


def load_hetrec_tag_sequences(path: str | Path) -> SequenceEvents:
    """Each user's artists in the order they first tagged them (see module docstring)."""
    path = Path(path)
    if path.is_dir():
        path = path / "user_taggedartists.dat"
    first_seen: dict[tuple[str, str], int] = {}
    users: list[str] = []
    artists: list[str] = []
    dates: list[tuple[int, int, int]] = []
    rows = read_delimited_rows(path, delimiter="\t", n_columns=6, header=HETREC_TAG_COLUMNS)
    for line_number, fields in rows:
        try:
            user, artist, _tag, day, month, year = (int(field) for field in fields)
            dt.date(year, month, day)
        except ValueError as exc:
            raise DataFormatError(path, line_number, f"bad integer or date ({exc})") from None
        key = (str(user), str(artist))
        date = (year, month, day)
        if key in first_seen:
            index = first_seen[key]
            if date < dates[index]:  # keep the artist's first date
                dates[index] = date
            continue
        first_seen[key] = len(users)
        users.append(key[0])
        artists.append(key[1])
        dates.append(date)
    user_order: dict[str, int] = {}
    for user in users:
        user_order.setdefault(user, len(user_order))
    # Stable sort by (user, date): ties keep the file's order.
    order = sorted(range(len(users)), key=lambda i: (user_order[users[i]], dates[i]))
    timestamps = np.array(
        [dt.datetime(*dates[i], tzinfo=dt.UTC).timestamp() for i in order], dtype=np.float64
    )
    item_ids = _str_array([artists[i] for i in order])
    return SequenceEvents(
        sequence_ids=_str_array([users[i] for i in order]),
        item_ids=item_ids,
        timestamps=timestamps,
        artist_ids=item_ids.copy(),
        has_time_of_day=False,
        name="hetrec-lastfm-2k-tags",
    )


def load_csv_events(path: str | Path) -> SequenceEvents:
    """Listening events `user,track,artist,timestamp,event`; negative events are dropped."""
    path = Path(path)
    users: list[str] = []
    tracks: list[str] = []
    artists: list[str] = []
    timestamps: list[float] = []
    rows = read_delimited_rows(
        path,
        delimiter=",",
        n_columns=len(CSV_COLUMNS),
        layout=f"{len(CSV_COLUMNS)} columns ({','.join(CSV_COLUMNS)})",
        header=CSV_COLUMNS,
        header_optional=True,
    )
    for line_number, row in rows:
        user, track, artist, timestamp, event = (field.strip() for field in row)
        if not user or not track:
            raise DataFormatError(path, line_number, "user and track must not be empty")
        try:
            seconds = parse_timestamp(timestamp)
        except ValueError:
            raise DataFormatError(path, line_number, f"bad timestamp {timestamp!r}") from None
        if event.lower() in NEGATIVE_EVENTS:
            continue
        users.append(user)
        tracks.append(track)
        artists.append(artist)
        timestamps.append(seconds)
    return SequenceEvents(
        sequence_ids=_str_array(users),
        item_ids=_str_array(tracks),
        timestamps=np.array(timestamps, dtype=np.float64),
        artist_ids=_str_array(artists),
        has_time_of_day=True,
        needs_sessionization=True,
        name="csv",
    )


def _mpd_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise DataFormatError(path, None, "no *.json files in this folder")
        return files
    return [path]


def load_mpd_playlists(path: str | Path) -> SequenceEvents:
    """Million Playlist Dataset slices: one sequence per playlist, tracks ordered by `pos`."""
    playlist_ids: list[str] = []
    track_uris: list[str] = []
    artist_uris: list[str] = []
    for file_path in _mpd_files(Path(path)):
        text = file_path.read_text(encoding="utf-8")
        document = parse_json(text, path=file_path)
        if not isinstance(document, dict) or not isinstance(document.get("playlists"), list):
            raise DataFormatError(file_path, 1, 'expected an object with a "playlists" list')
        for index, playlist in enumerate(document["playlists"]):
            where = f"playlists[{index}]"
            if not isinstance(playlist, dict) or "pid" not in playlist:
                raise DataFormatError(file_path, _mpd_line(text, index), f'{where} has no "pid"')
            tracks = playlist.get("tracks")
            if not isinstance(tracks, list):
                raise DataFormatError(
                    file_path,
                    _mpd_line(text, index),
                    f'{where} (pid {playlist["pid"]}): no "tracks" list',
                )
            rows = []
            for track_index, track in enumerate(tracks):
                try:
                    rows.append(
                        (int(track["pos"]), str(track["track_uri"]), str(track["artist_uri"]))
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise DataFormatError(
                        file_path,
                        _mpd_line(text, index),
                        f"{where} (pid {playlist['pid']}) tracks[{track_index}]: "
                        f"missing or bad field {exc}",
                    ) from None
            positions = [row[0] for row in rows]
            if len(set(positions)) != len(positions):
                raise DataFormatError(
                    file_path,
                    _mpd_line(text, index),
                    f"{where} (pid {playlist['pid']}): duplicate pos",
                )
            for _pos, track_uri, artist_uri in sorted(rows):
                playlist_ids.append(str(playlist["pid"]))
                track_uris.append(track_uri)
                artist_uris.append(artist_uri)
    return SequenceEvents(
        sequence_ids=_str_array(playlist_ids),
        item_ids=_str_array(track_uris),
        timestamps=np.full(len(track_uris), np.nan),
        artist_ids=_str_array(artist_uris),
        has_time_of_day=False,
        name="mpd",
    )


def _mpd_line(text: str, playlist_index: int) -> int | None:
    """Best-effort line number of the playlist_index-th `"pid"` key in the raw JSON text."""
    position = -1
    for _ in range(playlist_index + 1):
        position = text.find('"pid"', position + 1)
        if position < 0:
            return None
    return text.count("\n", 0, position) + 1


def load_presplit(path: str | Path) -> SequenceEvents:
    """train.txt / valid.txt / test.txt; roles reproduce the given split exactly."""
    folder = Path(path)
    sequences: dict[str, list[tuple[str, int]]] = {}
    train_path = folder / "train.txt"
    train_rows = read_delimited_rows(
        train_path, delimiter=WHITESPACE, min_columns=2, layout="`user item [item ...]`"
    )
    for line_number, fields in train_rows:
        if fields[0] in sequences:
            raise DataFormatError(train_path, line_number, f"user {fields[0]} appears twice")
        sequences[fields[0]] = [(item, ROLE_TRAIN) for item in fields[1:]]
    for role, file_name in ((ROLE_VALID, "valid.txt"), (ROLE_TEST, "test.txt")):
        target_path = folder / file_name
        seen: set[str] = set()
        target_rows = read_delimited_rows(
            target_path, delimiter=WHITESPACE, n_columns=2, layout="`user target`"
        )
        for line_number, (user, target) in target_rows:
            if user not in sequences:
                raise DataFormatError(target_path, line_number, f"user {user} is not in train.txt")
            if user in seen:
                raise DataFormatError(target_path, line_number, f"user {user} appears twice")
            seen.add(user)
            sequences[user].append((target, role))
    for user, events in sequences.items():
        roles = [role for _, role in events]
        if roles != sorted(roles):  # pragma: no cover - guaranteed by the reading order
            raise DataFormatError(folder, None, f"user {user}: roles out of order")
        if ROLE_TEST in roles and ROLE_VALID not in roles:
            raise DataFormatError(
                folder / "valid.txt",
                None,
                f"user {user} has a test target but no validation target",
            )
    sequence_ids = [user for user, events in sequences.items() for _ in events]
    item_ids = [item for events in sequences.values() for item, _ in events]
    roles = [role for events in sequences.values() for _, role in events]
    return SequenceEvents(
        sequence_ids=_str_array(sequence_ids),
        item_ids=_str_array(item_ids),
        timestamps=np.full(len(item_ids), np.nan),
        artist_ids=None,
        has_time_of_day=False,
        roles=np.array(roles, dtype=np.int8),
        name="presplit",
    )


def load_sequence_dataset(*, name: str, path: str | Path) -> SequenceEvents:
    """Dispatch on the dataset name (one of DATASETS)."""
    loaders = {
        "hetrec-lastfm-2k-tags": load_hetrec_tag_sequences,
        "csv": load_csv_events,
        "mpd": load_mpd_playlists,
        "presplit": load_presplit,
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return loaders[name](path)
