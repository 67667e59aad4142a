"""Writers for the demo world and imported datasets: catalog rows, the users, their listening
events and playlists, in one transaction each.

Rows go in with PostgreSQL COPY behind a tqdm progress bar. New rows get their ids from the
table's own sequence first (`_reserve_ids`), so a writer knows them without reading back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction
from django.utils import timezone
from tqdm import tqdm

from catalog.models import Artist, ArtistTag, Tag, Track, TrackTag
from feedback.context import interaction_context
from feedback.models import Interaction
from feedback.services import track_popularity_refresh
from ingest.demo_world import DemoWorld
from ingest.records import EventRecord, ImportRecord, PlaylistRecord, SkippedRecord, TrackRecord
from playlists.models import Playlist, PlaylistEntry
from tunedin.db import copy_rows

User = get_user_model()

# Records written per step of an import: bounds the memory of a streamed file and the size of
# each catalog lookup.
IMPORT_CHUNK = 20_000
EXTERNAL_IDS = ("musicbrainz_id", "spotify_uri")
INTERACTION_COLUMNS = ("user_id", "track_id", "kind", "occurred_at", "hour", "day_of_week",
                       "source", "idempotency_key", "created_at")  # fmt: skip
STAGED_INTERACTIONS = "ingest_staged_interaction"
# Smaller writes take well under a second: no progress bar for them.
PROGRESS_MIN_ROWS = 10_000


def _reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """`count` new primary keys from the table's identity sequence."""
    if count == 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _copy(
    *, table: str, columns: Sequence[str], rows: Iterable[Sequence], total: int, description: str
) -> None:
    bar = tqdm(
        rows,
        total=total,
        desc=description,
        unit=" rows",
        leave=False,
        disable=total < PROGRESS_MIN_ROWS,
    )
    copy_rows(table=table, columns=columns, rows=bar)
    if total:
        _analyze(table)


def _analyze(table: str) -> None:
    """Fresh planner statistics for a table just bulk-written: until autovacuum gets to it, the
    next queries (the popularity refresh, training reads) are planned for the table as it was,
    perhaps empty, and a nested loop over a few million rows runs for hours."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def _copy_new(
    model: type[models.Model], *, columns: Sequence[str], rows: Sequence[Sequence], description: str
) -> list[int]:
    """COPY new rows into `model`'s table; their ids, in the order of `rows`."""
    ids = _reserve_ids(model, len(rows))
    _copy(
        table=model._meta.db_table,
        columns=["id", *columns],
        rows=((pk, *row) for pk, row in zip(ids, rows, strict=True)),
        total=len(rows),
        description=description,
    )
    return ids


