"""Reads for serving: recommendations for a user, similar tracks, users and artists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from pgvector.django import CosineDistance, MaxInnerProduct

from catalog.models import Artist, Track
from feedback.models import Interaction
from mltasks.drift_services import served_scores_record
from mltasks.models import ModelVersion, TrackVector, UserVector, padded_vector
from recommendations.serving import VectorState, active_state
from recommendations.track_cards import TrackCard, track_cards
from tunedin import metrics

MAX_RECOMMENDATIONS = 200
RETRIEVAL_BACKENDS = ("exact", "faiss", "faiss-hnsw", "pgvector")
RECENT_POSITIVES = 50
POSITIVE_KINDS = (Interaction.Kind.PLAY, Interaction.Kind.LIKE)


@dataclass(frozen=True)
class ScoredTrack:
    track: Track
    score: float
    reason: str = ""


@dataclass(frozen=True)
class ScoredArtist:
    artist: Artist
    score: float


@dataclass(frozen=True)
class ScoredUser:
    user_id: int
    score: float


@dataclass(frozen=True)
class RecommendationList:
    user_id: int
    model_version: int | None
    items: list[ScoredTrack]
    cached: bool = False


@dataclass(frozen=True)
class UserHistory:
    recent_positives: list[int]  # track ids, likes first, then most recent plays
    seen: set[int]  # every track the user interacted with (excluded from recommendations)


def user_history(*, user_id: int, limit: int = 5000) -> UserHistory:
    rows = (
        Interaction.objects.filter(user_id=user_id)
        .order_by("-occurred_at", "-id")
        .values_list("track_id", "kind")[:limit]
    )
    likes, plays, seen = [], [], set()
    for track_id, kind in rows:
        seen.add(track_id)
        if kind == Interaction.Kind.LIKE:
            likes.append(track_id)
        elif kind == Interaction.Kind.PLAY:
            plays.append(track_id)
    positives = list(dict.fromkeys([*likes, *plays]))[:RECENT_POSITIVES]
    return UserHistory(recent_positives=positives, seen=seen)


def pad_vector(vector: np.ndarray) -> list[float]:
    return padded_vector(vector).tolist()


def stored_user_vector(*, state: VectorState, user_id: int) -> np.ndarray | None:
    embedding = (
        UserVector.objects.filter(model_version_id=state.version_id, user_id=user_id)
        .values_list("embedding", flat=True)
        .first()
    )
    return None if embedding is None else np.asarray(embedding, dtype=np.float32)[: state.dim]


def folded_in_user_vector(*, state: VectorState, track_ids: list[int]) -> np.ndarray | None:
    """A user vector from the item vectors of their recent positives (no retraining)."""
    rows = [state.track_index[t] for t in track_ids if t in state.track_index]
    if not rows:
        return None
    return state.item_vectors[rows].mean(axis=0)


def _rec_cache_key(*, version_id: int | None, user_id: int, backend: str) -> str:
    return f"rec:v{version_id or 0}:u{user_id}:{backend}"


def recommendation_cache_keys(*, version_id: int | None, user_id: int) -> list[str]:
    return [
        _rec_cache_key(version_id=version_id, user_id=user_id, backend=backend)
        for backend in (*RETRIEVAL_BACKENDS, "popular")
    ]


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def retrieve(
    *, state: VectorState, query: np.ndarray, exclude: set[int], k: int, backend: str
) -> list[tuple[int, float]]:
    """Top-k (track id, inner-product score) for a query vector, excluding track ids."""
    with metrics.ANN_SEARCH_SECONDS.labels(kind=state.kind, backend=backend).time():
        return _retrieve(state=state, query=query, exclude=exclude, k=k, backend=backend)


def _retrieve(
    *, state: VectorState, query: np.ndarray, exclude: set[int], k: int, backend: str
) -> list[tuple[int, float]]:
    if backend == "pgvector":
        rows = (
            TrackVector.objects.filter(model_version_id=state.version_id)
            .exclude(track_id__in=exclude)
            .annotate(distance=MaxInnerProduct("embedding", pad_vector(query)))
            .order_by("distance", "track_id")
            .values_list("track_id", "distance")[:k]
        )
        return [(track_id, -float(distance)) for track_id, distance in rows]
    if backend in ("faiss", "faiss-hnsw"):
        index = state.faiss_index("flat-ip" if backend == "faiss" else "hnsw-ip")
        wanted = min(k + len(exclude), state.track_ids.shape[0])
        scores, rows = index.search(query.reshape(1, -1).astype(np.float32), wanted)
        found = [
            (int(state.track_ids[row]), float(score))
            for row, score in zip(rows[0], scores[0], strict=True)
            if row >= 0 and int(state.track_ids[row]) not in exclude
        ]
        return found[:k]
    scores = state.item_vectors @ query
    excluded_rows = [state.track_index[t] for t in exclude if t in state.track_index]
    scores[excluded_rows] = -np.inf
    top = _top_indices(scores, k)
    return [(int(state.track_ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


def _explain(
    *, state: VectorState | None, candidates: list[int], positives: list[int]
) -> dict[int, int]:
    """For each candidate, the recent positive it is closest to (cosine of item vectors)."""
    if state is None:
        return {}
    liked_rows = [state.track_index[t] for t in positives[:20] if t in state.track_index]
    candidate_rows = [state.track_index[t] for t in candidates if t in state.track_index]
    if not liked_rows or not candidate_rows:
        return {}
    similarity = state.unit_item_vectors[candidate_rows] @ state.unit_item_vectors[liked_rows].T
    best = similarity.argmax(axis=1)
    liked_ids = [int(state.track_ids[r]) for r in liked_rows]
    candidate_ids = [int(state.track_ids[r]) for r in candidate_rows]
    return {c: liked_ids[b] for c, b in zip(candidate_ids, best, strict=True)}


def _popular_for(*, seen: set[int], k: int) -> list[tuple[int, float]]:
    rows = (
        Track.objects.exclude(pk__in=seen)
        .order_by("-popularity", "id")
        .values_list("pk", "popularity")[:k]
    )
    return [(pk, float(popularity)) for pk, popularity in rows]


def _cold_start_for(*, user, seen: set[int], k: int) -> list[tuple[int, float]]:
    """Content-based: tracks tagged with the user's favourite tags or by favourite artists."""
    tag_ids = list(user.favourite_tags.values_list("pk", flat=True))
    artist_ids = list(user.favourite_artists.values_list("pk", flat=True))
    if not tag_ids and not artist_ids:
        return []
    rows = (
        Track.objects.exclude(pk__in=seen)
        .filter(Q(tag_links__tag_id__in=tag_ids) | Q(artist_id__in=artist_ids))
        .annotate(affinity=Sum("tag_links__weight", filter=Q(tag_links__tag_id__in=tag_ids)))
        .order_by("-affinity", "-popularity", "id")
        .values_list("pk", "affinity", "popularity")[:k]
    )
    return [
        (pk, float(affinity or 0) + 1e-4 * float(popularity)) for pk, affinity, popularity in rows
    ]


