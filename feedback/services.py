from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Artist, Track
from feedback.context import interaction_context
from feedback.models import POSITIVE_KINDS, DoNotRecommend, Interaction
from feedback.signals import DO_NOT_RECOMMEND, feedback_recorded

# A client clock may run a little ahead; anything further ahead is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class FeedbackError(ValueError):
    """An event that cannot be stored, with the reason the client should see."""


class IdempotencyKeyConflict(FeedbackError):
    """An idempotency key already stored for this user with a different event."""


@dataclass(frozen=True)
class EventInput:
    track_id: int
    kind: str
    occurred_at: datetime | None = None
    idempotency_key: str | None = None


def _after_commit_effects(*, user, created: list[Interaction]) -> None:
    kinds = {interaction.kind for interaction in created}
    track_ids = {interaction.track_id for interaction in created}
    transaction.on_commit(
        lambda: feedback_recorded.send(
            sender=Interaction, user=user, kinds=kinds, track_ids=track_ids
        )
    )


def _earliest_timestamp() -> datetime:
    """settings.FEEDBACK_MIN_TIMESTAMP (ISO 8601; UTC when it names no zone)."""
    earliest = parse_datetime(settings.FEEDBACK_MIN_TIMESTAMP)
    if earliest is None:
        raise ImproperlyConfigured(
            f"FEEDBACK_MIN_TIMESTAMP {settings.FEEDBACK_MIN_TIMESTAMP!r} is not an ISO 8601 moment"
        )
    return earliest.replace(tzinfo=UTC) if timezone.is_naive(earliest) else earliest


def _build(*, user, event: EventInput, source: str, now: datetime) -> Interaction:
    occurred_at = event.occurred_at or now
    if timezone.is_naive(occurred_at):
        raise FeedbackError("timestamp needs a timezone (e.g. 2026-11-21T10:00:00Z)")
    if occurred_at > now + MAX_CLOCK_SKEW:
        raise FeedbackError("timestamp is in the future")
    if occurred_at < (earliest := _earliest_timestamp()):
        raise FeedbackError(f"timestamp is before {earliest.isoformat()}")
    hour, day_of_week = interaction_context(occurred_at=occurred_at)
    return Interaction(
        user=user,
        track_id=event.track_id,
        kind=event.kind,
        occurred_at=occurred_at,
        hour=hour,
        day_of_week=day_of_week,
        source=source,
        idempotency_key=event.idempotency_key or None,
    )


def interaction_record(
    *,
    user,
    track,
    kind: str,
    occurred_at: datetime | None = None,
    source: str = Interaction.Source.WEB,
    idempotency_key: str | None = None,
) -> tuple[Interaction, bool]:
    """Store one event; returns (event, created). A repeated idempotency key returns the stored
    event unchanged with created=False (IdempotencyKeyConflict when this event differs)."""
    (result,) = interactions_record(
        user=user,
        events=[EventInput(track.pk, kind, occurred_at, idempotency_key)],
        source=source,
    )
    return result


def _same_event(*, stored: Interaction, event: EventInput) -> bool:
    """Whether a retry with `event` asks for what `stored` holds (no timestamp means "now",
    so it matches whatever moment the first try was stored at)."""
    return (
        stored.track_id == event.track_id
        and stored.kind == event.kind
        and (event.occurred_at is None or stored.occurred_at == event.occurred_at)
    )


def _replay(*, stored: Interaction, event: EventInput) -> tuple[Interaction, bool]:
    if not _same_event(stored=stored, event=event):
        raise IdempotencyKeyConflict(
            f"idempotency_key {event.idempotency_key!r} was already used for a different event"
        )
    return stored, False


def _insertion_order(events: Sequence[EventInput]) -> list[int]:
    """Indexes of `events`, keyed ones first by key: concurrent requests that share keys insert
    (and so lock) them in the same order and queue up instead of deadlocking."""
    return sorted(
        range(len(events)),
        key=lambda index: (
            events[index].idempotency_key is None,
            events[index].idempotency_key or "",
        ),
    )


@transaction.atomic
def interactions_record(
    *, user, events: Sequence[EventInput], source: str = Interaction.Source.API
) -> list[tuple[Interaction, bool]]:
    """Store events in one transaction (all or nothing). A repeated idempotency key is answered
    with the stored event instead of a new row, or IdempotencyKeyConflict when the event differs.
    Returns (event, created) in the order given."""
    if kinds_unknown := {e.kind for e in events} - set(Interaction.Kind.values):
        raise FeedbackError(f"unknown event kind {sorted(kinds_unknown)[0]!r}")
    track_ids = {e.track_id for e in events}
    known = set(Track.objects.filter(pk__in=track_ids).values_list("pk", flat=True))
    if unknown := sorted(track_ids - known):
        raise FeedbackError(f"unknown track_id {unknown[0]}")
    now = timezone.now()
    keys = [e.idempotency_key for e in events if e.idempotency_key]
    if len(keys) != len(set(keys)):
        raise FeedbackError("the same idempotency_key appears twice in one request")
    existing = {
        interaction.idempotency_key: interaction
        for interaction in Interaction.objects.filter(user=user, idempotency_key__in=keys)
    }
    results: dict[int, tuple[Interaction, bool]] = {}
    for index in _insertion_order(events):
        event = events[index]
        if event.idempotency_key and event.idempotency_key in existing:
            results[index] = _replay(stored=existing[event.idempotency_key], event=event)
            continue
        interaction = _build(user=user, event=event, source=source, now=now)
        try:
            with transaction.atomic():
                interaction.save()
        except IntegrityError:
            if not event.idempotency_key:
                raise
            # A concurrent request stored the same key first: answer with its event.
            stored = Interaction.objects.get(user=user, idempotency_key=event.idempotency_key)
            results[index] = _replay(stored=stored, event=event)
            continue
        results[index] = (interaction, True)
    ordered = [results[index] for index in range(len(events))]
    if created := [interaction for interaction, is_new in ordered if is_new]:
        _after_commit_effects(user=user, created=created)
    return ordered


