"""Reads on playlists, with the visibility rules: owners see theirs, everyone sees public ones."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q, QuerySet

from playlists.models import Playlist, PlaylistEntry


def playlists_owned_by(*, user) -> QuerySet[Playlist]:
    return (
        Playlist.objects.filter(owner=user)
        .annotate(n_tracks=Count("entries"))
        .order_by("-updated_at", "-id")
    )


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


def playlist_for_writing(*, playlist_id: int, user) -> Playlist:
    """The user's own playlist; PermissionDenied for someone else's public playlist and
    Playlist.DoesNotExist for a private one."""
    playlist = playlist_for_reading(playlist_id=playlist_id, user=user)
    if playlist.owner_id != user.pk:
        raise PermissionDenied("Only the owner can change this playlist.")
    return playlist


def playlist_entries_with_tracks() -> QuerySet[PlaylistEntry]:
    return PlaylistEntry.objects.select_related("track__artist").order_by("position")


def playlist_entries(*, playlist: Playlist) -> QuerySet[PlaylistEntry]:
    return playlist_entries_with_tracks().filter(playlist=playlist)
