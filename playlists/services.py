"""Writes on playlists. Entry positions stay dense (0…n-1) and unique after every call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.models import Track
from playlists.models import Playlist, PlaylistEntry

NAME_MAX_LENGTH = Playlist._meta.get_field("name").max_length
MAX_TRACKS_PER_ADD = 500
GENERATED_DESCRIPTIONS = {
    Playlist.Generated.WEEKLY_EXPLORATION: "Tracks you have never played, picked for you from "
    "your recommendations, at most two per artist. Rebuilt every week.",
    Playlist.Generated.DAILY_JAMS: "Tracks you liked or played but not in the last 60 days, "
    "mixed with close picks, at most two per artist. Rebuilt every day.",
}


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the playlist a name."})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            {"name": f"A playlist name has at most {NAME_MAX_LENGTH} characters ({len(name)})."}
        )
    return name


def _clean_track_ids(track_ids: Sequence[int]) -> list[int]:
    track_ids = [int(track_id) for track_id in track_ids]
    if not track_ids:
        raise ValidationError({"track_ids": "Give at least one track id."})
    if len(track_ids) > MAX_TRACKS_PER_ADD:
        raise ValidationError({"track_ids": f"Add at most {MAX_TRACKS_PER_ADD} tracks at a time."})
    known = set(Track.objects.filter(pk__in=track_ids).values_list("pk", flat=True))
    if unknown := sorted(set(track_ids) - known):
        listed = ", ".join(str(track_id) for track_id in unknown[:10])
        raise ValidationError({"track_ids": f"Unknown track ids: {listed}."})
    return track_ids


def _lock_and_count(playlist: Playlist) -> int:
    """Lock the playlist row (concurrent edits queue up) and return its number of entries."""
    list(Playlist.objects.select_for_update().filter(pk=playlist.pk).values_list("pk"))
    return PlaylistEntry.objects.filter(playlist=playlist).count()


def _check_position(*, field: str, position: int, length: int) -> None:
    if length == 0:
        raise ValidationError({field: "The playlist is empty."})
    if not 0 <= position < length:
        raise ValidationError({field: f"Position {position} is out of range 0…{length - 1}."})


def _touch(playlist: Playlist) -> None:
    playlist.updated_at = timezone.now()
    Playlist.objects.filter(pk=playlist.pk).update(updated_at=playlist.updated_at)


def playlist_create(
    *, owner, name: str, is_public: bool = False, description: str = ""
) -> Playlist:
    return Playlist.objects.create(
        owner=owner, name=_clean_name(name), is_public=is_public, description=description
    )


@transaction.atomic
def playlist_create_with_tracks(
    *, owner, name: str, track_ids: Sequence[int], is_public: bool = False
) -> Playlist:
    """A new playlist holding `track_ids`, or ValidationError and no playlist at all."""
    name, track_ids = _clean_name(name), _clean_track_ids(track_ids)
    playlist = playlist_create(owner=owner, name=name, is_public=is_public)
    return playlist_add_tracks(playlist=playlist, track_ids=track_ids)


def playlist_rename(*, playlist: Playlist, name: str) -> Playlist:
    playlist.name = _clean_name(name)
    playlist.save(update_fields=["name", "updated_at"])
    return playlist


def playlist_set_visibility(*, playlist: Playlist, is_public: bool) -> Playlist:
    playlist.is_public = is_public
    playlist.save(update_fields=["is_public", "updated_at"])
    return playlist


def playlist_delete(*, playlist: Playlist) -> None:
    playlist.delete()


@transaction.atomic
def playlist_add_tracks(
    *, playlist: Playlist, track_ids: Sequence[int], position: int | None = None
) -> Playlist:
    """Insert tracks (in the given order) at `position`, or append them when it is None.
    A track may appear more than once in a playlist."""
    track_ids = _clean_track_ids(track_ids)
    length = _lock_and_count(playlist)
    if position is None:
        position = length
    elif not 0 <= position <= length:
        raise ValidationError({"position": f"Position {position} is out of range 0…{length}."})
    # The unique (playlist, position) constraint is deferred, so shifting may overlap briefly.
    PlaylistEntry.objects.filter(playlist=playlist, position__gte=position).update(
        position=F("position") + len(track_ids)
    )
    PlaylistEntry.objects.bulk_create(
        [
            PlaylistEntry(playlist=playlist, track_id=track_id, position=position + offset)
            for offset, track_id in enumerate(track_ids)
        ]
    )
    _touch(playlist)
    return playlist


@transaction.atomic
def playlist_remove_entry(*, playlist: Playlist, position: int) -> Playlist:
    length = _lock_and_count(playlist)
    _check_position(field="position", position=position, length=length)
    PlaylistEntry.objects.filter(playlist=playlist, position=position).delete()
    PlaylistEntry.objects.filter(playlist=playlist, position__gt=position).update(
        position=F("position") - 1
    )
    _touch(playlist)
    return playlist


@transaction.atomic
def playlist_move_entry(*, playlist: Playlist, from_position: int, to_position: int) -> Playlist:
    """Move the entry at `from_position` to `to_position`; the entries between shift by one."""
    length = _lock_and_count(playlist)
    _check_position(field="from_position", position=from_position, length=length)
    _check_position(field="to_position", position=to_position, length=length)
    if from_position == to_position:
        return playlist
    entries = PlaylistEntry.objects.filter(playlist=playlist)
    moved_id = entries.get(position=from_position).pk
    if from_position < to_position:
        entries.filter(position__gt=from_position, position__lte=to_position).update(
            position=F("position") - 1
        )
    else:
        entries.filter(position__gte=to_position, position__lt=from_position).update(
            position=F("position") + 1
        )
    entries.filter(pk=moved_id).update(position=to_position)
    _touch(playlist)
    return playlist


@transaction.atomic
def playlist_save_copy(*, playlist: Playlist, owner, name: str | None = None) -> Playlist:
    """A new playlist of `owner`'s own (private, editable) with `playlist`'s tracks in order:
    how a listener keeps a generated playlist before its next rebuild. The name defaults to
    the playlist's, dated for a generated one."""
    if name is None:
        name = playlist.name
        if playlist.is_generated:
            name = f"{name} · {timezone.localdate():%d %b %Y}"
    copy = playlist_create(
        owner=owner, name=name, description=playlist.description if playlist.is_generated else ""
    )
    track_ids = list(playlist.entries.order_by("position").values_list("track_id", flat=True))
    PlaylistEntry.objects.bulk_create(
        PlaylistEntry(playlist=copy, track_id=track_id, position=position)
        for position, track_id in enumerate(track_ids)
    )
    return copy


