from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
import uuid6
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Artist, Track
from feedback import impression_buffer
from feedback.context import interaction_context
from feedback.models import POSITIVE_KINDS, DoNotRecommend, Impression, Interaction
from feedback.signals import DO_NOT_RECOMMEND, feedback_recorded

logger = logging.getLogger(__name__)

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
    request_id: uuid.UUID | None = None  # of the served list the track was shown in


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
        request_id=event.request_id,
    )


def interaction_record(
    *,
    user,
    track,
    kind: str,
    occurred_at: datetime | None = None,
    source: str = Interaction.Source.WEB,
    idempotency_key: str | None = None,
    request_id: uuid.UUID | None = None,
) -> tuple[Interaction, bool]:
    """Store one event; returns (event, created). A repeated idempotency key returns the stored
    event unchanged with created=False (IdempotencyKeyConflict when this event differs).
    `request_id`: the served list the track was shown in (see interactions_record)."""
    (result,) = interactions_record(
        user=user,
        events=[EventInput(track.pk, kind, occurred_at, idempotency_key, request_id)],
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


# Feedback without a request_id: for each event, the latest of the listener's
# IMPRESSIONS_LINK_LISTS latest lists in the link window before it that showed its track. The
# bound keeps the cost of a POST flat for a listener (or a client) served thousands of lists in
# the window: each event reads at most that many rows, backwards along (user, shown_at).
_LATEST_SHOWN_SQL = """
SELECT event.position, shown.id
FROM unnest(%(track_ids)s::bigint[], %(occurred_at)s::timestamptz[])
    WITH ORDINALITY AS event (track_id, occurred_at, position)
CROSS JOIN LATERAL (
    SELECT recent.id FROM (
        SELECT id, track_ids, shown_at FROM {impression}
        WHERE user_id = %(user_id)s
            AND shown_at BETWEEN event.occurred_at - %(window)s AND event.occurred_at
        ORDER BY shown_at DESC
        LIMIT %(lists)s
    ) AS recent
    WHERE event.track_id = ANY(recent.track_ids)
    ORDER BY recent.shown_at DESC
    LIMIT 1
) AS shown
"""


def _impressions_link(*, user, interactions: Sequence[Interaction]) -> None:
    """Set each new event's impression, when the list it answers is written already: the
    user's list its request_id names, if it showed the event's track, or, without a
    request_id, their latest list that showed the track among their IMPRESSIONS_LINK_LISTS
    latest lists in the link window before the event. At most two queries; none when
    impressions are off. Events have been validated (sane timestamps)."""
    if not settings.IMPRESSIONS_ENABLED or not interactions:
        return
    requested = [event for event in interactions if event.request_id]
    if requested:
        by_request = {
            request_id: (pk, set(track_ids))
            for pk, request_id, track_ids in Impression.objects.filter(
                user=user, request_id__in={event.request_id for event in requested}
            ).values_list("pk", "request_id", "track_ids")
        }
        for event in requested:
            pk, track_ids = by_request.get(event.request_id, (None, set()))
            event.impression_id = pk if event.track_id in track_ids else None
    if unrequested := [event for event in interactions if not event.request_id]:
        with connection.cursor() as cursor:
            cursor.execute(
                _LATEST_SHOWN_SQL.format(impression=Impression._meta.db_table),
                {
                    "track_ids": [event.track_id for event in unrequested],
                    "occurred_at": [event.occurred_at for event in unrequested],
                    "user_id": user.pk,
                    "window": timedelta(minutes=settings.IMPRESSIONS_LINK_MINUTES),
                    "lists": settings.IMPRESSIONS_LINK_LISTS,
                },
            )
            linked = dict(cursor.fetchall())
        for position, event in enumerate(unrequested, start=1):
            event.impression_id = linked.get(position)


@transaction.atomic
def interactions_record(
    *, user, events: Sequence[EventInput], source: str = Interaction.Source.API
) -> list[tuple[Interaction, bool]]:
    """Store events in one transaction (all or nothing). A repeated idempotency key is answered
    with the stored event instead of a new row, or IdempotencyKeyConflict when the event differs.
    Returns (event, created) in the order given.

    Each new event is linked to the impression it answers when that impression is written
    already (else the next impressions flush links it): the user's own impression of the track
    in the served list `request_id` names, or without a request_id their latest impression of
    the track in the IMPRESSIONS_LINK_MINUTES before the event (among their latest
    IMPRESSIONS_LINK_LISTS lists there)."""
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
    new: list[tuple[int, Interaction]] = []
    for index in _insertion_order(events):
        event = events[index]
        if event.idempotency_key and event.idempotency_key in existing:
            results[index] = _replay(stored=existing[event.idempotency_key], event=event)
            continue
        new.append((index, _build(user=user, event=event, source=source, now=now)))
    _impressions_link(user=user, interactions=[interaction for _, interaction in new])
    for index, interaction in new:
        event = events[index]
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
    # Statements whose plans hold whatever the table statistics say: right after a bulk load
    # they may still describe empty tables, and the single UPDATE … LEFT JOIN this replaces was
    # then planned as a nested loop that re-aggregated the log once per track (hours). Here the
    # log is aggregated once, and both updates join a constant array (hashed, or by primary key).
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(occurred_at) FROM feedback_interaction")
        (newest,) = cursor.fetchone()
        counted: list[tuple[int, int]] = []
        if newest is not None:
            cursor.execute(
                """
                SELECT track_id, count(DISTINCT user_id) FROM feedback_interaction
                WHERE kind = ANY(%s) AND occurred_at > %s
                GROUP BY track_id
                """,
                [list(POSITIVE_KINDS), newest - timedelta(days=days)],
            )
            counted = cursor.fetchall()
        track_ids = [track_id for track_id, _ in counted]
        cursor.execute(
            """
            UPDATE catalog_track AS track SET popularity = counts.listeners
            FROM unnest(%s::bigint[], %s::bigint[]) AS counts (track_id, listeners)
            WHERE track.id = counts.track_id AND track.popularity IS DISTINCT FROM counts.listeners
            """,
            [track_ids, [listeners for _, listeners in counted]],
        )
        updated = cursor.rowcount
        cursor.execute(
            """
            UPDATE catalog_track SET popularity = 0
            WHERE popularity IS DISTINCT FROM 0 AND NOT (id = ANY(%s::bigint[]))
            """,
            [track_ids],
        )
        return updated + cursor.rowcount


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


# ----------------------------------------------------------------------------- impressions
#
# A served list costs its request one compact JSON record appended to its process's pending
# list (feedback.impression_buffer), which a thread pushes to a Redis list
# (IMPRESSIONS_REDIS_URL) every quarter of a second. `impressions_flush` (a beat task every
# few seconds) moves batches of records to a "flushing" list, writes them as rows, one per
# served list, in one INSERT per batch, links the feedback that came before the flush, and only
# then deletes the batch: a run that fails leaves it for the next run, and writing a batch
# twice stores it once (request_id is unique).

IMPRESSION_SURFACES = frozenset(Impression.Surface.values)
FLUSH_BATCH_LISTS = 1000  # served lists per INSERT
FLUSH_MAX_BATCHES = 100  # per run, so that a run stays short; a backlog takes a few runs
# Between two batches a run pauses this many times as long as the last batch took: the flush
# may share its host's cores with web workers, and spreading its CPU over time keeps it from
# holding a core for the whole run (what a request waiting behind it feels at the tail).
FLUSH_PAUSE_RATIO = 1.0
_pause = time.sleep
FLUSH_LOCK_SECONDS = 300
MAX_POSITION = 32767  # Impression.first_position is a smallint


# Moves up to ARGV[1] records from the buffer (KEYS[1]) to the flushing list (KEYS[2]), unless
# the flushing list still holds those of a run that did not finish; returns the flushing list.
_CLAIM_SCRIPT = """
if redis.call('LLEN', KEYS[2]) == 0 then
  local records = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
  if #records == 0 then return records end
  redis.call('LTRIM', KEYS[1], #records, -1)
  for first = 1, #records, 500 do
    redis.call('RPUSH', KEYS[2], unpack(records, first, math.min(first + 499, #records)))
  end
end
return redis.call('LRANGE', KEYS[2], 0, -1)
"""


def _impressions_key(name: str) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return f"{prefix}:impressions:{name}"


def impression_request_id() -> uuid.UUID:
    """A new request id for a served list: a UUIDv7, whose leading 48 bits are the time in ms,
    so that the impression table's unique index on request_id grows at its right edge. A
    random uuid4 lands each insert on a random leaf page, and the first change to a page after
    each checkpoint writes the whole page to the WAL."""
    return uuid6.uuid7()


def impressions_log(
    *,
    user_id: int | None,
    surface: str,
    request_id: uuid.UUID,
    track_ids: Sequence[int],
    model_version_id: int | None,
    pipeline: str,
    interleaving_test_id: int | None = None,
    teams: dict[int, str] | None = None,
    first_position: int = 0,
) -> bool:
    """Log that the list `request_id` showed `track_ids` (in order, the first at
    `first_position`) to the user on `surface`, ranked by `model_version_id`'s `pipeline`
    (None and "" for a fallback), inside an interleaved test with `teams` ({track id: "A" or
    "B"}). An append to this process's pending records, pushed to Redis within a quarter of a
    second and written to the database by the next `impressions_flush`.

    Never fails the request and never waits for Redis: with impressions off, no user or no
    track it logs nothing (returns False). A Redis that cannot be reached costs a warning from
    the pushing thread, not the request."""
    if surface not in IMPRESSION_SURFACES:
        raise ValueError(f"unknown impression surface {surface!r}")
    if not settings.IMPRESSIONS_ENABLED or user_id is None or not track_ids:
        return False
    track_ids = [int(track_id) for track_id in track_ids]  # numpy integers are not JSON
    record = {
        "r": request_id.hex,
        "u": int(user_id),
        "s": str(surface),
        "v": None if model_version_id is None else int(model_version_id),
        "p": pipeline,
        "i": None if interleaving_test_id is None else int(interleaving_test_id),
        "o": first_position,
        # The tracks as a PostgreSQL array literal: the flush checks it with one regular
        # expression and passes it on as it is, instead of decoding and re-encoding 50 numbers.
        "t": _array_literal(track_ids),
        "a": round(time.time(), 3),
    }
    if teams:
        record["m"] = [teams.get(track_id, "") for track_id in track_ids]
    impression_buffer.pending.append(
        url=settings.IMPRESSIONS_REDIS_URL,
        key=_impressions_key("buffer"),
        limit=settings.IMPRESSIONS_BUFFER_MAX,
        record=json.dumps(record, separators=(",", ":")).encode(),
    )
    return True


def impressions_push() -> int:
    """Push this process's pending impression records to Redis now (the pushing thread does it
    every quarter of a second); returns how many went. Never raises."""
    return impression_buffer.pending.push()


@dataclass(frozen=True)
class ImpressionsFlushed:
    lists: int  # served lists taken from Redis
    written: int  # of them, rows written (a list written before, or a vanished user's: none)
    impressions: int  # tracks shown in the lists written
    linked: int  # feedback events linked to them


_TEAMS = frozenset(Impression.Team.values)


def _is_id(value, *, nullable: bool = False, bits: int = 63) -> bool:
    if value is None:
        return nullable
    return type(value) is int and 0 < value < 2**bits


def _array_literal(values: Iterable) -> str:
    """The PostgreSQL array literal of `values` (numbers, or text that needs no quoting)."""
    return "{" + ",".join(map(str, values)) + "}"


# A PostgreSQL array literal of track ids: positive, at most 18 digits (below 2**63).
_TRACK_IDS_LITERAL = re.compile(r"\{[1-9][0-9]{0,17}(?:,[1-9][0-9]{0,17})*\}")


def _track_ids_literal(track_ids) -> str:
    """The PostgreSQL array literal of a record's tracks (ValueError if they are not positive
    ids). Records carry it ready-made; a JSON list, as records logged before it did, is
    converted."""
    if type(track_ids) is str:
        if _TRACK_IDS_LITERAL.fullmatch(track_ids) is None:
            raise ValueError("track ids are not an array of positive ids")
        return track_ids
    if not (
        type(track_ids) is list
        and track_ids
        and all(type(track_id) is int for track_id in track_ids)
        and min(track_ids) > 0
        and max(track_ids) < 2**63
    ):
        raise ValueError("track ids are not a list of positive ids")
    return _array_literal(track_ids)


def _check_record(user_id, surface, version_id, test_id, first_position, n_tracks, teams):
    """ValueError unless every field fits its column: one bad record must not fail its batch
    (and so every later flush)."""
    if not (
        _is_id(user_id)
        and surface in IMPRESSION_SURFACES
        and _is_id(version_id, nullable=True, bits=31)  # integer columns
        and _is_id(test_id, nullable=True, bits=31)
        and type(first_position) is int
        and 0 <= first_position <= MAX_POSITION
        and (not teams or (len(teams) == n_tracks and set(teams) <= _TEAMS))
    ):
        raise ValueError("a field out of its column's range")


def _impression_rows(records: Sequence[bytes]) -> list[tuple]:
    """The rows of buffered records, one per request_id; malformed records are logged and
    skipped. Array columns go as PostgreSQL array literals (one text value per list)."""
    rows = {}
    for raw in records:
        try:
            record = json.loads(raw)
            request_id = uuid.UUID(hex=record["r"])
            shown_at = datetime.fromtimestamp(record["a"], UTC)
            user_id, surface, version_id, test_id, first_position = (
                record["u"], record["s"], record["v"], record["i"], record["o"],
            )  # fmt: skip
            track_ids = _track_ids_literal(record["t"])
            teams = record.get("m") or []
            pipeline = str(record["p"] or "")[:64]
            n_tracks = track_ids.count(",") + 1
            _check_record(user_id, surface, version_id, test_id, first_position, n_tracks, teams)
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            logger.warning("impression record dropped (%s): %.200r", error, raw)
            continue
        rows.setdefault(
            request_id,
            (request_id, user_id, track_ids, first_position, surface, version_id, pipeline,
             test_id, _array_literal(team or '""' for team in teams), shown_at),
        )  # fmt: skip
    return list(rows.values())


# One statement: insert the lists (a list written before: nothing), then link the feedback
# stored before them (by request_id, the user's own lists only; else the latest list that
# showed the track in the link window before the event), reading the new rows from the
# INSERT's RETURNING instead of looking each one up again by request_id.
_WRITE_SQL = """
WITH written AS (
    INSERT INTO {impression} (request_id, user_id, track_ids, first_position, surface,
                              model_version_id, pipeline, interleaving_test_id, teams, shown_at)
    SELECT incoming.request_id, incoming.user_id, incoming.track_ids::bigint[],
           incoming.first_position, incoming.surface, incoming.model_version_id,
           incoming.pipeline, incoming.interleaving_test_id, incoming.teams::varchar[],
           incoming.shown_at
    FROM unnest(%(request_ids)s::uuid[], %(user_ids)s::bigint[], %(track_ids)s::text[],
                %(first_positions)s::integer[], %(surfaces)s::text[],
                %(model_version_ids)s::integer[], %(pipelines)s::text[],
                %(interleaving_test_ids)s::integer[], %(teams)s::text[],
                %(shown_ats)s::timestamptz[])
        AS incoming (request_id, user_id, track_ids, first_position, surface, model_version_id,
                     pipeline, interleaving_test_id, teams, shown_at)
    WHERE EXISTS (SELECT 1 FROM {user} WHERE {user}.id = incoming.user_id)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id, request_id, user_id, track_ids, shown_at
), answers AS (
    SELECT DISTINCT ON (event.id) event.id AS interaction_id, written.id AS impression_id
    FROM written
    JOIN {interaction} AS event
        ON event.user_id = written.user_id AND event.track_id = ANY(written.track_ids)
    WHERE event.impression_id IS NULL
        AND event.occurred_at >= %(since)s
        AND (event.request_id = written.request_id
             OR (event.request_id IS NULL
                 AND event.occurred_at BETWEEN written.shown_at
                                           AND written.shown_at + %(window)s))
    ORDER BY event.id, (event.request_id IS NOT NULL) DESC, written.shown_at DESC
), linked AS (
    UPDATE {interaction} AS event SET impression_id = answers.impression_id
    FROM answers WHERE event.id = answers.interaction_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM written),
       (SELECT coalesce(sum(cardinality(track_ids)), 0) FROM written),
       (SELECT count(*) FROM linked)
"""

_WRITE_COLUMNS = (
    "request_ids", "user_ids", "track_ids", "first_positions", "surfaces", "model_version_ids",
    "pipelines", "interleaving_test_ids", "teams", "shown_ats",
)  # fmt: skip


def _tables() -> dict[str, str]:
    return {
        "impression": Impression._meta.db_table,
        "interaction": Interaction._meta.db_table,
        "user": get_user_model()._meta.db_table,
    }


@dataclass(frozen=True)
class _Written:
    lists: int
    impressions: int
    linked: int


@transaction.atomic
def impressions_write(*, records: Sequence[bytes]) -> _Written:
    """Write the buffered records (as `impressions_log` makes them) in one statement, a row
    per served list, and link the feedback that answers them. Idempotent: a list written before
    writes nothing; the list of a user deleted since is skipped; a malformed record is logged
    and skipped."""
    rows = _impression_rows(records)
    if not rows:
        return _Written(lists=0, impressions=0, linked=0)
    columns = dict(zip(_WRITE_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            _WRITE_SQL.format(**_tables()),
            {
                **columns,
                # A client's clock may run a little ahead of ours (MAX_CLOCK_SKEW).
                "since": min(columns["shown_ats"]) - MAX_CLOCK_SKEW,
                "window": timedelta(minutes=settings.IMPRESSIONS_LINK_MINUTES),
            },
        )
        lists, impressions, linked = cursor.fetchone()
    return _Written(lists=lists, impressions=int(impressions), linked=linked)


def impressions_flush(
    *,
    max_batches: int = FLUSH_MAX_BATCHES,
    batch_lists: int = FLUSH_BATCH_LISTS,
    pause_ratio: float = FLUSH_PAUSE_RATIO,
) -> ImpressionsFlushed:
    """Write the impressions buffered in Redis to the database (after pushing this process's
    own pending records there), `batch_lists` served lists at a time, at most `max_batches`
    batches, pausing `pause_ratio` times the last batch's time before each further batch. One
    run at a time (a Redis lock; a second run returns at once). A batch leaves Redis only once
    it is committed. Redis and database errors raise: the batch stays for the next run."""
    impressions_push()
    client = impression_buffer.redis_client(settings.IMPRESSIONS_REDIS_URL)
    lock = client.lock(_impressions_key("flush-lock"), timeout=FLUSH_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return ImpressionsFlushed(lists=0, written=0, impressions=0, linked=0)
    claim = client.register_script(_CLAIM_SCRIPT)
    keys = [_impressions_key("buffer"), _impressions_key("flushing")]
    lists = written = impressions = linked = 0
    try:
        last_batch_seconds = 0.0
        for _ in range(max_batches):
            records = claim(keys=keys, args=[batch_lists])
            if not records:
                break
            if last_batch_seconds and pause_ratio > 0:
                _pause(pause_ratio * last_batch_seconds)
            started = time.perf_counter()
            batch = impressions_write(records=records)
            last_batch_seconds = time.perf_counter() - started
            client.delete(keys[1])
            lists += len(records)
            written += batch.lists
            impressions += batch.impressions
            linked += batch.linked
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            logger.warning("the impressions flush lock expired before the run ended")
    if lists:
        logger.info(
            "impressions flushed: %d lists taken, %d written (%d impressions), "
            "%d feedback events linked",
            lists, written, impressions, linked,
        )  # fmt: skip
    return ImpressionsFlushed(lists=lists, written=written, impressions=impressions, linked=linked)


PRUNE_BATCH = 10_000

_PRUNE_SQL = """
WITH doomed AS (SELECT id FROM {impression} WHERE shown_at < %s LIMIT %s),
unlinked AS (
    UPDATE {interaction} SET impression_id = NULL
    WHERE impression_id IN (SELECT id FROM doomed)
)
DELETE FROM {impression} WHERE id IN (SELECT id FROM doomed)
"""


def impressions_prune(*, days: int | None = None, batch_size: int = PRUNE_BATCH) -> int:
    """Delete the impressions shown more than `days` (IMPRESSIONS_RETENTION_DAYS) days ago,
    `batch_size` rows per transaction, so that no lock is held long; the feedback linked to
    them keeps its request_id and loses the link. Returns how many were deleted."""
    days = settings.IMPRESSIONS_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    sql = _PRUNE_SQL.format(**_tables())
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, batch_size])
            batch = cursor.rowcount
        deleted += batch
        if batch < batch_size:
            break
    if deleted:
        logger.info("impressions pruned: %d shown before %s", deleted, cutoff.isoformat())
    return deleted
