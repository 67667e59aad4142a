"""What the site's pages show from the recommender.

Thin wrappers over the recommendations app's selectors and services, which fall back to popularity
(or tag overlap) while no trained model is active; `model_version` is None then, and the
templates say so. Tags are prefetched here because every track card shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.models import Artist, Track
from catalog.selectors import tracks_by_popularity, tracks_with_tags
from feedback.models import Interaction
from feedback.services import interaction_record
from recommendations.continuation_services import playlist_continuation
from recommendations.selectors import (
    DEFAULT_SLATE,
    ScoredArtist,
    ScoredTrack,
    artists_similar_to,
    tracks_similar_to,
)
from recommendations.services import blocked_tracks_for, recommendations_for_user

POPULAR_REASON = "Popular right now"


@dataclass(frozen=True)
class SiteTrackList:
    items: list[ScoredTrack]
    model_version: int | None


def _with_tags(items: list[ScoredTrack]) -> list[ScoredTrack]:
    tracks_with_tags(item.track for item in items)
    return items


def popular_tracks(*, n: int) -> SiteTrackList:
    tracks = tracks_by_popularity(limit=n)
    items = [ScoredTrack(track=t, score=t.popularity, reason=POPULAR_REASON) for t in tracks]
    return SiteTrackList(items=_with_tags(items), model_version=None)


def discover_tracks(*, user, n: int, exclude_ids: set[int] = frozenset()) -> SiteTrackList:
    """The user's next `n` recommendations, skipping the tracks already on the page, with at
    most 2 tracks of an artist ahead of the others (DEFAULT_SLATE; the ranking, and so
    every page of it, leaves out what the user asked not to be recommended)."""
    # Ask for enough to cover the tracks already shown, then drop those.
    result = recommendations_for_user(
        user=user, n=min(200, n + len(exclude_ids)), slate=DEFAULT_SLATE
    )
    items = [item for item in result.items if item.track.pk not in exclude_ids][:n]
    return SiteTrackList(items=_with_tags(items), model_version=result.model_version)


def similar_tracks(*, track: Track, n: int, user=None) -> list[ScoredTrack]:
    """Tracks like `track`, without those `user` asked not to be recommended."""
    return tracks_similar_to(track=track, n=n, exclude=blocked_tracks_for(user=user).track_ids)


def similar_artists(*, artist: Artist, n: int) -> list[ScoredArtist]:
    return artists_similar_to(artist=artist, n=n)


def playlist_suggestions(*, playlist, k: int, user=None) -> SiteTrackList:
    """Tracks to continue the playlist with, none of them already in it nor asked by `user`
    not to be recommended."""
    result = playlist_continuation(playlist=playlist, k=k, user=user)
    return SiteTrackList(items=_with_tags(result.items), model_version=result.model_version)


def feedback_record(*, user, track: Track, kind: str) -> None:
    """Store a like or skip from the site through the feedback app's service."""
    interaction_record(user=user, track=track, kind=kind, source=Interaction.Source.WEB)
