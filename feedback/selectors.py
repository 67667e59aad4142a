"""Reads on the interaction log and on listeners' do-not-recommend marks."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from catalog.models import Track
from feedback.models import DoNotRecommend, Interaction


def track_feedback_counts(*, track: Track) -> dict[str, int]:
    """{"plays": …, "likes": …, "skips": …} over the whole interaction log."""
    return Interaction.objects.filter(track=track).aggregate(
        plays=Count("id", filter=Q(kind=Interaction.Kind.PLAY)),
        likes=Count("id", filter=Q(kind=Interaction.Kind.LIKE)),
        skips=Count("id", filter=Q(kind=Interaction.Kind.SKIP)),
    )


# ----------------------------------------------------------------------------- do not recommend


@dataclass(frozen=True)
class BlockedTracks:
    """What a listener's marks keep out of their lists right now."""

    track_ids: frozenset[int] = frozenset()  # the marked tracks and every marked artist's
    artist_ids: frozenset[int] = frozenset()
    # The earliest `until` of the marks in force: after it the set is smaller (None: never).
    changes_at: datetime | None = field(default=None)


def _in_force(now: datetime) -> Q:
    return Q(until__isnull=True) | Q(until__gt=now)


def do_not_recommend_marks(*, user) -> QuerySet[DoNotRecommend]:
    """The user's marks, newest first, each with its track (and artist) or artist loaded;
    expired ones included (`applies_at(now)` tells them apart)."""
    return DoNotRecommend.objects.filter(user=user).select_related("track__artist", "artist")


def do_not_recommend_marks_on(*, user, track: Track | None = None, artist_id: int | None = None):
    """{"track": mark or None, "artist": mark or None}: the user's marks in force on `track`
    and on its artist (or on `artist_id`), for the pages' buttons. One query."""
    if not user.is_authenticated:
        return {"track": None, "artist": None}
    artist_id = track.artist_id if track is not None else artist_id
    target = Q(artist_id=artist_id) | (Q(track_id=track.pk) if track is not None else Q())
    marks = DoNotRecommend.objects.filter(_in_force(timezone.now()), target, user=user)
    found = {"track": None, "artist": None}
    for mark in marks:
        found["track" if mark.track_id else "artist"] = mark
    return found


def do_not_recommend_blocked(
    *, user_ids: Collection[int], now: datetime | None = None
) -> dict[int, BlockedTracks]:
    """{user id: BlockedTracks} for each of `user_ids` (an empty one for a user without marks
    in force). Two queries whatever the number of users: the marks, then the marked artists'
    tracks."""
    now = now or timezone.now()
    rows = DoNotRecommend.objects.filter(_in_force(now), user_id__in=list(user_ids)).values_list(
        "user_id", "track_id", "artist_id", "until"
    )
    tracks: dict[int, set[int]] = {}
    artists: dict[int, set[int]] = {}
    changes: dict[int, datetime] = {}
    for user_id, track_id, artist_id, until in rows:
        if track_id is not None:
            tracks.setdefault(user_id, set()).add(track_id)
        else:
            artists.setdefault(user_id, set()).add(artist_id)
        if until is not None and (user_id not in changes or until < changes[user_id]):
            changes[user_id] = until
    by_artist: dict[int, list[int]] = {}
    if marked_artists := set().union(*artists.values()):
        for track_id, artist_id in Track.objects.filter(artist_id__in=marked_artists).values_list(
            "pk", "artist_id"
        ):
            by_artist.setdefault(artist_id, []).append(track_id)
    blocked = {}
    for user_id in user_ids:
        user_artists = artists.get(user_id, set())
        track_ids = set(tracks.get(user_id, ()))
        for artist_id in user_artists:
            track_ids.update(by_artist.get(artist_id, ()))
        blocked[user_id] = BlockedTracks(
            track_ids=frozenset(track_ids),
            artist_ids=frozenset(user_artists),
            changes_at=changes.get(user_id),
        )
    return blocked


def do_not_recommend_blocked_for(*, user_id: int) -> BlockedTracks:
    return do_not_recommend_blocked(user_ids=[user_id])[user_id]
