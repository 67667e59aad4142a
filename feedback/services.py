from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Track
from feedback.context import interaction_context
from feedback.models import Interaction

# A client clock may run a little ahead; anything further ahead is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class FeedbackError(ValueError):
    """An event that cannot be stored, with the reason the client should see."""


@dataclass(frozen=True)
class EventInput:
    track_id: int
    kind: str
    occurred_at: datetime | None = None
    idempotency_key: str | None = None


def _after_commit_effects(*, user, created: list[Interaction]) -> None:
    from recommendations.services import user_feedback_received

    kinds = {interaction.kind for interaction in created}
    track_ids = {interaction.track_id for interaction in created}
    transaction.on_commit(
        lambda: user_feedback_received(user=user, kinds=kinds, track_ids=track_ids)
    )


def _build(*, user, event: EventInput, source: str, now: datetime) -> Interaction:
    occurred_at = event.occurred_at or now
    if timezone.is_naive(occurred_at):
        raise FeedbackError("timestamp needs a timezone (e.g. 2026-11-21T10:00:00Z)")
    if occurred_at > now + MAX_CLOCK_SKEW:
        raise FeedbackError("timestamp is in the future")
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
    event unchanged with created=False."""
    (result,) = interactions_record(
        user=user,
        events=[EventInput(track.pk, kind, occurred_at, idempotency_key)],
        source=source,
    )
    return result


@transaction.atomic
def interactions_record(
    *, user, events: Sequence[EventInput], source: str = Interaction.Source.API
) -> list[tuple[Interaction, bool]]:
    """Store events in one transaction (all or nothing); repeated idempotency keys are
    answered with the stored event instead of a new row."""
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
    results: list[tuple[Interaction, bool]] = []
    for event in events:
        if event.idempotency_key and event.idempotency_key in existing:
            results.append((existing[event.idempotency_key], False))
            continue
        interaction = _build(user=user, event=event, source=source, now=now)
        try:
            with transaction.atomic():
                interaction.save()
        except IntegrityError:
            # A concurrent request stored the same key first: answer with its event.
            stored = Interaction.objects.get(user=user, idempotency_key=event.idempotency_key)
            results.append((stored, False))
            continue
        results.append((interaction, True))
    if created := [interaction for interaction, is_new in results if is_new]:
        _after_commit_effects(user=user, created=created)
    return results
