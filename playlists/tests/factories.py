import factory
from django.db import connection

from catalog.tests.factories import TrackFactory, UserFactory
from playlists.models import Playlist, PlaylistEntry


class PlaylistFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Playlist

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Playlist {n}")
    is_public = False


def playlist_with_tracks(n_tracks: int, **playlist_fields) -> tuple[Playlist, list]:
    playlist = PlaylistFactory(**playlist_fields)
    tracks = TrackFactory.create_batch(n_tracks)
    PlaylistEntry.objects.bulk_create(
        PlaylistEntry(playlist=playlist, track=track, position=position)
        for position, track in enumerate(tracks)
    )
    return playlist, tracks


def track_order(playlist: Playlist) -> list[int]:
    """Track ids in position order, after checking that positions are exactly 0…n-1 and that the
    deferred unique constraint holds now (tests never reach the commit that would check it)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    rows = list(
        PlaylistEntry.objects.filter(playlist=playlist)
        .order_by("position")
        .values_list("position", "track_id")
    )
    assert [position for position, _ in rows] == list(range(len(rows)))
    return [track_id for _, track_id in rows]
