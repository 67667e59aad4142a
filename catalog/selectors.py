from django.db.models import QuerySet

from catalog.models import Track


def tracks_by_popularity(*, limit: int = 50) -> QuerySet[Track]:
    return Track.objects.select_related("artist").order_by("-popularity", "id")[:limit]
