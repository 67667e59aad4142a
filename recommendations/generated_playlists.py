"""Generated playlists: "Weekly Exploration" and "Daily Jams" for every active listener, as
ListenBrainz's troi builds them.

- Weekly Exploration: PLAYLIST_LENGTH tracks the listener never played, liked, skipped or
  disliked, from the top of their recommendations.
- Daily Jams: tracks they liked or played but have not played for JAMS_UNPLAYED_DAYS, the ones
  they played most first, alternating with recommendations closest to those tracks (by the
  active recommender's item vectors; in ranking order without one).

Both hold at most MAX_PER_ARTIST tracks of an artist, never a track the listener asked not to
be recommended, and are replaced on each run (playlists.services.generated_playlists_replace).
Listeners are processed BATCH_SIZE at a time: their events, marks and playlists are read and
written in a few queries per batch, and each batch is logged with the progress so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import zip_longest

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import F, Max, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from feedback.models import Interaction
from feedback.selectors import BlockedTracks, do_not_recommend_blocked
from mltasks.models import ModelVersion
from playlists.models import Playlist
from playlists.selectors import generated_playlist_track_ids
from playlists.services import generated_playlists_replace
from recommendations.retrieval import retrieval_backend
from recommendations.selectors import (
    HISTORY_LIMIT,
    UserHistory,
    history_from_events,
    recommendation_ranking,
    track_artists,
)
from recommendations.serving import VectorState, active_state

logger = logging.getLogger(__name__)

ACTIVE_DAYS = 30  # a listener with an event in the log's last 30 days is active
PLAYLIST_LENGTH = 50
MAX_PER_ARTIST = 2
JAMS_UNPLAYED_DAYS = 60
BATCH_SIZE = 200  # listeners per batch: about 200 x 150 events read, 200 x 100 entries written
KINDS = tuple(Playlist.Generated.values)
# Exact scoring in memory: a batch job should not queue on the index or the database.
BACKEND = "exact"


@dataclass(frozen=True)
class Listener:
    user: object
    history: UserHistory
    last_played: dict[int, datetime]  # track id -> the listener's latest play or like of it


def active_listener_ids(*, days: int = ACTIVE_DAYS) -> list[int]:
    """Users with an event in the `days` before the newest event of the log (not before now,
    so an imported or demo log keeps its listeners however old it is)."""
    newest = Interaction.objects.aggregate(at=Max("occurred_at"))["at"]
    if newest is None:
        return []
    return list(
        Interaction.objects.filter(occurred_at__gt=newest - timedelta(days=days))
        .order_by("user_id")
        .values_list("user_id", flat=True)
        .distinct()
    )


def _listeners(user_ids: Sequence[int]) -> list[Listener]:
    """Each user's latest HISTORY_LIMIT events (as the served rankings read them), one
    query for the batch."""
    latest_first = [F("occurred_at").desc(), F("id").desc()]
    rows = (
        Interaction.objects.filter(user_id__in=user_ids)
        .annotate(row=Window(RowNumber(), partition_by=F("user_id"), order_by=latest_first))
        .filter(row__lte=HISTORY_LIMIT)
        .order_by("user_id", *latest_first)
        .values_list("user_id", "track_id", "kind", "occurred_at")
    )
    events: dict[int, list[tuple[int, str]]] = {}
    last_played: dict[int, dict[int, datetime]] = {}
    for user_id, track_id, kind, occurred_at in rows:
        events.setdefault(user_id, []).append((track_id, kind))
        if kind in (Interaction.Kind.PLAY, Interaction.Kind.LIKE):
            last_played.setdefault(user_id, {}).setdefault(track_id, occurred_at)
    users = get_user_model().objects.in_bulk(list(user_ids))
    return [
        Listener(user=users[u], history=history_from_events(events.get(u, [])),
                 last_played=last_played.get(u, {}))
        for u in user_ids
        if u in users
    ]  # fmt: skip


def _capped(track_ids: Sequence[int], artists: dict[int, int], *, length: int) -> list[int]:
    """The first `length` of `track_ids`, no track twice and at most MAX_PER_ARTIST per
    artist (a track of unknown artist is an artist of its own)."""
    counts: dict[int, int] = {}
    chosen: list[int] = []
    for track_id in dict.fromkeys(track_ids):
        artist = artists.get(track_id, -track_id)
        if counts.get(artist, 0) < MAX_PER_ARTIST:
            counts[artist] = counts.get(artist, 0) + 1
            chosen.append(track_id)
            if len(chosen) == length:
                break
    return chosen


def weekly_exploration(*, ranked: Sequence[int], artists: dict[int, int]) -> list[int]:
    """The first PLAYLIST_LENGTH tracks of the listener's ranking (which holds no track they
    interacted with nor asked not to be recommended), at most MAX_PER_ARTIST per artist."""
    return _capped(ranked, artists, length=PLAYLIST_LENGTH)


def _known_jams(*, listener: Listener, blocked: BlockedTracks, now: datetime) -> list[int]:
    """Tracks the listener liked or played, last played before JAMS_UNPLAYED_DAYS ago, never
    disliked nor blocked; the most played (and liked) first."""
    cutoff = now - timedelta(days=JAMS_UNPLAYED_DAYS)
    weights = listener.history.positive_weights
    disliked = set(listener.history.disliked)
    candidates = [
        track_id
        for track_id, last in listener.last_played.items()
        if last < cutoff and track_id not in disliked and track_id not in blocked.track_ids
    ]
    return sorted(candidates, key=lambda t: (-weights.get(t, 0.0), t))


def _closest_first(*, state: VectorState | None, ranked: list[int], anchors: list[int]):
    """`ranked` ordered by the highest cosine to any of `anchors` (ranking order without a
    model or anchors it knows)."""
    if state is None:
        return ranked
    anchor_rows = [state.track_index[t] for t in anchors if t in state.track_index]
    if not anchor_rows:
        return ranked
    rows = [state.track_index.get(t) for t in ranked]
    closeness = np.full(len(ranked), -np.inf)
    known = [i for i, row in enumerate(rows) if row is not None]
    if known:
        similarity = state.unit_item_vectors[[rows[i] for i in known]] @ (
            state.unit_item_vectors[anchor_rows].T
        )
        closeness[known] = similarity.max(axis=1)
    return [ranked[i] for i in np.argsort(-closeness, kind="stable").tolist()]


def daily_jams(
    *,
    known: list[int],
    ranked: list[int],
    artists: dict[int, int],
    state: VectorState | None,
) -> list[int]:
    """Known tracks alternating with the recommendations closest to them, PLAYLIST_LENGTH at
    most, MAX_PER_ARTIST per artist; one side fills in when the other runs out."""
    close = _closest_first(state=state, ranked=ranked, anchors=known)
    alternating = [t for pair in zip_longest(known, close) for t in pair if t is not None]
    return _capped(alternating, artists, length=PLAYLIST_LENGTH)


def _batch_playlists(
    *, listeners: list[Listener], kinds: Sequence[str], now: datetime
) -> dict[tuple[int, str], list[int]]:
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    backend = retrieval_backend(BACKEND)
    user_ids = [listener.user.pk for listener in listeners]
    blocked = do_not_recommend_blocked(user_ids=user_ids, now=now)
    exploring = Playlist.Generated.WEEKLY_EXPLORATION
    current_exploration = {}
    if exploring not in kinds:  # Daily Jams alone: keep clear of this week's exploration
        current_exploration = generated_playlist_track_ids(owner_ids=user_ids, generated=exploring)
    playlists = {}
    for listener in listeners:
        user_id = listener.user.pk
        ranking = recommendation_ranking(
            user=listener.user, backend=backend, history=listener.history, blocked=blocked[user_id]
        )
        ranked = [track_id for track_id, _, _ in ranking.ranked]
        exploration = weekly_exploration(ranked=ranked, artists=ranking.artists)
        if exploring in kinds:
            playlists[(user_id, exploring)] = exploration
        else:
            exploration = current_exploration.get(user_id, [])
        if Playlist.Generated.DAILY_JAMS in kinds:
            known = _known_jams(listener=listener, blocked=blocked[user_id], now=now)
            artists = ranking.artists | track_artists(state=state, track_ids=known)
            taken = set(exploration)
            playlists[(user_id, Playlist.Generated.DAILY_JAMS)] = daily_jams(
                known=known, ranked=[t for t in ranked if t not in taken], artists=artists,
                state=state,
            )  # fmt: skip
    return playlists


def generated_playlists_build(
    *, kinds: Sequence[str] | None = None, batch_size: int = BATCH_SIZE
) -> dict:
    """Build and replace the generated playlists of `kinds` (default: both) for every active
    listener, `batch_size` listeners at a time; returns {"listeners", "playlists", "tracks",
    "seconds"}."""
    kinds = tuple(kinds or KINDS)
    if unknown := set(kinds) - set(KINDS):
        raise ValueError(f"unknown generated playlist {sorted(unknown)[0]!r}; one of {KINDS}")
    started, now = time.monotonic(), timezone.now()
    user_ids = active_listener_ids()
    n_playlists = n_tracks = 0
    for start in range(0, len(user_ids), batch_size):
        listeners = _listeners(user_ids[start : start + batch_size])
        playlists = _batch_playlists(listeners=listeners, kinds=kinds, now=now)
        n_tracks += generated_playlists_replace(track_ids=playlists)
        n_playlists += len(playlists)
        logger.info(
            "generated playlists: %d/%d listeners, %d playlists, %.1f s",
            min(start + batch_size, len(user_ids)), len(user_ids), n_playlists,
            time.monotonic() - started,
        )  # fmt: skip
    return {
        "listeners": len(user_ids),
        "playlists": n_playlists,
        "tracks": n_tracks,
        "seconds": round(time.monotonic() - started, 2),
    }