@transaction.atomic
def demo_world_write(*, world: DemoWorld, password: str) -> dict[str, int]:
    """Store a generated demo world. The first user is "demo" and an "admin" staff user is added;
    both log in with `password`, every other demo listener has an unusable password."""
    now = timezone.now()
    tag_ids = _copy_new(
        Tag, columns=["name"], rows=[(name,) for name in world.tag_names], description="tags"
    )
    artist_ids = _copy_new(
        Artist,
        columns=["name", "created_at"],
        rows=[(name, now) for name in world.artist_names],
        description="artists",
    )
    _copy(
        table=ArtistTag._meta.db_table,
        columns=["artist_id", "tag_id", "weight"],
        rows=(
            (artist_ids[artist], tag_ids[tag], weight)
            for artist, links in enumerate(world.artist_tags)
            for tag, weight in links
        ),
        total=sum(len(links) for links in world.artist_tags),
        description="artist tags",
    )
    track_ids = _copy_new(
        Track,
        columns=["title", "artist_id", "duration_ms", "popularity", "created_at"],
        rows=[
            (title, artist_ids[artist], duration * 1000, 0.0, now)
            for title, artist, duration in zip(
                world.track_titles, world.track_artist, world.track_duration_s, strict=True
            )
        ],
        description="tracks",
    )
    _copy(
        table=TrackTag._meta.db_table,
        columns=["track_id", "tag_id", "weight"],
        rows=(
            (track_ids[track], tag_ids[tag], weight)
            for track, links in enumerate(world.track_tags)
            for tag, weight in links
        ),
        total=sum(len(links) for links in world.track_tags),
        description="track tags",
    )
    user_ids = _copy_new(
        User,
        columns=[
            "username",
            "password",
            "is_superuser",
            "is_staff",
            "is_active",
            "first_name",
            "last_name",
            "email",
            "date_joined",
            "onboarded_at",
        ],  # fmt: skip
        rows=[
            (
                "demo" if index == 0 else name,
                make_password(password if index == 0 else None),
                False,
                False,
                True,
                "",
                "",
                "",
                now,
                now,
            )  # fmt: skip
            for index, name in enumerate(world.usernames)
        ],
        description="users",
    )
    User.objects.create_superuser(username="admin", password=password, email="")
    _copy(
        table=User.favourite_tags.through._meta.db_table,
        columns=["user_id", "tag_id"],
        rows=(
            (user_ids[user], tag_ids[genre])
            for user, genres in enumerate(world.user_genres)
            for genre in genres
        ),
        total=sum(len(genres) for genres in world.user_genres),
        description="favourite tags",
    )

    def interaction_rows():
        for user, track, kind, occurred_at in world.events:
            hour, day_of_week = interaction_context(occurred_at=occurred_at)
            yield (
                user_ids[user], track_ids[track], kind, occurred_at, hour, day_of_week,
                Interaction.Source.DEMO, None, now,
            )  # fmt: skip

    _copy(
        table=Interaction._meta.db_table,
        columns=INTERACTION_COLUMNS,
        rows=interaction_rows(),
        total=len(world.events),
        description="interactions",
    )
    playlist_ids = _copy_new(
        Playlist,
        columns=["owner_id", "name", "description", "is_public", "created_at", "updated_at"],
        rows=[
            (user_ids[owner], name, "", is_public, now, now)
            for owner, name, is_public, _ in world.playlists
        ],
        description="playlists",
    )
    _copy(
        table=PlaylistEntry._meta.db_table,
        columns=["playlist_id", "track_id", "position", "added_at"],
        rows=(
            (playlist_id, track_ids[track], position, now)
            for playlist_id, (_, _, _, tracks) in zip(playlist_ids, world.playlists, strict=True)
            for position, track in enumerate(tracks)
        ),
        total=sum(len(tracks) for _, _, _, tracks in world.playlists),
        description="playlist entries",
    )
    track_popularity_refresh(days=365)
    return {
        "tags": len(tag_ids),
        "artists": len(artist_ids),
        "tracks": len(track_ids),
        "users": len(user_ids) + 1,
        "interactions": len(world.events),
        "playlists": len(playlist_ids),
    }


@dataclass(frozen=True)
class _Wanted:
    """A catalog row an import needs: its name (a track's title), a track's artist, and the
    external id it is known by, if any."""

    name: str
    artist_id: int | None
    id_field: str | None
    id_value: str | None


def _wanted(record, *, name: str, artist_id: int | None = None) -> _Wanted:
    name = name.replace("\x00", "").strip()[:255]
    for field in EXTERNAL_IDS:
        if value := getattr(record, field):
            return _Wanted(name, artist_id, field, value)
    return _Wanted(name, artist_id, None, None)


