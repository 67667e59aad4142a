from celery import shared_task

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
