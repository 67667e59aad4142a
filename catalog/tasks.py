from celery import shared_task

from catalog.services import track_popularity_refresh


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def refresh_track_popularity(days: int = 30) -> int:
    """Recount each track's recent plays and likes (drives MostPop and catalog ordering)."""
    return track_popularity_refresh(days=days)