@dataclass(frozen=True)
class Ranking:
    version_id: int | None
    ranked: list[tuple[int, float, str]]  # (track id, score, reason code), best first
    # True when the ranking is built from the user's recent plays (no stored vector yet), so a
    # new play can change it; False when only its exclusions depend on what the user has seen.
    follows_plays: bool


def _compute_recommendations(*, user, backend: str) -> Ranking:
    """The user's ranking, MAX_RECOMMENDATIONS long."""
    user_id = user.pk
    history = user_history(user_id=user_id)
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    query = None
    if state is not None:
        query = stored_user_vector(state=state, user_id=user_id)
        follows_plays = query is None
        if query is None:
            query = folded_in_user_vector(state=state, track_ids=history.recent_positives)
    if query is not None:
        ranked = retrieve(
            state=state, query=query, exclude=history.seen, k=MAX_RECOMMENDATIONS, backend=backend
        )
        because = _explain(
            state=state, candidates=[t for t, _ in ranked], positives=history.recent_positives
        )
        items = [(t, s, f"track:{because[t]}" if t in because else "") for t, s in ranked]
        return Ranking(state.version_id, items, follows_plays)
    # Without a model, plays only exclude; with one, the first plays give a fold-in query.
    follows_plays = state is not None
    cold = _cold_start_for(user=user, seen=history.seen, k=MAX_RECOMMENDATIONS)
    if cold:
        return Ranking(None, [(t, s, "tags") for t, s in cold], follows_plays)
    popular = _popular_for(seen=history.seen, k=MAX_RECOMMENDATIONS)
    return Ranking(None, [(t, s, "popular") for t, s in popular], follows_plays)


