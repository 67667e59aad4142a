"""Title, artist and tag names of every track, kept in each web process to render lists.

A ranking is a list of track ids; on a cache miss, reading the three fields of its page from
the database cost more than the ranking itself. Each process keeps a snapshot of them (taken
when a web worker starts, tunedin/gunicorn.conf.py), taken again when it is older than
CACHE_TTL_SECONDS (the staleness that cached pages already have); tracks added since the
snapshot are read from the database. About 100 bytes a track.

Only a process's first snapshot is taken by the request that needs it. Later ones are taken by
a background thread while requests go on reading the previous one: at 100,000 tracks a snapshot
takes about 3 s, which a request paid every CACHE_TTL_SECONDS in each worker before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connections

from catalog.models import Track, TrackTag


@dataclass(frozen=True)
class TrackCard:
    title: str
    artist: str
    tags: tuple[str, ...]  # tag names in alphabetical order


logger = logging.getLogger(__name__)

_lock = threading.Lock()
_snapshot: dict[int, TrackCard] = {}
_taken_at: float | None = None
_generation = 0  # bumped by forget(): a refresh started before it must not install its snapshot
_refresher: threading.Thread | None = None


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
    global _snapshot, _taken_at, _refresher
    with _lock:
        if _taken_at is None:
            _snapshot, _taken_at = _read(None), time.monotonic()
        elif time.monotonic() - _taken_at > settings.CACHE_TTL_SECONDS and _refresher is None:
            _refresher = threading.Thread(
                target=_refresh, args=(_generation,), name="track-cards-refresh", daemon=True
            )
            _refresher.start()
        return _snapshot


def _refresh(generation: int) -> None:
    """Take a new snapshot in the background; the old one serves until it is in place."""
    global _snapshot, _taken_at, _refresher
    cards = None
    try:
        cards = _read(None)
    except Exception:  # the database is away: the old snapshot serves another CACHE_TTL_SECONDS
        logger.warning("track cards not refreshed; the previous snapshot stays", exc_info=True)
    finally:
        connections.close_all()  # this thread's own connections
        with _lock:
            if generation == _generation:
                if cards is not None:
                    _snapshot = cards
                _taken_at, _refresher = time.monotonic(), None


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
    global _snapshot, _taken_at, _generation, _refresher
    with _lock:
        _snapshot, _taken_at = {}, None
        _generation += 1
        _refresher = None


def wait_for_refresh(timeout: float = 30.0) -> None:
    """Return once a background refresh in progress (if any) has finished."""
    refresher = _refresher
    if refresher is not None:
        refresher.join(timeout)
