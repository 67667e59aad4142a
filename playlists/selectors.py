"""Reads on playlists, with the visibility rules: owners see theirs, everyone sees public ones."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q, QuerySet

from playlists.models import Playlist, PlaylistEntry


def playlists_owned_by(*, user, include_generated: bool = False) -> QuerySet[Playlist]:
    """The user's playlists, most recently changed first: their own ones (those they can
    change), and with `include_generated` the ones built for them too."""
    playlists = Playlist.objects.filter(owner=user)
    if not include_generated:
        playlists = playlists.filter(generated="")
    return playlists.annotate(n_tracks=Count("entries")).order_by("-updated_at", "-id")


def playlists_generated_for(*, user) -> list[Playlist]:
    """The playlists built for the user (Weekly Exploration, Daily Jams), in that order."""
    if not user.is_authenticated:
        return []
    playlists = (
        Playlist.objects.filter(owner=user)
        .exclude(generated="")
        .annotate(n_tracks=Count("entries"))
    )
    order = list(Playlist.Generated.values)
    return sorted(playlists, key=lambda playlist: order.index(playlist.generated))


def generated_playlist_track_ids(*, owner_ids, generated: str) -> dict[int, list[int]]:
    """{owner id: track ids in order} of the `generated` playlist of each of `owner_ids`
    that has one (one query)."""
    rows = (
        PlaylistEntry.objects.filter(
            playlist__owner_id__in=list(owner_ids), playlist__generated=generated
        )
        .order_by("playlist__owner_id", "position")
        .values_list("playlist__owner_id", "track_id")
    )
    tracks: dict[int, list[int]] = {}
    for owner_id, track_id in rows:
        tracks.setdefault(owner_id, []).append(track_id)
    return tracks


def playlists_visible_to(*, user) -> QuerySet[Playlist]:
    visible = Q(is_public=True)
    if user.is_authenticated:
        visible |= Q(owner=user)
    return Playlist.objects.filter(visible).select_related("owner")


def playlist_for_reading(*, playlist_id: int, user, with_entries: bool = False) -> Playlist:
    """The playlist if the user may see it; Playlist.DoesNotExist otherwise, so that someone
    else's private playlist looks exactly like a missing one. `with_entries` prefetches the
    entries in order, each with its track and artist."""
    playlists = playlists_visible_to(user=user)
    if with_entries:
        playlists = playlists.prefetch_related(
            Prefetch("entries", queryset=playlist_entries_with_tracks())
        )
    return playlists.get(pk=playlist_id)


GENERATED_IS_READ_ONLY = (
    "A generated playlist is rebuilt on each run and cannot be changed; save a copy as your "
    "own playlist to change it."
)


def playlist_for_writing(*, playlist_id: int, user) -> Playlist:
    """The user's own playlist; PermissionDenied for someone else's public playlist and for a
    generated one, Playlist.DoesNotExist for someone else's private one."""
    playlist = playlist_for_reading(playlist_id=playlist_id, user=user)
    if playlist.owner_id != user.pk:
        raise PermissionDenied("Only the owner can change this playlist.")
    if playlist.is_generated:
        raise PermissionDenied(GENERATED_IS_READ_ONLY)
    return playlist


def playlist_entries_with_tracks() -> QuerySet[PlaylistEntry]:
    return PlaylistEntry.objects.select_related("track__artist").order_by("position")


def playlist_entries(*, playlist: Playlist) -> QuerySet[PlaylistEntry]:
    return playlist_entries_with_tracks().filter(playlist=playlist)