class _CatalogIds:
    """Finds or creates the artists and tracks of imported records, remembering them for the
    rest of the import.

    A record with an external id (MusicBrainz id, Spotify URI) matches the row that has it;
    failing that, the oldest row of the same name (and artist) that has no id of that kind
    takes it, so that listens from different sources meet on one row; failing that, a new row
    is made. A record with a name only matches a row of that name (and artist): one without
    external ids first, else the oldest; failing that, a new row is made."""

    def __init__(self, *, now: datetime):
        self.now = now
        self.artists: dict[_Wanted, int] = {}
        self.tracks: dict[_Wanted, int] = {}
        self.created = {Artist: 0, Track: 0}
        self.by_record: dict[TrackRecord, int] = {}

    def track_ids(self, records: Collection[TrackRecord]) -> dict[TrackRecord, int]:
        """The track id of each record (a listening history repeats its tracks: each distinct
        record is resolved once per import)."""
        records = [record for record in records if record not in self.by_record]
        artists = {r.artist: _wanted(r.artist, name=r.artist.name) for r in records}
        self._resolve(Artist, set(artists.values()), self.artists, durations={})
        tracks = {
            r: _wanted(r, name=r.title, artist_id=self.artists[artists[r.artist]]) for r in records
        }
        durations = {wanted: r.duration_ms for r, wanted in tracks.items() if r.duration_ms}
        self._resolve(Track, set(tracks.values()), self.tracks, durations=durations)
        self.by_record.update((record, self.tracks[wanted]) for record, wanted in tracks.items())
        return self.by_record

    def _resolve(
        self,
        model: type[Artist] | type[Track],
        wanted: set[_Wanted],
        found: dict[_Wanted, int],
        *,
        durations: dict[_Wanted, int],
    ) -> None:
        # sorted, so that which record adopts which row does not depend on set order
        todo = sorted(
            (w for w in wanted if w not in found),
            key=lambda w: (w.id_field or "", w.id_value or "", w.artist_id or 0, w.name),
        )
        keyed = [w for w in todo if w.id_field]
        for field in EXTERNAL_IDS:
            values = {w.id_value for w in keyed if w.id_field == field}
            if values:
                rows = model.objects.filter(**{f"{field}__in": values}).values_list(field, "id")
                ids = dict(rows)
                for w in keyed:
                    if w.id_field == field and w.id_value in ids:
                        found[w] = ids[w.id_value]
        self._adopt(model, [w for w in keyed if w not in found], found)
        new: dict[tuple, _Wanted] = {}
        for w in keyed:
            if w not in found:
                new.setdefault((w.id_field, w.id_value), w)
        created = dict(zip(new, self._create(model, list(new.values()), durations), strict=True))
        for w in keyed:
            if w not in found:
                found[w] = created[(w.id_field, w.id_value)]
        named = [w for w in todo if not w.id_field]
        if named:
            rows_by_name = self._rows_named(model, named)
            missing = []
            for w in named:
                if row_ids := rows_by_name.get((w.artist_id, w.name)):
                    found[w] = row_ids[0]
                else:
                    missing.append(w)
            found.update(zip(missing, self._create(model, missing, durations), strict=True))

    def _adopt(
        self, model: type[Artist] | type[Track], orphans: list[_Wanted], found: dict[_Wanted, int]
    ) -> None:
        """Give the ids no row has to rows of the same name (and artist) that lack that kind."""
        taken: dict[tuple[str, str], int] = {}
        for field in EXTERNAL_IDS:
            group = [w for w in orphans if w.id_field == field]
            if not group:
                continue
            candidates = self._rows_named(model, group, **{f"{field}__isnull": True})
            claimed = set(taken.values())
            for w in group:
                key = (field, w.id_value)
                if key not in taken:
                    free = [
                        pk for pk in candidates.get((w.artist_id, w.name), ()) if pk not in claimed
                    ]
                    if not free:
                        continue
                    taken[key] = free[0]
                    claimed.add(free[0])
                found[w] = taken[key]
        for field in EXTERNAL_IDS:
            adopted = [(pk, value) for (kind, value), pk in taken.items() if kind == field]
            if adopted:
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {model._meta.db_table} AS row SET {field} = adopted.value "
                        "FROM unnest(%s::bigint[], %s::text[]) AS adopted(id, value) "
                        "WHERE row.id = adopted.id",
                        [[pk for pk, _ in adopted], [value for _, value in adopted]],
                    )

    def _rows_named(
        self, model: type[Artist] | type[Track], group: list[_Wanted], **filters
    ) -> dict[tuple[int | None, str], list[int]]:
        """Ids of the rows named like `group` (by their artist for tracks), rows without
        external ids first, then the oldest."""
        if model is Track:
            queryset = Track.objects.filter(
                artist_id__in={w.artist_id for w in group}, title__in={w.name for w in group}
            )
            name_fields = ("artist_id", "title")
        else:
            queryset = Artist.objects.filter(name__in={w.name for w in group})
            name_fields = ("name",)
        rows = queryset.filter(**filters).values_list(
            "id", *EXTERNAL_IDS, "lastfm_id", *name_fields
        )
        by_name: dict[tuple[int | None, str], list[int]] = defaultdict(list)
        for row in sorted(rows, key=lambda row: (any(row[1:4]), row[0])):
            name_key = row[4:] if model is Track else (None, *row[4:])
            by_name[name_key].append(row[0])
        return by_name

    def _create(
        self,
        model: type[Artist] | type[Track],
        wanted: list[_Wanted],
        durations: dict[_Wanted, int],
    ) -> list[int]:
        if not wanted:
            return []
        self.created[model] += len(wanted)

        def ids(w: _Wanted) -> tuple[str | None, str | None]:
            return tuple(w.id_value if w.id_field == field else None for field in EXTERNAL_IDS)

        if model is Artist:
            return _copy_new(
                Artist,
                columns=["name", *EXTERNAL_IDS, "created_at"],
                rows=[(w.name, *ids(w), self.now) for w in wanted],
                description="new artists",
            )
        return _copy_new(
            Track,
            columns=[
                "title",
                "artist_id",
                "duration_ms",
                *EXTERNAL_IDS,
                "popularity",
                "created_at",
            ],
            rows=[(w.name, w.artist_id, durations.get(w), *ids(w), 0.0, self.now) for w in wanted],
            description="new tracks",
        )


