"""Playlist continuation as served: each model answer cached per model version, input,
options, hour and weekday, so a repeated request is one Redis read (see
recommendations.continuation_selectors for how the answer is computed)."""

from __future__ import annotations

import hashlib
from functools import partial

from mltasks.models import ModelVersion
from recommendations.continuation_selectors import (
    ContinuationList,
    continuation_context,
    continuation_fallback_payload,
    continuation_list,
    continuation_payload,
    playlist_track_ids,
)
from recommendations.services import blocked_tracks_for, cached_payload
from recommendations.serving import active_state


def _cache_key(*, version_id, track_ids, exclude, hour, dow, k, use_ann, max_per_artist) -> str:
    digest = hashlib.sha1(
        f"{track_ids}|{sorted(exclude)}|{use_ann}|{max_per_artist}".encode()
    ).hexdigest()
    return f"continuation:v{version_id}:{digest}:h{hour}:d{dow}:k{k}"


def continuation_page(
    *,
    track_ids: list[int],
    k: int,
    hour: int | None = None,
    dow: int | None = None,
    use_ann: bool = False,
    exclude: list[int] | None = None,
    max_per_artist: int | None = 2,
    user=None,
) -> dict:
    """The k tracks most likely to come next after `track_ids` (oldest first), as plain data
    (the API's payload, see continuation_selectors.continuation_payload). Input tracks,
    `exclude` and the tracks `user` asked not to be recommended never come back: they are
    left out of the ranking itself. Hour and weekday default to now's."""
    hour, dow = continuation_context(hour=hour, dow=dow)
    blocked = set(track_ids) | set(exclude or []) | blocked_tracks_for(user=user).track_ids
    state = active_state(ModelVersion.Kind.CONTINUATION)
    if state is None:
        return continuation_fallback_payload(track_ids=track_ids, exclude=blocked, k=k)
    key = _cache_key(
        version_id=state.version_id, track_ids=track_ids, exclude=blocked, hour=hour, dow=dow,
        k=k, use_ann=use_ann, max_per_artist=max_per_artist,
    )  # fmt: skip
    build = partial(
        continuation_payload, state=state, track_ids=track_ids, exclude=blocked, hour=hour,
        dow=dow, k=k, use_ann=use_ann, max_per_artist=max_per_artist,
    )  # fmt: skip
    return cached_payload(key=key, list_name="continuation", build=build)


def continuation_for_tracks(*, track_ids: list[int], k: int, **options) -> ContinuationList:
    """`continuation_page` with Track objects (artist loaded), for the site's templates."""
    return continuation_list(continuation_page(track_ids=track_ids, k=k, **options))


def playlist_continuation_page(*, playlist, k: int, **options) -> dict:
    return continuation_page(track_ids=playlist_track_ids(playlist), k=k, **options)


def playlist_continuation(*, playlist, k: int, **options) -> ContinuationList:
    return continuation_for_tracks(track_ids=playlist_track_ids(playlist), k=k, **options)