def track_popularity_refresh(*, days: int = 30) -> int:
    """Set Track.popularity to the number of distinct listeners who played or liked the track in
    the last `days` days, so one account moves a track by at most one however much it posts.

    The window ends at the newest interaction, not at "now", so an imported or demo log keeps
    its popularity however old it is. Returns the number of tracks updated.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH newest AS (SELECT max(occurred_at) AS at FROM feedback_interaction),
            counts AS (
                SELECT track_id, count(DISTINCT user_id) AS listeners
                FROM feedback_interaction, newest
                WHERE kind = ANY(%s)
                    AND occurred_at > newest.at - make_interval(days => %s)
                GROUP BY track_id
            )
            UPDATE catalog_track AS track
            SET popularity = coalesce(counts.listeners, 0)
            FROM catalog_track AS t LEFT JOIN counts ON counts.track_id = t.id
            WHERE track.id = t.id
                AND track.popularity IS DISTINCT FROM coalesce(counts.listeners, 0)
            """,
            [list(POSITIVE_KINDS), days],
        )
        return cursor.rowcount


# ----------------------------------------------------------------------------- do not recommend


class DoNotRecommendError(FeedbackError):
    """A do-not-recommend mark that cannot be stored, with the reason."""


def _do_not_recommend_target(*, track_id: int | None, artist_id: int | None) -> dict:
    if (track_id is None) == (artist_id is None):
        raise DoNotRecommendError("give exactly one of track_id and artist_id")
    if track_id is not None:
        if not Track.objects.filter(pk=track_id).exists():
            raise DoNotRecommendError(f"unknown track_id {track_id}")
        return {"track_id": track_id, "artist_id": None}
    if not Artist.objects.filter(pk=artist_id).exists():
        raise DoNotRecommendError(f"unknown artist_id {artist_id}")
    return {"track_id": None, "artist_id": artist_id}


def _do_not_recommend_changed(*, user, target: dict) -> None:
    track_ids = {target["track_id"]} if target["track_id"] is not None else set()
    transaction.on_commit(
        lambda: feedback_recorded.send(
            sender=DoNotRecommend, user=user, kinds={DO_NOT_RECOMMEND}, track_ids=track_ids
        )
    )


@transaction.atomic
def do_not_recommend_mark(
    *,
    user,
    track_id: int | None = None,
    artist_id: int | None = None,
    until: datetime | None = None,
) -> tuple[DoNotRecommend, bool]:
    """Keep a track, or every track of an artist, out of the user's lists (until `until`, a
    future moment, or for good when None); returns (mark, created). Marking again replaces the
    mark's `until`. DoNotRecommendError with the reason for anything else than exactly one
    known track or artist, or an `until` without a timezone or not in the future."""
    target = _do_not_recommend_target(track_id=track_id, artist_id=artist_id)
    if until is not None:
        if timezone.is_naive(until):
            raise DoNotRecommendError("until needs a timezone (e.g. 2027-01-01T00:00:00Z)")
        if until <= timezone.now():
            raise DoNotRecommendError("until is not in the future")
    try:
        with transaction.atomic():
            mark, created = DoNotRecommend.objects.update_or_create(
                user=user, **target, defaults={"until": until}
            )
    except IntegrityError:
        # A concurrent request stored the same mark first: update that one.
        mark = DoNotRecommend.objects.select_for_update().get(user=user, **target)
        mark.until, created = until, False
        mark.save(update_fields=["until"])
    _do_not_recommend_changed(user=user, target=target)
    return mark, created


@transaction.atomic
def do_not_recommend_unmark(
    *, user, track_id: int | None = None, artist_id: int | None = None
) -> bool:
    """Remove the user's mark on a track or an artist; False when there was none."""
    if (track_id is None) == (artist_id is None):
        raise DoNotRecommendError("give exactly one of track_id and artist_id")
    target = {"track_id": track_id, "artist_id": artist_id}
    deleted, _ = DoNotRecommend.objects.filter(user=user, **target).delete()
    if deleted:
        _do_not_recommend_changed(user=user, target=target)
    return bool(deleted)
