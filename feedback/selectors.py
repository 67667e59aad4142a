"""Reads on the interaction log."""

from django.db.models import Count, Q

from catalog.models import Track
from feedback.models import Interaction


def track_feedback_counts(*, track: Track) -> dict[str, int]:
    """{"plays": …, "likes": …, "skips": …} over the whole interaction log."""
    return Interaction.objects.filter(track=track).aggregate(
        plays=Count("id", filter=Q(kind=Interaction.Kind.PLAY)),
        likes=Count("id", filter=Q(kind=Interaction.Kind.LIKE)),
        skips=Count("id", filter=Q(kind=Interaction.Kind.SKIP)),
    )
