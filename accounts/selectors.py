"""Reads on listeners."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Favourites:
    tag_ids: list[int]
    artist_ids: list[int]


def user_favourites(*, user) -> Favourites:
    """The tags and artists the user picked at onboarding (seeds of cold-start recommendations)."""
    return Favourites(
        tag_ids=list(user.favourite_tags.values_list("pk", flat=True)),
        artist_ids=list(user.favourite_artists.values_list("pk", flat=True)),
    )
