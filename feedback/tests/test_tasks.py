import pytest

from catalog.models import Track
from catalog.tests.factories import TrackFactory
from feedback.tasks import refresh_track_popularity
from feedback.tests.factories import InteractionFactory


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_refreshes_popularity_through_redis(celery_worker_process):
    loved, ignored = TrackFactory(), TrackFactory()
    for kind in ("play", "play", "like", "skip"):
        InteractionFactory(track=loved, kind=kind)
    InteractionFactory(track=ignored, kind="skip")

    result = refresh_track_popularity.delay(days=30)

    assert result.get(timeout=60) == 1  # only the loved track changed
    assert Track.objects.get(pk=loved.pk).popularity == 3
    assert Track.objects.get(pk=ignored.pk).popularity == 0
