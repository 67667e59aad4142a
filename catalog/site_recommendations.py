"""What the site shows from the recommender, whether or not a trained model is being served.

Each function calls the recommendations app's selector when it exists and otherwise falls back
to popularity (or tag overlap), so the pages work before the models land and pick them up after.
`model_version` is None whenever no trained model produced the list: the templates say so.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from django.db.models import Count, Q

from catalog.models import Artist, Track
from catalog.selectors import tracks_with_tags
from feedback.models import Interaction
from feedback.services import interaction_record

logger = logging.getLogger(__name__)

POPULAR_REASON = "Popular right now"


@dataclass(frozen=True)
class SiteTrack:
    track: Track
    score: float
    reason: str = ""


@dataclass(frozen=True)
class SiteArtist:
    artist: Artist
    score: float


@dataclass(frozen=True)
class SiteTrackList:
    items: list[SiteTrack]
    model_version: int | None


def _serving_function(module: str, name: str):
    """The recommender's function `module.name`, or None while it does not exist yet."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _popular(*, n: int, exclude_ids: set[int] = frozenset()) -> list[SiteTrack]:
    tracks = (
        Track.objects.select_related("artist")
        .exclude(pk__in=exclude_ids)
        .order_by("-popularity", "id")[:n]
    )
    return [SiteTrack(track=t, score=t.popularity, reason=POPULAR_REASON) for t in tracks]


def _with_tags(items: list[SiteTrack]) -> list[SiteTrack]:
    tracks_with_tags(item.track for item in items)
    return items


def popular_tracks(*, n: int) -> SiteTrackList:
    return SiteTrackList(items=_with_tags(_popular(n=n)), model_version=None)


def discover_tracks(*, user, n: int, exclude_ids: set[int] = frozenset()) -> SiteTrackList:
    """The user's next `n` recommendations, skipping the tracks already on the page."""
    recommendations_for_user = _serving_function(
        "recommendations.selectors", "recommendations_for_user"
    )
    if recommendations_for_user is None:
        seen = set(Interaction.objects.filter(user=user).values_list("track_id", flat=True))
        items = _popular(n=n, exclude_ids=seen | set(exclude_ids))
        return SiteTrackList(items=_with_tags(items), model_version=None)
    # Ask for enough to cover the tracks already shown, then drop those.
    result = recommendations_for_user(user=user, n=n + len(exclude_ids), offset=0)
    items = [
        SiteTrack(track=item.track, score=item.score, reason=item.reason)
        for item in result.items
        if item.track.pk not in exclude_ids
    ][:n]
    return SiteTrackList(items=_with_tags(items), model_version=result.model_version)


def similar_tracks(*, track: Track, n: int) -> list[SiteTrack]:
    tracks_similar_to = _serving_function("recommendations.selectors", "tracks_similar_to")
    if tracks_similar_to is not None:
        return [
            SiteTrack(track=item.track, score=item.score)
            for item in tracks_similar_to(track=track, n=n)
        ]
    tag_ids = list(track.tag_links.values_list("tag_id", flat=True))
    tracks = (
        Track.objects.exclude(pk=track.pk)
        .filter(Q(tag_links__tag_id__in=tag_ids) | Q(artist_id=track.artist_id))
        .annotate(shared=Count("tag_links", filter=Q(tag_links__tag_id__in=tag_ids)))
        .select_related("artist")
        .order_by("-shared", "-popularity", "id")[:n]
    )
    return [SiteTrack(track=t, score=float(t.shared)) for t in tracks]


def similar_artists(*, artist: Artist, n: int) -> list[SiteArtist]:
    artists_similar_to = _serving_function("recommendations.selectors", "artists_similar_to")
    if artists_similar_to is not None:
        return [
            SiteArtist(artist=item.artist, score=item.score)
            for item in artists_similar_to(artist=artist, n=n)
        ]
    tag_ids = list(artist.tag_links.values_list("tag_id", flat=True))
    artists = (
        Artist.objects.exclude(pk=artist.pk)
        .filter(tag_links__tag_id__in=tag_ids)
        .annotate(shared=Count("tag_links"))
        .order_by("-shared", "name")[:n]
    )
    return [SiteArtist(artist=a, score=float(a.shared)) for a in artists]


def playlist_suggestions(*, playlist, k: int) -> SiteTrackList:
    """Tracks to continue the playlist with, none of them already in it."""
    playlist_continuation = _serving_function(
        "recommendations.selectors", "playlist_continuation"
    ) or _serving_function("recommendations.continuation_selectors", "playlist_continuation")
    if playlist_continuation is not None:
        result = playlist_continuation(playlist=playlist, k=k)
        items = [SiteTrack(track=item.track, score=item.score) for item in result.items]
        return SiteTrackList(items=_with_tags(items), model_version=result.model_version)
    in_playlist = set(playlist.entries.values_list("track_id", flat=True))
    if not in_playlist:
        return SiteTrackList(items=_with_tags(_popular(n=k)), model_version=None)
    artist_ids = set(Track.objects.filter(pk__in=in_playlist).values_list("artist_id", flat=True))
    tag_ids = set(
        Track.objects.filter(pk__in=in_playlist).values_list("tag_links__tag_id", flat=True)
    ) - {None}
    tracks = (
        Track.objects.exclude(pk__in=in_playlist)
        .filter(Q(tag_links__tag_id__in=tag_ids) | Q(artist_id__in=artist_ids))
        .annotate(shared=Count("tag_links", filter=Q(tag_links__tag_id__in=tag_ids)))
        .select_related("artist")
        .order_by("-shared", "-popularity", "id")[:k]
    )
    items = [SiteTrack(track=t, score=float(t.shared), reason="Shares tags") for t in tracks]
    return SiteTrackList(items=_with_tags(items), model_version=None)


def feedback_record(*, user, track: Track, kind: str) -> None:
    """Store a like or skip from the site through the feedback app's service."""
    interaction_record(user=user, track=track, kind=kind, source=Interaction.Source.WEB)