class _UserIds:
    """Finds the users of imported records by user name, creating the missing ones (with an
    unusable password: they sign in once someone sets one)."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.created = 0

    def lookup(self, usernames: set[str]) -> dict[str, int]:
        missing = usernames - self.ids.keys()
        if missing:
            found = dict(User.objects.filter(username__in=missing).values_list("username", "id"))
            new = sorted(missing - found.keys())
            if new:
                User.objects.bulk_create(
                    [User(username=name, password=make_password(None)) for name in new],
                    batch_size=5000,
                )
                found |= dict(User.objects.filter(username__in=new).values_list("username", "id"))
                self.created += len(new)
            self.ids.update(found)
        return {name: self.ids[name] for name in usernames}


class _DatasetWriter:
    def __init__(self, *, playlist_owner: str):
        self.now = timezone.now()
        self.playlist_owner = playlist_owner
        self.catalog = _CatalogIds(now=self.now)
        self.users = _UserIds()
        self.playlists_seen: set[str] = set()
        self.staging_table = False
        self.counts = {"interactions": 0, "playlists": 0, "duplicate_events": 0, "skipped": 0}

    def write(self, chunk: list[ImportRecord]) -> None:
        events = [record for record in chunk if isinstance(record, EventRecord)]
        playlists = [record for record in chunk if isinstance(record, PlaylistRecord)]
        self.counts["skipped"] += sum(isinstance(record, SkippedRecord) for record in chunk)
        tracks = {event.track for event in events}
        tracks.update(track for playlist in playlists for track in playlist.tracks)
        track_ids = self.catalog.track_ids(tracks)
        if events:
            self._write_events(events, track_ids)
        if playlists:
            self._write_playlists(playlists, track_ids)

    def _write_events(self, events: list[EventRecord], track_ids: dict[TrackRecord, int]) -> None:
        user_ids = self.users.lookup({event.username for event in events})
        columns = ", ".join(INTERACTION_COLUMNS)
        with connection.cursor() as cursor:
            if not self.staging_table:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE {STAGED_INTERACTIONS} ON COMMIT DROP AS "
                    f"SELECT {columns} FROM {Interaction._meta.db_table} WITH NO DATA"
                )
                self.staging_table = True

        def rows():
            for event in events:
                hour, day_of_week = interaction_context(occurred_at=event.occurred_at)
                yield (
                    user_ids[event.username], track_ids[event.track], event.kind,
                    event.occurred_at, hour, day_of_week, Interaction.Source.IMPORT,
                    event.idempotency_key, self.now,
                )  # fmt: skip

        # COPY cannot skip rows that are already there: stage them, then insert what is new.
        copy_rows(table=STAGED_INTERACTIONS, columns=INTERACTION_COLUMNS, rows=rows())
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Interaction._meta.db_table} ({columns}) "
                f"SELECT {columns} FROM {STAGED_INTERACTIONS} ON CONFLICT DO NOTHING"
            )
            inserted = cursor.rowcount
            cursor.execute(f"TRUNCATE {STAGED_INTERACTIONS}")
        self.counts["interactions"] += inserted
        self.counts["duplicate_events"] += len(events) - inserted

    def _write_playlists(
        self, playlists: list[PlaylistRecord], track_ids: dict[TrackRecord, int]
    ) -> None:
        new = []
        for playlist in playlists:
            if playlist.external_id not in self.playlists_seen:
                self.playlists_seen.add(playlist.external_id)
                new.append(playlist)
        known = set(
            Playlist.objects.filter(external_id__in=[p.external_id for p in new]).values_list(
                "external_id", flat=True
            )
        )
        new = [playlist for playlist in new if playlist.external_id not in known]
        if not new:
            return
        owner_id = self.users.lookup({self.playlist_owner})[self.playlist_owner]
        playlist_ids = _copy_new(
            Playlist,
            columns=[
                "owner_id",
                "name",
                "description",
                "is_public",
                "external_id",
                "created_at",
                "updated_at",
            ],  # fmt: skip
            rows=[(owner_id, p.name, "", True, p.external_id, self.now, self.now) for p in new],
            description="playlists",
        )
        _copy(
            table=PlaylistEntry._meta.db_table,
            columns=["playlist_id", "track_id", "position", "added_at"],
            rows=(
                (playlist_id, track_ids[track], position, self.now)
                for playlist_id, playlist in zip(playlist_ids, new, strict=True)
                for position, track in enumerate(playlist.tracks)
            ),
            total=sum(len(playlist.tracks) for playlist in new),
            description="playlist entries",
        )
        self.counts["playlists"] += len(new)

    def close(self) -> dict[str, int]:
        if self.staging_table:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {STAGED_INTERACTIONS}")
        if self.counts["interactions"]:
            _analyze(Interaction._meta.db_table)
        return {
            "artists": self.catalog.created[Artist],
            "tracks": self.catalog.created[Track],
            "users": self.users.created,
            **self.counts,
        }


@transaction.atomic
def dataset_import(
    *, records: Iterable[ImportRecord], playlist_owner: str = "import"
) -> dict[str, int]:
    """Write imported records as a reader streams them, `IMPORT_CHUNK` at a time, in one
    transaction: a reader's error part-way rolls everything back.

    Re-running an import adds nothing: events carry idempotency keys (the database drops the
    ones a user already has), playlists their external ids, and catalog rows are matched
    (`_CatalogIds`). Returns the numbers of artists, tracks, users, interactions and playlists
    added, of events that were already there (`duplicate_events`) and of rows the reader
    skipped (`skipped`, e.g. podcast episodes)."""
    writer = _DatasetWriter(playlist_owner=playlist_owner)
    records = iter(records)
    while chunk := list(islice(records, IMPORT_CHUNK)):
        writer.write(chunk)
    return writer.close()
