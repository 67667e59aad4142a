"""The plain records every reader yields and `ingest.services.dataset_import` writes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

# Django's username column.
MAX_USERNAME_LENGTH = 150
UUID_PATTERN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)


class ImportOptionError(ValueError):
    """A command-line option that does not fit the dataset (e.g. a missing --user)."""


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
    occurred_at: datetime  # aware
    idempotency_key: str


@dataclass(frozen=True)
class PlaylistRecord:
    external_id: str
    name: str
    tracks: list[TrackRecord]


@dataclass(frozen=True)
class SkippedRecord:
    """A row that is valid but not a listening event we keep (a podcast episode, say)."""

    reason: str


ImportRecord = EventRecord | PlaylistRecord | SkippedRecord


def event_key(prefix: str, *parts: str) -> str:
    """An idempotency key for an imported event, stable across re-imports of the same row."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()
    return f"{prefix}:{digest}"


def musicbrainz_id(value: object) -> str | None:
    """A MusicBrainz id when `value` is one (lower-cased), else None: optional ids that
    players fill in wrongly are dropped rather than failing the import."""
    if isinstance(value, str) and UUID_PATTERN.fullmatch(value.strip()):
        return value.strip().lower()
    return None


def username_problem(name: str) -> str | None:
    """Why an import cannot create a user of this name, or None."""
    if not name:
        return "the user name is empty"
    if len(name) > MAX_USERNAME_LENGTH:
        return f"the user name is longer than {MAX_USERNAME_LENGTH} characters"
    if "\x00" in name:
        return "the user name contains a NUL character"
    return None


def checked_username(name: str) -> str:
    """The --user option's name, stripped, or ImportOptionError."""
    name = name.strip()
    if problem := username_problem(name):
        raise ImportOptionError(f"--user: {problem}")
    return name
