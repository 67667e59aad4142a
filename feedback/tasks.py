from dataclasses import asdict

from celery import shared_task

from feedback import services
from feedback.services import track_popularity_refresh


# The name it had in catalog: the beat entry (catalog migration 0002) and queued messages use it.
@shared_task(
    name="catalog.tasks.refresh_track_popularity",
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=3,
)
def refresh_track_popularity(days: int = 30) -> int:
    """Recount each track's recent plays and likes (drives MostPop and catalog ordering)."""
    return track_popularity_refresh(days=days)


# No retries: beat sends the next run in IMPRESSIONS_FLUSH_SECONDS, and what a failed run
# claimed stays in Redis for it.
@shared_task(name="feedback.tasks.impressions_flush", ignore_result=True)
def impressions_flush() -> dict:
    """Write the impressions buffered in Redis to the database (beat, every few seconds)."""
    return asdict(services.impressions_flush())


@shared_task(name="feedback.tasks.impressions_prune", ignore_result=True)
def impressions_prune(days: int | None = None) -> int:
    """Delete impressions older than IMPRESSIONS_RETENTION_DAYS (beat, daily)."""
    return services.impressions_prune(days=days)