@transaction.atomic
def generated_playlists_replace(*, track_ids: Mapping[tuple[int, str], Sequence[int]]) -> int:
    """Replace the generated playlists given as {(owner id, Playlist.Generated value): track
    ids in order}: each one created if missing, its entries replaced, its updated_at moved.
    One transaction for the whole batch (a few queries however many owners); returns the
    number of entries written."""
    if unknown := {kind for _, kind in track_ids} - set(Playlist.Generated.values):
        raise ValidationError({"generated": f"Unknown generated playlist {sorted(unknown)[0]}."})
    owner_ids = {owner_id for owner_id, _ in track_ids}
    existing = {
        (playlist.owner_id, playlist.generated): playlist
        for playlist in Playlist.objects.select_for_update().filter(
            owner_id__in=owner_ids, generated__in={kind for _, kind in track_ids}
        )
    }
    missing = [
        Playlist(
            owner_id=owner_id,
            generated=kind,
            name=Playlist.Generated(kind).label,
            description=GENERATED_DESCRIPTIONS[kind],
        )
        for owner_id, kind in track_ids
        if (owner_id, kind) not in existing
    ]
    for playlist in Playlist.objects.bulk_create(missing):
        existing[(playlist.owner_id, playlist.generated)] = playlist
    playlists = [existing[key] for key in track_ids]
    PlaylistEntry.objects.filter(playlist__in=playlists).delete()
    entries = PlaylistEntry.objects.bulk_create(
        [
            PlaylistEntry(playlist=existing[key], track_id=track_id, position=position)
            for key, ids in track_ids.items()
            for position, track_id in enumerate(ids)
        ],
        batch_size=5000,
    )
    Playlist.objects.filter(pk__in=[p.pk for p in playlists]).update(updated_at=timezone.now())
    return len(entries)