def _reason_text(
    *, code: str, tag_names: Sequence[str], titles: dict[int, str], user_tags: set[str]
) -> str:
    if code.startswith("track:"):
        liked = titles.get(int(code.split(":", 1)[1]))
        if liked:
            return f"Because you listened to “{liked}”"
    shared = [name for name in tag_names if name in user_tags]
    if shared:
        return f"Because you like {shared[0]}"
    if code == "popular":
        return "Popular right now"
    return f"Similar to what you play: {tag_names[0]}" if tag_names else "Picked for you"


MAX_CACHED_PAGES = 8


@dataclass(frozen=True)
class RecommendationPage:
    """A page of recommendations as plain data (what the API returns, cached as it is)."""

    user_id: int
    model_version: int | None
    items: list[dict]
    cached: bool = False


def _ranking_entry(*, user, backend: str | None, store_miss: bool = True) -> tuple[str, dict, bool]:
    """(cache key, {"version", "ranked", "follows_plays", "pages"}, hit) for the user's ranking.

    One cache entry per (model version, user, backend) holds the ranked ids and the pages
    already rendered from them, so a cached request is one Redis read; feedback deletes it.
    With store_miss=False a new ranking is not written: the caller writes it with its page.
    """
    from django.conf import settings

    backend = backend or settings.RETRIEVAL_BACKEND
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    key = _rec_cache_key(
        version_id=state.version_id if state else None, user_id=user.pk, backend=backend
    )
    entry = cache.get(key)
    hit = entry is not None
    metrics.recommendation_cache_lookup(list_name="user", hit=hit)
    if not hit:
        ranking = _compute_recommendations(user=user, backend=backend)
        entry = {
            "version": ranking.version_id,
            "ranked": ranking.ranked,
            "follows_plays": ranking.follows_plays,
            "pages": {},
        }
        if store_miss:
            cache.set(key, entry)
        if ranking.version_id is not None:
            served_scores_record(
                model_version_id=ranking.version_id, scores=[s for _, s, _ in ranking.ranked[:50]]
            )
    return key, entry, hit


def _page_reasons(*, user, page: list, cards: dict[int, TrackCard]) -> dict[int, str]:
    """The reason shown next to each track of a ranked page, by track id."""
    reason_track_ids = {
        int(code.split(":", 1)[1]) for _, _, code in page if code.startswith("track:")
    }
    titles = {pk: card.title for pk, card in track_cards(reason_track_ids).items()}
    user_tags = set(user.favourite_tags.values_list("name", flat=True)) if user.pk else set()
    return {
        t: _reason_text(
            code=code, tag_names=cards[t].tags if t in cards else (), titles=titles,
            user_tags=user_tags,
        )
        for t, _, code in page
    }  # fmt: skip


def _scored_page(*, user, ranked: list, n: int, offset: int) -> list[ScoredTrack]:
    """A page of the ranking with Track objects (artist loaded), for the site."""
    page = ranked[offset : offset + n]
    track_ids = [t for t, _, _ in page]
    tracks = Track.objects.select_related("artist").in_bulk(track_ids)
    reasons = _page_reasons(user=user, page=page, cards=track_cards(track_ids))
    return [
        ScoredTrack(track=tracks[t], score=score, reason=reasons[t])
        for t, score, _ in page
        if t in tracks
    ]


