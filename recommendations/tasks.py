from celery import shared_task
from django.db import OperationalError

from recommendations.generated_playlists import generated_playlists_build as build


@shared_task(
    name="recommendations.tasks.generated_playlists_build",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def generated_playlists_build(kinds: list[str] | None = None) -> dict:
    """Rebuild Weekly Exploration and/or Daily Jams for every active listener (the beat
    entries of playlists migration 0003); see recommendations.generated_playlists."""
    return build(kinds=kinds)
