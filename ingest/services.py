"""Writers for the demo world and imported datasets: catalog rows, the users, their
listening events and playlists, in one transaction each."""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from catalog.models import Artist, ArtistTag, Tag, Track, TrackTag
from feedback.context import interaction_context
from feedback.models import Interaction
from feedback.services import track_popularity_refresh
from ingest.demo_world import DemoWorld
from ingest.importers import ArtistRecord, ImportBatch, TrackRecord
from playlists.models import Playlist, PlaylistEntry
from tunedin.db import copy_rows

User = get_user_model()


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
            "user_id",
            "track_id",
            "kind",
            "occurred_at",
            "hour",
            "day_of_week",
            "source",
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


def _artist_key(record: ArtistRecord) -> tuple:
    if record.musicbrainz_id:
        return ("musicbrainz_id", record.musicbrainz_id)
    if record.spotify_uri:
        return ("spotify_uri", record.spotify_uri)
    return ("name", record.name)


def _artist_ids(records: set[ArtistRecord]) -> dict[tuple, int]:
    wanted = {_artist_key(record): record for record in records}

    def lookup() -> dict[tuple, int]:
        found: dict[tuple, int] = {}
        for field in ("musicbrainz_id", "spotify_uri", "name"):
            values = [key[1] for key in wanted if key[0] == field]
            queryset = Artist.objects.filter(**{f"{field}__in": values})
            if field == "name":  # a bare name only matches an artist without external ids
                queryset = queryset.filter(musicbrainz_id=None, spotify_uri=None)
            for artist_id, value in queryset.order_by("-id").values_list("id", field):
                found[(field, value)] = artist_id
        return found

    found = lookup()
    missing = [record for key, record in wanted.items() if key not in found]
    if missing:
        Artist.objects.bulk_create(
            [
                Artist(
                    name=record.name[:255],
                    musicbrainz_id=record.musicbrainz_id,
                    spotify_uri=record.spotify_uri,
                )
                for record in missing
            ],
            batch_size=5000,
        )
        found = lookup()
    return found


def _track_key(record: TrackRecord, artist_id: int) -> tuple:
    if record.musicbrainz_id:
        return ("musicbrainz_id", record.musicbrainz_id)
    if record.spotify_uri:
        return ("spotify_uri", record.spotify_uri)
    return ("title", artist_id, record.title[:255])


def _track_ids(records: set[TrackRecord]) -> dict[TrackRecord, int]:
    artist_ids = _artist_ids({record.artist for record in records})
    keyed = {
        record: _track_key(record, artist_ids[_artist_key(record.artist)]) for record in records
    }

    def lookup() -> dict[tuple, int]:
        found: dict[tuple, int] = {}
        for field in ("musicbrainz_id", "spotify_uri"):
            values = [key[1] for key in keyed.values() if key[0] == field]
            for track_id, value in Track.objects.filter(**{f"{field}__in": values}).values_list(
                "id", field
            ):
                found[(field, value)] = track_id
        titled = [key for key in keyed.values() if key[0] == "title"]
        if titled:
            rows = Track.objects.filter(
                artist_id__in={key[1] for key in titled},
                title__in={key[2] for key in titled},
                musicbrainz_id=None,
                spotify_uri=None,
            ).order_by("-id")
            for track_id, artist_id, title in rows.values_list("id", "artist_id", "title"):
                found[("title", artist_id, title)] = track_id
        return found

    found = lookup()
    missing = {key: record for record, key in keyed.items() if key not in found}
    if missing:
        Track.objects.bulk_create(
            [
                Track(
                    title=record.title[:255],
                    artist_id=artist_ids[_artist_key(record.artist)],
                    musicbrainz_id=record.musicbrainz_id,
                    spotify_uri=record.spotify_uri,
                    duration_ms=record.duration_ms,
                )
                for record in missing.values()
            ],
            batch_size=5000,
        )
        found = lookup()
    return {record: found[key] for record, key in keyed.items()}


def _user_ids(usernames: set[str]) -> dict[str, int]:
    existing = dict(User.objects.filter(username__in=usernames).values_list("username", "id"))
    missing = usernames - existing.keys()
    if missing:
        User.objects.bulk_create(
            [User(username=name, password=make_password(None)) for name in sorted(missing)],
            batch_size=5000,
        )
        existing = dict(User.objects.filter(username__in=usernames).values_list("username", "id"))
    return existing


@transaction.atomic
def dataset_import(*, batch: ImportBatch, playlist_owner: str = "import") -> dict[str, int]:
    """Write an imported batch; re-running it adds nothing (idempotency keys, external ids)."""
    before = {
        "artists": Artist.objects.count(),
        "tracks": Track.objects.count(),
        "users": User.objects.count(),
        "interactions": Interaction.objects.count(),
        "playlists": Playlist.objects.count(),
    }
    track_records = {event.track for event in batch.events}
    track_records |= {track for playlist in batch.playlists for track in playlist.tracks}
    track_ids = _track_ids(track_records)
    if batch.events:
        user_ids = _user_ids({event.username for event in batch.events})
        interactions = []
        for event in batch.events:
            hour, day_of_week = interaction_context(occurred_at=event.occurred_at)
            interactions.append(
                Interaction(
                    user_id=user_ids[event.username],
                    track_id=track_ids[event.track],
                    kind=event.kind,
                    occurred_at=event.occurred_at,
                    hour=hour,
                    day_of_week=day_of_week,
                    source=Interaction.Source.IMPORT,
                    idempotency_key=event.idempotency_key,
                )
            )
        Interaction.objects.bulk_create(interactions, batch_size=5000, ignore_conflicts=True)
    if batch.playlists:
        owner_id = _user_ids({playlist_owner})[playlist_owner]
        known = set(
            Playlist.objects.filter(
                external_id__in=[p.external_id for p in batch.playlists]
            ).values_list("external_id", flat=True)
        )
        new = [p for p in batch.playlists if p.external_id not in known]
        created = Playlist.objects.bulk_create(
            [
                Playlist(owner_id=owner_id, name=p.name, is_public=True, external_id=p.external_id)
                for p in new
            ],
            batch_size=2000,
        )
        PlaylistEntry.objects.bulk_create(
            [
                PlaylistEntry(playlist=playlist, track_id=track_ids[track], position=position)
                for playlist, record in zip(created, new, strict=True)
                for position, track in enumerate(record.tracks)
            ],
            batch_size=5000,
        )
    return {
        "artists": Artist.objects.count() - before["artists"],
        "tracks": Track.objects.count() - before["tracks"],
        "users": User.objects.count() - before["users"],
        "interactions": Interaction.objects.count() - before["interactions"],
        "playlists": Playlist.objects.count() - before["playlists"],
    }