def _page_items(*, user, ranked: list, n: int, offset: int) -> list[dict]:
    """A page of the ranking as the API's plain data (no model instances to build)."""
    page = ranked[offset : offset + n]
    cards = track_cards(t for t, _, _ in page)
    reasons = _page_reasons(user=user, page=page, cards=cards)
    return [
        {"track_id": t, "title": cards[t].title, "artist": cards[t].artist, "score": score,
         "reason": reasons[t]}
        for t, score, _ in page
        if t in cards
    ]  # fmt: skip


def recommendations_for_user(
    *, user, n: int, offset: int = 0, backend: str | None = None
) -> RecommendationList:
    """The user's top-n tracks (after `offset`), excluding every track they interacted with."""
    _, entry, hit = _ranking_entry(user=user, backend=backend)
    items = _scored_page(user=user, ranked=entry["ranked"], n=n, offset=offset)
    return RecommendationList(
        user_id=user.pk, model_version=entry["version"], items=items, cached=hit
    )


def recommendation_page_for_user(
    *, user, n: int, offset: int = 0, backend: str | None = None
) -> RecommendationPage:
    """The same list as `recommendations_for_user`, as plain data, served from the cache."""
    key, entry, hit = _ranking_entry(user=user, backend=backend, store_miss=False)
    page_key = f"{n}:{offset}"
    if page_key in entry["pages"]:
        return RecommendationPage(
            user_id=user.pk, model_version=entry["version"], items=entry["pages"][page_key],
            cached=True,
        )  # fmt: skip
    items = _page_items(user=user, ranked=entry["ranked"], n=n, offset=offset)
    if len(entry["pages"]) < MAX_CACHED_PAGES:
        entry["pages"][page_key] = items
    if not hit or page_key in entry["pages"]:
        cache.set(key, entry)  # one write: the new ranking with its first page
    return RecommendationPage(
        user_id=user.pk, model_version=entry["version"], items=items, cached=hit
    )


def _similar_by_tags(*, track: Track, n: int) -> list[ScoredTrack]:
    tag_ids = list(track.tag_links.values_list("tag_id", flat=True))
    rows = (
        Track.objects.exclude(pk=track.pk)
        .filter(Q(tag_links__tag_id__in=tag_ids) | Q(artist_id=track.artist_id))
        .annotate(shared=Count("tag_links", filter=Q(tag_links__tag_id__in=tag_ids)))
        .select_related("artist")
        .order_by("-shared", "-popularity", "id")[:n]
    )
    return [ScoredTrack(track=t, score=float(t.shared) / max(1, len(tag_ids))) for t in rows]


def tracks_similar_to(*, track: Track, n: int, use_ann: bool = False) -> list[ScoredTrack]:
    """Nearest tracks by cosine of the active recommender's item vectors: pgvector HNSW by
    default, FAISS HNSW with `use_ann`; tag overlap when no model is active."""
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None or track.pk not in state.track_index:
        return _similar_by_tags(track=track, n=n)
    query = state.unit_item_vectors[state.track_index[track.pk]]
    if use_ann:
        scores, rows = state.faiss_index("hnsw-cos").search(query.reshape(1, -1), n + 1)
        pairs = [
            (int(state.track_ids[r]), float(s))
            for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0 and int(state.track_ids[r]) != track.pk
        ][:n]
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(100, 2 * n)])
            rows = (
                TrackVector.objects.filter(model_version_id=state.version_id)
                .exclude(track_id=track.pk)
                .annotate(distance=CosineDistance("embedding", pad_vector(query)))
                .order_by("distance")
                .values_list("track_id", "distance")[:n]
            )
            pairs = [(track_id, 1.0 - float(distance)) for track_id, distance in rows]
    tracks = Track.objects.select_related("artist").in_bulk([t for t, _ in pairs])
    return [ScoredTrack(track=tracks[t], score=s) for t, s in pairs if t in tracks]


