"""Reads on the interaction log, on listeners' do-not-recommend marks and on impressions."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from catalog.models import Track
from feedback.models import POSITIVE_KINDS, DoNotRecommend, Impression, Interaction


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


# ----------------------------------------------------------------------------- impressions


@dataclass(frozen=True)
class ImpressionDayStats:
    """What one model version's lists did on one day (in settings.TIME_ZONE): of its
    impressions, how many got a like or a play (positive) and how many a skip, by feedback
    linked to them; coverage is the share of the catalog it showed."""

    model_version_id: int | None  # None: lists served by a fallback (popularity, tags)
    day: date
    pipelines: str  # the pipelines' names, comma-separated
    impressions: int  # tracks shown (a list of 20 is 20 impressions)
    positive: int  # impressions with a like or a play
    skipped: int  # impressions with a skip
    distinct_tracks: int
    catalog_tracks: int

    @property
    def positive_rate(self) -> float:
        return self.positive / self.impressions if self.impressions else 0.0

    @property
    def skip_rate(self) -> float:
        return self.skipped / self.impressions if self.impressions else 0.0

    @property
    def coverage(self) -> float:
        return self.distinct_tracks / self.catalog_tracks if self.catalog_tracks else 0.0


_DAILY_STATS_SQL = """
WITH answered AS (  -- per list and track: whether it got a like or a play, and a skip
    SELECT impression_id, track_id,
           bool_or(kind = ANY(%(positive_kinds)s)) AS positive,
           bool_or(kind = %(skip)s) AS skipped
    FROM {interaction}
    WHERE impression_id IS NOT NULL  -- at most IMPRESSIONS_RETENTION_DAYS of them: pruning unlinks
    GROUP BY impression_id, track_id
), shown AS (
    SELECT id, model_version_id, (shown_at AT TIME ZONE %(time_zone)s)::date AS day, pipeline,
           track_ids
    FROM {impression}
    WHERE shown_at >= %(since)s
      AND interleaving_test_id IS NULL  -- drafted from two versions: the test's own page
), tracks AS (
    SELECT shown.model_version_id, shown.day,
           string_agg(DISTINCT nullif(shown.pipeline, ''), ', ') AS pipelines,
           count(*) AS impressions,
           count(DISTINCT track_id) AS distinct_tracks
    FROM shown CROSS JOIN LATERAL unnest(shown.track_ids) AS track_id
    GROUP BY 1, 2
), answers AS (
    SELECT shown.model_version_id, shown.day,
           count(*) FILTER (WHERE answered.positive) AS positive,
           count(*) FILTER (WHERE answered.skipped) AS skipped
    FROM shown JOIN answered ON answered.impression_id = shown.id
    GROUP BY 1, 2
)
SELECT tracks.model_version_id, tracks.day, tracks.pipelines, tracks.impressions,
       coalesce(answers.positive, 0), coalesce(answers.skipped, 0), tracks.distinct_tracks
FROM tracks
LEFT JOIN answers
    ON answers.model_version_id IS NOT DISTINCT FROM tracks.model_version_id
    AND answers.day = tracks.day
ORDER BY 2 DESC, 1 DESC NULLS LAST
"""


def impression_daily_stats(*, days: int) -> list[ImpressionDayStats]:
    """Per (model version, day) over the last `days` days (today included, in
    settings.TIME_ZONE), newest day first: impressions, the positive-feedback and skip rates
    of its impressions, and its catalog coverage. Lists drafted for an interleaved test mix two
    versions and are left out (their reading is the test's: mltasks.interleaving_selectors).
    Two queries."""
    today = timezone.localdate()
    first_day = today - timedelta(days=max(days, 1) - 1)
    since = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    sql = _DAILY_STATS_SQL.format(
        interaction=Interaction._meta.db_table, impression=Impression._meta.db_table
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "positive_kinds": list(POSITIVE_KINDS),
                "skip": Interaction.Kind.SKIP,
                "since": since,
                "time_zone": settings.TIME_ZONE,
            },
        )
        rows = cursor.fetchall()
    catalog_tracks = Track.objects.count() if rows else 0
    return [
        ImpressionDayStats(
            model_version_id=version_id,
            day=day,
            pipelines=pipelines or "",
            impressions=impressions,
            positive=positive,
            skipped=skipped,
            distinct_tracks=distinct_tracks,
            catalog_tracks=catalog_tracks,
        )  # fmt: skip
        for version_id, day, pipelines, impressions, positive, skipped, distinct_tracks in rows
    ]
