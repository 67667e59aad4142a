"""What the site's pages show from the recommender.

Thin wrappers over the recommendations app's selectors and services, which fall back to popularity
(or tag overlap) while no trained model is active; `model_version` is None then, and the
templates say so. Tags are prefetched here because every track card shows them. Each list shown
to a signed-in listener is logged (impressions) under a new `request_id`, which its cards send
back with a like or a skip.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from catalog.models import Artist, Track
from catalog.selectors import tracks_by_popularity, tracks_with_tags
from feedback.models import Impression, Interaction
from feedback.services import impression_request_id, impressions_log, interaction_record
from mltasks.models import ModelVersion
from recommendations.continuation_services import playlist_continuation
from recommendations.selectors import (
    DEFAULT_SLATE,
    ScoredArtist,
    ScoredTrack,
    artists_similar_to,
    tracks_similar_to,
)
from recommendations.services import blocked_tracks_for, recommendations_for_user
from recommendations.serving import active_state

POPULAR_REASON = "Popular right now"


@dataclass(frozen=True)
class SiteTrackList:
    items: list[ScoredTrack]
    model_version: int | None
    request_id: uuid.UUID | None = None  # under which it was logged as shown (None: not shown)


def _served_pipeline(*, kind: str, version_id: int | None) -> str:
    state = active_state(kind)
    return state.algorithm if state is not None and state.version_id == version_id else ""


def _log_shown(
    *, user, surface: str, items: list[ScoredTrack], model_version_id: int | None,
    pipeline: str, first_position: int = 0, interleaving_test_id: int | None = None,
    teams: dict[int, str] | None = None,
) -> uuid.UUID | None:  # fmt: skip
    """Log a list shown to a signed-in user; returns its new request id (None when there is
    nobody or nothing to log)."""
    if user is None or not user.is_authenticated or not items:
        return None
    request_id = impression_request_id()
    impressions_log(
        user_id=user.pk, surface=surface, request_id=request_id,
        track_ids=[item.track.pk for item in items], model_version_id=model_version_id,
        pipeline=pipeline, interleaving_test_id=interleaving_test_id, teams=teams,
        first_position=first_position,
    )  # fmt: skip
    return request_id


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
    every page of it, leaves out what the user asked not to be recommended). Logged as shown
    on Discover, placed after the cards already on the page."""
    # Ask for enough to cover the tracks already shown, then drop those.
    result = recommendations_for_user(
        user=user, n=min(200, n + len(exclude_ids)), slate=DEFAULT_SLATE
    )
    items = [item for item in result.items if item.track.pk not in exclude_ids][:n]
    request_id = _log_shown(
        user=user, surface=Impression.Surface.DISCOVER, items=items,
        model_version_id=result.model_version,
        pipeline=result.pipeline or _served_pipeline(
            kind=ModelVersion.Kind.RECOMMENDER, version_id=result.model_version
        ),
        first_position=len(exclude_ids), interleaving_test_id=result.interleaving_test,
        teams=result.teams,
    )  # fmt: skip
    return SiteTrackList(
        items=_with_tags(items), model_version=result.model_version, request_id=request_id
    )


def similar_tracks(*, track: Track, n: int, user=None) -> SiteTrackList:
    """Tracks like `track`, without those `user` asked not to be recommended; logged as shown
    to a signed-in user."""
    items = tracks_similar_to(track=track, n=n, exclude=blocked_tracks_for(user=user).track_ids)
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    by_model = state is not None and track.pk in state.track_index  # else by shared tags
    version_id = state.version_id if by_model else None
    request_id = _log_shown(
        user=user, surface=Impression.Surface.SIMILAR, items=items, model_version_id=version_id,
        pipeline=state.algorithm if by_model else "",
    )  # fmt: skip
    return SiteTrackList(items=items, model_version=version_id, request_id=request_id)


def similar_artists(*, artist: Artist, n: int) -> list[ScoredArtist]:
    return artists_similar_to(artist=artist, n=n)


def playlist_suggestions(*, playlist, k: int, user=None) -> SiteTrackList:
    """Tracks to continue the playlist with, none of them already in it nor asked by `user`
    not to be recommended."""
    result = playlist_continuation(playlist=playlist, k=k, user=user)
    version_id = None if result.fallback else result.model_version
    request_id = _log_shown(
        user=user, surface=Impression.Surface.CONTINUATION, items=result.items,
        model_version_id=version_id,
        pipeline=_served_pipeline(kind=ModelVersion.Kind.CONTINUATION, version_id=version_id),
    )  # fmt: skip
    return SiteTrackList(
        items=_with_tags(result.items), model_version=result.model_version, request_id=request_id
    )


def generated_playlist_shown(*, playlist, user, track_ids: list[int]) -> uuid.UUID | None:
    """Log a generated playlist's tracks as shown to its listener when they open it."""
    if user is None or not user.is_authenticated or playlist.owner_id != user.pk:
        return None
    if not playlist.is_generated or not track_ids:
        return None
    request_id = impression_request_id()
    impressions_log(
        user_id=user.pk, surface=Impression.Surface.GENERATED, request_id=request_id,
        track_ids=track_ids, model_version_id=None, pipeline=playlist.generated,
    )  # fmt: skip
    return request_id


def feedback_record(*, user, track: Track, kind: str, request_id: uuid.UUID | None = None) -> None:
    """Store a like or skip from the site through the feedback app's service, linked to the
    list the track was shown in (`request_id`, from the card)."""
    interaction_record(
        user=user, track=track, kind=kind, source=Interaction.Source.WEB, request_id=request_id
    )