def cached_payload(*, key: str, list_name: str, build: Callable[[], dict | None]) -> dict | None:
    """The payload cached under `key`, else `build()`'s (stored unless None); the lookup is
    counted in the cache metrics under `list_name`."""
    payload = cache.get(key)
    metrics.recommendation_cache_lookup(list_name=list_name, hit=payload is not None)
    if payload is None:
        payload = build()
        if payload is not None:
            cache.set(key, payload)
    return payload


def similar_tracks_page(*, track_id: int, n: int, use_ann: bool = False) -> dict | None:
    """`tracks_similar_to` as plain data (the API's payload: {"track_id", "items": [{"track_id",
    "title", "artist", "score"}]}), None for an unknown track. With an active model the page is
    cached per model version, so a repeated request is one Redis read."""

    def build() -> dict | None:
        track = Track.objects.select_related("artist").filter(pk=track_id).first()
        if track is None:
            return None
        items = [
            {"track_id": item.track.pk, "title": item.track.title,
             "artist": item.track.artist.name, "score": item.score}
            for item in tracks_similar_to(track=track, n=n, use_ann=use_ann)
        ]  # fmt: skip
        return {"track_id": track.pk, "items": items}

    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None:
        return build()
    key = f"similar:v{state.version_id}:t{track_id}:n{n}:{'ann' if use_ann else 'exact'}"
    return cached_payload(key=key, list_name="similar", build=build)


def users_similar_to(*, user_id: int, n: int) -> tuple[int | None, list[ScoredUser]]:
    """Nearest users by cosine of the active recommender's user vectors (pgvector HNSW)."""
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None:
        return None, []
    embedding = (
        UserVector.objects.filter(model_version_id=state.version_id, user_id=user_id)
        .values_list("embedding", flat=True)
        .first()
    )
    if embedding is None:
        return state.version_id, []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(100, 2 * n)])
        rows = list(
            UserVector.objects.filter(model_version_id=state.version_id)
            .exclude(user_id=user_id)
            .annotate(distance=CosineDistance("embedding", embedding))
            .order_by("distance")
            .values_list("user_id", "distance")[:n]
        )
    return state.version_id, [ScoredUser(user_id=u, score=1.0 - float(d)) for u, d in rows]


def _artist_centroids(state: VectorState) -> tuple[np.ndarray, np.ndarray]:
    """(sorted artist ids, unit mean of each artist's unit item vectors); -1 = unknown artist."""
    artist_of = dict(
        Track.objects.filter(pk__in=state.track_ids.tolist()).values_list("pk", "artist_id")
    )
    artist_ids = np.array([artist_of.get(int(t), -1) for t in state.track_ids])
    unique_artists, inverse = np.unique(artist_ids, return_inverse=True)
    centroids = np.zeros((len(unique_artists), state.dim), dtype=np.float32)
    np.add.at(centroids, inverse, state.unit_item_vectors)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return unique_artists, centroids


def artists_similar_to(*, artist: Artist, n: int) -> list[ScoredArtist]:
    """Artists whose tracks sit closest to this artist's tracks (mean item vectors)."""
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None:
        tag_ids = list(artist.tag_links.values_list("tag_id", flat=True))
        rows = (
            Artist.objects.exclude(pk=artist.pk)
            .filter(tag_links__tag_id__in=tag_ids)
            .annotate(shared=Count("tag_links"))
            .order_by("-shared", "name")[:n]
        )
        return [ScoredArtist(artist=a, score=float(a.shared)) for a in rows]
    unique_artists, centroids = state.derived("artist-centroids", lambda: _artist_centroids(state))
    position = np.searchsorted(unique_artists, artist.pk)
    if position >= len(unique_artists) or unique_artists[position] != artist.pk:
        return []
    similarity = centroids @ centroids[position]
    similarity[position] = -np.inf
    similarity[unique_artists < 0] = -np.inf
    top = _top_indices(similarity, n)
    artists = Artist.objects.in_bulk([int(unique_artists[i]) for i in top])
    return [
        ScoredArtist(artist=artists[int(unique_artists[i])], score=float(similarity[i]))
        for i in top
        if int(unique_artists[i]) in artists
    ]
