"""Reads on the catalog: popularity, detail pages, tags and search."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db.models import Count, Prefetch, QuerySet, Sum, prefetch_related_objects

from catalog.models import Artist, ArtistTag, Tag, Track, TrackTag

# Words of a search beyond this many are ignored (keeps the tsquery small).
MAX_SEARCH_WORDS = 8


def catalog_is_empty() -> bool:
    return not Track.objects.exists()


def tracks_by_popularity(*, limit: int = 50) -> QuerySet[Track]:
    """The most popular tracks (ties by id), with their artists."""
    return Track.objects.select_related("artist").order_by("-popularity", "id")[:limit]


def track_tags_prefetch() -> Prefetch:
    """Prefetch a track's tag links, strongest first, each with its tag (use `track.tag_links`)."""
    return Prefetch(
        "tag_links", queryset=TrackTag.objects.select_related("tag").order_by("-weight")
    )


def tracks_with_tags(tracks: Iterable[Track]) -> None:
    """Fill `track.tag_links` on tracks that do not have it yet, in one query."""
    prefetch_related_objects(list(tracks), track_tags_prefetch())


def track_detail(*, track_id: int) -> Track:
    return (
        Track.objects.select_related("artist")
        .prefetch_related(track_tags_prefetch())
        .get(pk=track_id)
    )


def artist_detail(*, artist_id: int) -> Artist:
    return Artist.objects.prefetch_related(
        Prefetch("tag_links", queryset=ArtistTag.objects.select_related("tag").order_by("-weight"))
    ).get(pk=artist_id)


def artist_top_tracks(*, artist: Artist, limit: int = 20) -> list[Track]:
    return list(
        Track.objects.filter(artist=artist)
        .select_related("artist")
        .prefetch_related(track_tags_prefetch())
        .order_by("-popularity", "id")[:limit]
    )


def artist_track_count(*, artist: Artist) -> int:
    return Track.objects.filter(artist=artist).count()


def tag_tracks(*, tag: Tag) -> QuerySet[Track]:
    """Tracks carrying the tag, most popular first (paginate it)."""
    return (
        Track.objects.filter(tag_links__tag=tag)
        .select_related("artist")
        .prefetch_related(track_tags_prefetch())
        .order_by("-popularity", "id")
    )


def tag_top_artists(*, tag: Tag, limit: int = 12) -> QuerySet[Artist]:
    return (
        Artist.objects.filter(tag_links__tag=tag)
        .annotate(plays=Sum("tracks__popularity"))
        .order_by("-tag_links__weight", "-plays", "name")[:limit]
    )


def tags_by_track_count(*, limit: int = 40) -> QuerySet[Tag]:
    return Tag.objects.annotate(n_tracks=Count("track_links")).order_by("-n_tracks", "name")[:limit]


def artists_by_popularity(*, limit: int = 24) -> QuerySet[Artist]:
    return Artist.objects.annotate(plays=Sum("tracks__popularity")).order_by("-plays", "name")[
        :limit
    ]


def _prefix_tsquery(text: str) -> SearchQuery | None:
    """Every word of the text as a prefix ("shoe gaz" → 'shoe:* & gaz:*'); None without words."""
    words = re.findall(r"\w+", text.lower())[:MAX_SEARCH_WORDS]
    if not words:
        return None
    return SearchQuery(
        " & ".join(f"{word}:*" for word in words), search_type="raw", config="simple"
    )


def _search(queryset: QuerySet, *, field: str, text: str, order: list[str]) -> QuerySet:
    """Full-text prefix search on `field` (the GIN index on to_tsvector('simple', field)),
    falling back to a substring match when that finds nothing (e.g. a fragment mid-word)."""
    text = text.strip()
    if not text:
        return queryset.none()
    query = _prefix_tsquery(text)
    if query is not None:
        vector = SearchVector(field, config="simple")
        matches = queryset.annotate(search=vector).filter(search=query)
        if matches.exists():
            return matches.annotate(rank=SearchRank(vector, query)).order_by("-rank", *order)
    return queryset.filter(**{f"{field}__icontains": text}).order_by(*order)


def search_tracks(*, text: str) -> QuerySet[Track]:
    return _search(
        Track.objects.select_related("artist").prefetch_related(track_tags_prefetch()),
        field="title",
        text=text,
        order=["-popularity", "id"],
    )


def search_artists(*, text: str) -> QuerySet[Artist]:
    return _search(
        Artist.objects.annotate(n_tracks=Count("tracks")),
        field="name",
        text=text,
        order=["-n_tracks", "name", "id"],
    )
