from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone

from catalog.demo_world import DemoWorld
from catalog.models import Artist, ArtistTag, Tag, Track, TrackTag
from feedback.context import interaction_context
from feedback.models import Interaction
from playlists.models import Playlist, PlaylistEntry
from tunedin.db import copy_rows

User = get_user_model()


def catalog_is_empty() -> bool:
    return not Track.objects.exists()


def track_popularity_refresh(*, days: int = 30) -> int:
    """Set Track.popularity to the number of plays and likes in the last `days` days.

    The window ends at the newest interaction, not at "now", so an imported or demo log keeps
    its popularity however old it is. Returns the number of tracks updated.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH newest AS (SELECT max(occurred_at) AS at FROM feedback_interaction),
            counts AS (
                SELECT track_id, count(*) AS plays
                FROM feedback_interaction, newest
                WHERE kind IN ('play', 'like') AND occurred_at > newest.at - make_interval(days => %s)
                GROUP BY track_id
            )
            UPDATE catalog_track AS track
            SET popularity = coalesce(counts.plays, 0)
            FROM catalog_track AS t LEFT JOIN counts ON counts.track_id = t.id
            WHERE track.id = t.id AND track.popularity IS DISTINCT FROM coalesce(counts.plays, 0)
            """,
            [days],
        )
        return cursor.rowcount


@transaction.atomic
def demo_world_write(*, world: DemoWorld, password: str) -> dict[str, int]:
    """Store a generated demo world. The first user is "demo" and an "admin" staff user is added;
    both log in with `password`, every other demo listener has an unusable password."""
    tags = Tag.objects.bulk_create([Tag(name=name) for name in world.tag_names])
    artists = Artist.objects.bulk_create(
        [Artist(name=name) for name in world.artist_names], batch_size=2000
    )
    ArtistTag.objects.bulk_create(
        [
            ArtistTag(artist=artists[artist], tag=tags[tag], weight=weight)
            for artist, links in enumerate(world.artist_tags)
            for tag, weight in links
        ],
        batch_size=5000,
    )
    tracks = Track.objects.bulk_create(
        [
            Track(title=title, artist=artists[artist], duration_ms=duration * 1000)
            for title, artist, duration in zip(
                world.track_titles, world.track_artist, world.track_duration_s, strict=True
            )
        ],
        batch_size=5000,
    )
    copy_rows(
        table=TrackTag._meta.db_table,
        columns=["track_id", "tag_id", "weight"],
        rows=(
            (tracks[track].pk, tags[tag].pk, weight)
            for track, links in enumerate(world.track_tags)
            for tag, weight in links
        ),
    )
    joined = timezone.now()
    users = User.objects.bulk_create(
        [
            User(
                username="demo" if index == 0 else name,
                password=make_password(password) if index == 0 else make_password(None),
                date_joined=joined,
                onboarded_at=joined,
            )
            for index, name in enumerate(world.usernames)
        ],
        batch_size=2000,
    )
    User.objects.create_superuser(username="admin", password=password, email="")
    User.favourite_tags.through.objects.bulk_create(
        [
            User.favourite_tags.through(user_id=users[user].pk, tag_id=tags[genre].pk)
            for user, genres in enumerate(world.user_genres)
            for genre in genres
        ],
        batch_size=5000,
    )

    def interaction_rows():
        for user, track, kind, occurred_at in world.events:
            hour, day_of_week = interaction_context(occurred_at=occurred_at)
            yield (
                users[user].pk, tracks[track].pk, kind, occurred_at, hour, day_of_week,
                Interaction.Source.DEMO, joined,
            )  # fmt: skip

    copy_rows(
        table=Interaction._meta.db_table,
        columns=[
            "user_id", "track_id", "kind", "occurred_at", "hour", "day_of_week", "source",
            "created_at",
        ],  # fmt: skip
        rows=interaction_rows(),
    )
    playlists = Playlist.objects.bulk_create(
        [
            Playlist(owner=users[owner], name=name, is_public=is_public)
            for owner, name, is_public, _ in world.playlists
        ],
        batch_size=2000,
    )
    copy_rows(
        table=PlaylistEntry._meta.db_table,
        columns=["playlist_id", "track_id", "position", "added_at"],
        rows=(
            (playlist.pk, tracks[track].pk, position, joined)
            for playlist, (_, _, _, track_list) in zip(playlists, world.playlists, strict=True)
            for position, track in enumerate(track_list)
        ),
    )
    track_popularity_refresh(days=365)
    return {
        "tags": len(tags),
        "artists": len(artists),
        "tracks": len(tracks),
        "users": len(users) + 1,
        "interactions": len(world.events),
        "playlists": len(playlists),
    }
