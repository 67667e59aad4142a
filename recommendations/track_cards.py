"""Title, artist and tag names of every track, kept in each web process to render lists.

A ranking is a list of track ids; on a cache miss, reading the three fields of its page from
the database cost more than the ranking itself. Each process keeps a snapshot of them, taken
again when it is older than CACHE_TTL_SECONDS (the staleness that cached pages already have);
tracks added since the snapshot are read from the database. About 100 bytes a track.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from catalog.models import Track, TrackTag


@dataclass(frozen=True)
class TrackCard:
    title: str
    artist: str
    tags: tuple[str, ...]  # tag names in alphabetical order


_lock = threading.Lock()
_snapshot: dict[int, TrackCard] = {}
_taken_at: float | None = None


def _read(track_ids: list[int] | None) -> dict[int, TrackCard]:
    """Cards of `track_ids` (every track when None), two queries."""
    tracks, links = Track.objects.all(), TrackTag.objects.all()
    if track_ids is not None:
        tracks, links = tracks.filter(pk__in=track_ids), links.filter(track_id__in=track_ids)
    tags: dict[int, list[str]] = defaultdict(list)
    for track_id, name in links.order_by("tag__name").values_list("track_id", "tag__name"):
        tags[track_id].append(name)
    return {
        pk: TrackCard(title=title, artist=artist, tags=tuple(tags.get(pk, ())))
        for pk, title, artist in tracks.values_list("pk", "title", "artist__name").iterator()
    }


def _current() -> dict[int, TrackCard]:
    global _snapshot, _taken_at
    with _lock:
        now = time.monotonic()
        if _taken_at is None or now - _taken_at > settings.CACHE_TTL_SECONDS:
            _snapshot, _taken_at = _read(None), now
        return _snapshot


def track_cards(track_ids: Iterable[int]) -> dict[int, TrackCard]:
    """{track id: card} for the ids that exist (unknown ids are left out)."""
    track_ids = list(track_ids)
    snapshot = _current()
    cards = {t: snapshot[t] for t in track_ids if t in snapshot}
    if missing := [t for t in track_ids if t not in snapshot]:
        cards |= _read(missing)
    return cards


def forget() -> None:
    """Drop this process's snapshot (tests; the next call takes a new one)."""
    global _snapshot, _taken_at
    with _lock:
        _snapshot, _taken_at = {}, None
