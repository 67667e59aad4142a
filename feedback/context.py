from datetime import datetime

from django.utils import timezone


def interaction_context(*, occurred_at: datetime) -> tuple[int, int]:
    """(hour of day 0–23, day of week 0 = Monday … 6) of a moment, in settings.TIME_ZONE."""
    local = timezone.localtime(occurred_at)
    return local.hour, local.weekday()
