"""Reads for serving: recommendations for a user, similar tracks, users and artists.

Nothing here writes: the caching of what these compute lives in recommendations.services.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from pgvector.django import CosineDistance

from catalog.models import Artist, Track
from feedback.models import Interaction
from feedback.selectors import BlockedTracks
from mltasks.ml.eval.diversity import max_per_artist_order, mmr_order, penalize_near
from mltasks.ml.eval.interleaving import list_seed, team_draft
from mltasks.ml.eval.topk import top_k_indices
from mltasks.ml.scorers.base import HistoryContext
from mltasks.ml.scorers.explain import Because, explain
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.models import ModelVersion, TrackVector, UserVector, padded_vector
from mltasks.selectors import EVENT_WEIGHTS
from recommendations.retrieval import RetrievalBackend, retrieval_backend, retrieve
from recommendations.serving import VectorState, active_state
from recommendations.track_cards import TrackCard, track_cards
from tunedin import metrics

MAX_RECOMMENDATIONS = 200
RECENT_POSITIVES = 50
RECENT_DISLIKES = 20  # the dislikes whose neighbours are pushed down
# A candidate as close as a copy of a disliked track drops by this share of its list's score
# range (by cosine of the active version's item vectors; less the less alike they are).
DISLIKE_PENALTY = 0.5
DEFAULT_MAX_PER_ARTIST = 2  # as ListenBrainz's troi playlists
# Weight of the recent positives against the trained vector in online fold-in.
FOLD_IN_WEIGHT = 0.5
NOT_BLOCKED = BlockedTracks()


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
    # The served pipeline's name ("" for popularity or tags), and inside an interleaved test
    # its id and which version contributed each track ({track id: "A" control, "B"
    # challenger}); impressions record them.
    pipeline: str = ""
    interleaving_test: int | None = None
    teams: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UserHistory:
    recent_positives: list[int]  # track ids, likes first, then most recent plays
    seen: set[int]  # every track the user interacted with (excluded from recommendations)
    liked: set[int]  # tracks the user liked
    positive_weights: dict[int, float]  # track id -> summed weight of its plays and likes
    disliked: list[int] = field(default_factory=list)  # most recent first, RECENT_DISLIKES


HISTORY_LIMIT = 5000  # the most recent events a ranking reads of a user


def history_from_events(events: Iterable[tuple[int, str]]) -> UserHistory:
    """A UserHistory from (track id, kind) events, most recent first."""
    likes, plays, dislikes, seen, weights = [], [], [], set(), {}
    for track_id, kind in events:
        seen.add(track_id)
        if kind == Interaction.Kind.LIKE:
            likes.append(track_id)
        elif kind == Interaction.Kind.PLAY:
            plays.append(track_id)
        elif kind == Interaction.Kind.DISLIKE:
            dislikes.append(track_id)
        if kind in (Interaction.Kind.LIKE, Interaction.Kind.PLAY):
            weights[track_id] = weights.get(track_id, 0.0) + EVENT_WEIGHTS[kind]
    positives = list(dict.fromkeys([*likes, *plays]))[:RECENT_POSITIVES]
    return UserHistory(
        recent_positives=positives, seen=seen, liked=set(likes), positive_weights=weights,
        disliked=list(dict.fromkeys(dislikes))[:RECENT_DISLIKES],
    )  # fmt: skip


def user_history(*, user_id: int, limit: int = HISTORY_LIMIT) -> UserHistory:
    rows = (
        Interaction.objects.filter(user_id=user_id)
        .order_by("-occurred_at", "-id")
        .values_list("track_id", "kind")[:limit]
    )
    return history_from_events(rows)


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
    artists: dict[int, int] = field(default_factory=dict)  # track id -> artist id
    pipeline: str = ""  # the served pipeline's name ("" for tags or popularity)
    # Inside an interleaved test: its id, and which version contributed each track ("A" the
    # control, "B" the challenger).
    interleaving_test: int | None = None
    teams: dict[int, str] = field(default_factory=dict)


EXPLAINED = 60  # recommendations explained per ranking (the first pages)


def _because_code(because: Because, state: VectorState, liked: set[int]) -> str:
    """A reason code (see `_reason_text`) for a pipeline's explanation."""
    if because.history_item is not None:
        track_id = int(state.track_ids[because.history_item])
        return f"{'liked' if track_id in liked else 'track'}:{track_id}"
    return {"popular": "popular", "tags": "tags", "artist": "artist"}.get(because.source, "")


def pipeline_ranking(
    *, state: VectorState, pipeline, history: UserHistory, user_id: int, excluded: set[int]
):
    """(track id, score, reason code) best first by the version's served pipeline, with the
    user's plays and likes as the context and the `excluded` tracks (every track they
    interacted with, and those they asked not to be recommended) left out of the ranking."""
    tracks = [t for t in history.positive_weights if t in state.track_index]
    context = HistoryContext(
        items=[state.track_index[t] for t in tracks],
        weights=[history.positive_weights[t] for t in tracks],
        user=state.user_index.get(user_id),
    )
    exclude = np.array(
        [state.track_index[t] for t in excluded if t in state.track_index], dtype=np.int64
    )
    with metrics.MODEL_FORWARD_SECONDS.labels(kind=state.kind, algorithm=state.algorithm).time():
        top, scores = pipeline.top_k(context, MAX_RECOMMENDATIONS, exclude=exclude)
    reasons = explain(pipeline, context, top[:EXPLAINED], exclude=exclude) if tracks else {}
    return [
        (
            int(state.track_ids[item]),
            float(score),
            _because_code(reasons[int(item)], state, history.liked) if int(item) in reasons else "",
        )
        for item, score in zip(top.tolist(), scores.tolist(), strict=True)
    ]


def track_artists(*, state: VectorState | None, track_ids: list[int]) -> dict[int, int]:
    """{track id: artist id}: from the active version's table (read once per version and
    process), the catalog for tracks it does not know."""
    artists = {}
    if state is not None:
        table = state.derived(
            "track-artists",
            lambda: dict(
                Track.objects.filter(pk__in=state.track_ids.tolist()).values_list("pk", "artist_id")
            ),
        )
        artists = {t: table[t] for t in track_ids if t in table}
    if missing := [t for t in track_ids if t not in artists]:
        artists |= dict(Track.objects.filter(pk__in=missing).values_list("pk", "artist_id"))
    return artists


def disliked_push_down(
    *, state: VectorState | None, ranked: list[tuple[int, float, str]], disliked: list[int]
) -> list[tuple[int, float, str]]:
    """`ranked` with the candidates close to the user's disliked tracks (by cosine of the
    version's item vectors) lowered by up to DISLIKE_PENALTY of the list's score range, and
    sorted again (stable)."""
    if state is None or not ranked:
        return ranked
    avoided = [state.track_index[t] for t in disliked if t in state.track_index]
    if not avoided:
        return ranked
    rows = [state.track_index.get(t) for t, _, _ in ranked]
    known = [i for i, row in enumerate(rows) if row is not None]
    scores = np.array([score for _, score, _ in ranked], dtype=np.float64)
    scores[known] = penalize_near(
        scores[known],
        state.unit_item_vectors[[rows[i] for i in known]],
        state.unit_item_vectors[avoided],
        DISLIKE_PENALTY,
    )
    order = np.argsort(-scores, kind="stable")
    return [(ranked[i][0], float(scores[i]), ranked[i][2]) for i in order.tolist()]


def _query_vector(
    *, state: VectorState, user_id: int, history: UserHistory, stored: bool
) -> tuple[np.ndarray | None, bool]:
    """(the user's query vector, whether it follows their plays). The active version's is
    stored in pgvector (trained, then folded in after likes); a challenger in an interleaved
    test has no stored rows, so its trained vector is folded in here as a like would fold it
    in (FOLD_IN_WEIGHT) when the user has liked tracks. Without either, the recent positives'
    mean (None without those)."""
    if stored:
        query = stored_user_vector(state=state, user_id=user_id)
        if query is not None:
            return query, False
    else:
        row = state.user_index.get(user_id)
        if row is not None and state.user_vectors is not None and state.user_vectors[row].any():
            trained = state.user_vectors[row]
            folded = folded_in_user_vector(state=state, track_ids=history.recent_positives)
            if folded is None or not history.liked:
                return trained, False
            return (1 - FOLD_IN_WEIGHT) * trained + FOLD_IN_WEIGHT * folded, True
    return folded_in_user_vector(state=state, track_ids=history.recent_positives), True


def _ranked_by_model(
    *, user, backend, history, excluded, state: VectorState | None, stored_vectors: bool = True
) -> Ranking | None:
    """The ranking by the recommender `state` serves (None without one, or without anything
    to query it with)."""
    if state is None:
        return None
    pipeline = state.pipeline()
    if pipeline is not None and not isinstance(pipeline, FactorScorer) and history.positive_weights:
        ranked = pipeline_ranking(
            state=state, pipeline=pipeline, history=history, user_id=user.pk, excluded=excluded
        )
        return Ranking(state.version_id, ranked, follows_plays=True)
    query, follows_plays = _query_vector(
        state=state, user_id=user.pk, history=history, stored=stored_vectors
    )
    if query is None:
        return None
    ranked = retrieve(
        backend=backend, state=state, query=query, exclude=excluded, k=MAX_RECOMMENDATIONS
    )
    because = _explain(
        state=state, candidates=[t for t, _ in ranked], positives=history.recent_positives
    )
    items = [(t, s, f"track:{because[t]}" if t in because else "") for t, s in ranked]
    return Ranking(state.version_id, items, follows_plays)


_ACTIVE = object()  # recommendation_ranking's default state: the active recommender's


def recommendation_ranking(
    *,
    user,
    backend: RetrievalBackend,
    history: UserHistory | None = None,
    blocked: BlockedTracks = NOT_BLOCKED,
    state: VectorState | None = _ACTIVE,
    stored_vectors: bool = True,
) -> Ranking:
    """The user's ranking, MAX_RECOMMENDATIONS long: by the active recommender's served
    pipeline (a learned ranker, an item-item model, ...) over the user's plays and likes; for a
    factor model by its vectors (the user's own, else folded in from their recent positives);
    else by their favourite tags and artists, else by popularity. Never a track they
    interacted with nor one they asked not to be recommended (`blocked`): both are left out
    of the ranking itself. Tracks close to ones they disliked are pushed down.

    `history` is read from the log when not given (a batch job passes it in). `state` names
    another version's serving state (an interleaved test's challenger, whose user vectors are
    its trained ones: `stored_vectors=False`)."""
    history = history or user_history(user_id=user.pk)
    excluded = history.seen | blocked.track_ids
    if state is _ACTIVE:
        state = active_state(ModelVersion.Kind.RECOMMENDER)
    ranking = _ranked_by_model(
        user=user, backend=backend, history=history, excluded=excluded, state=state,
        stored_vectors=stored_vectors,
    )  # fmt: skip
    if ranking is None:
        # Without a model, plays only exclude; with one, the first plays give a fold-in query.
        follows_plays = state is not None
        if cold := _cold_start_for(user=user, seen=excluded, k=MAX_RECOMMENDATIONS):
            ranking = Ranking(None, [(t, s, "tags") for t, s in cold], follows_plays)
        else:
            popular = _popular_for(seen=excluded, k=MAX_RECOMMENDATIONS)
            ranking = Ranking(None, [(t, s, "popular") for t, s in popular], follows_plays)
    ranked = disliked_push_down(state=state, ranked=ranking.ranked, disliked=history.disliked)
    artists = track_artists(state=state, track_ids=[t for t, _, _ in ranked])
    pipeline = state.algorithm if state is not None and ranking.version_id is not None else ""
    return Ranking(ranking.version_id, ranked, ranking.follows_plays, artists, pipeline)


def interleaved_ranking(
    *,
    user,
    backend: RetrievalBackend,
    test_id: int,
    control: VectorState,
    challenger: VectorState,
    blocked: BlockedTracks = NOT_BLOCKED,
) -> tuple[Ranking, Ranking]:
    """(the interleaved ranking, the control's own) for a listener in an interleaved test: the
    team-draft interleaving (mltasks.ml.eval.interleaving) of the control's ranking (team "A",
    the active version) and the challenger's ("B"), each made as that version serves it, with
    the same exclusions and dislikes. `teams` says which version contributed each track.

    The two versions' scores are on different scales, so a track's score here is its place in
    the draft (1 first, falling evenly): a diversity re-rank then keeps the draft's order where
    it can. The coin flips are seeded by the test, the user and both rankings' heads, so the
    same rankings always draft the same list. When neither version could rank by its model
    (a user with no usable history: both fall back to tags or popularity), there is nothing to
    compare and the control's ranking is returned alone, without teams."""
    history = user_history(user_id=user.pk)
    ranking_a = recommendation_ranking(
        user=user, backend=backend, history=history, blocked=blocked, state=control
    )
    # The challenger's vectors are not in pgvector (only the active version's are): it is
    # searched in memory (exact, or FAISS HNSW on a large catalog).
    ranking_b = recommendation_ranking(
        user=user, backend=retrieval_backend("auto"), history=history, blocked=blocked,
        state=challenger, stored_vectors=False,
    )  # fmt: skip
    if ranking_a.version_id is None and ranking_b.version_id is None:
        return ranking_a, ranking_a
    ids_a = [t for t, _, _ in ranking_a.ranked]
    ids_b = [t for t, _, _ in ranking_b.ranked]
    seed = list_seed("interleaving", test_id, user.pk, tuple(ids_a[:10]), tuple(ids_b[:10]))
    shown = team_draft(ids_a, ids_b, k=MAX_RECOMMENDATIONS, seed=seed)
    reasons = {t: r for t, _, r in ranking_b.ranked} | {t: r for t, _, r in ranking_a.ranked}
    n = max(1, len(shown.items))
    ranked = [(t, 1.0 - i / n, reasons.get(t, "")) for i, t in enumerate(shown.items)]
    interleaved = Ranking(
        version_id=control.version_id,
        ranked=ranked,
        follows_plays=ranking_a.follows_plays or ranking_b.follows_plays,
        artists=ranking_b.artists | ranking_a.artists,
        pipeline=f"interleaved:{ranking_a.pipeline or '-'}/{ranking_b.pipeline or '-'}"[:64],
        interleaving_test=test_id,
        teams=shown.team_of(),
    )
    return interleaved, ranking_a


def _tag_vectors(track_ids: list[int]) -> np.ndarray:
    """(len(track_ids), n_tags) 0/1 rows: each track's tags (from the track cards)."""
    cards = track_cards(track_ids)
    vocabulary: dict[str, int] = {}
    rows = [
        [vocabulary.setdefault(tag, len(vocabulary)) for tag in cards[t].tags] if t in cards else []
        for t in track_ids
    ]
    vectors = np.zeros((len(track_ids), max(1, len(vocabulary))), dtype=np.float32)
    for row, columns in enumerate(rows):
        vectors[row, columns] = 1.0
    return vectors


@dataclass(frozen=True)
class Slate:
    """How the pages of a ranking are cut: an MMR re-rank over the tracks' tag vectors when
    `diversity` (λ in [0, 1]) is given, then at most `max_per_artist` tracks of an artist
    ahead of the others (None or 0: no cap)."""

    max_per_artist: int | None = DEFAULT_MAX_PER_ARTIST
    diversity: float | None = None

    @property
    def key(self) -> str:
        return f"{self.max_per_artist or 0}:{self.diversity or 0}"


DEFAULT_SLATE = Slate()


def slate_order(
    *, ranked: list[tuple[int, float, str]], artists: dict[int, int], slate: Slate
) -> list[tuple[int, float, str]]:
    """`ranked` re-ordered by `slate`: the tracks over their artist's cap move behind the
    others, in order; nothing is dropped."""
    if slate.diversity:
        scores = np.array([score for _, score, _ in ranked], dtype=np.float64)
        order = mmr_order(scores, _tag_vectors([t for t, _, _ in ranked]), slate.diversity)
        ranked = [ranked[i] for i in order.tolist()]
    if slate.max_per_artist:
        artist_ids = np.array([artists.get(t, -1) for t, _, _ in ranked], dtype=np.int64)
        order = max_per_artist_order(artist_ids, slate.max_per_artist)
        ranked = [ranked[i] for i in order.tolist()]
    return ranked


def _reason_text(
    *, code: str, tag_names: Sequence[str], titles: dict[int, str], user_tags: set[str]
) -> str:
    if code.startswith(("track:", "liked:")):
        kind, _, track_id = code.partition(":")
        title = titles.get(int(track_id))
        if title:
            verb = "liked" if kind == "liked" else "listened to"
            return f"Because you {verb} “{title}”"
    shared = [name for name in tag_names if name in user_tags]
    if shared:
        return f"Because you like {shared[0]}"
    if code == "popular":
        return "Popular right now"
    return f"Similar to what you play: {tag_names[0]}" if tag_names else "Picked for you"


@dataclass(frozen=True)
class RecommendationPage:
    """A page of recommendations as plain data (what the API returns, cached as it is)."""

    user_id: int
    model_version: int | None
    items: list[dict]
    cached: bool = False
    pipeline: str = ""  # as RecommendationList
    interleaving_test: int | None = None
    teams: dict[int, str] = field(default_factory=dict)


def _page_reasons(*, user, page: list, cards: dict[int, TrackCard]) -> dict[int, str]:
    """The reason shown next to each track of a ranked page, by track id."""
    reason_track_ids = {
        int(code.split(":", 1)[1]) for _, _, code in page if code.startswith(("track:", "liked:"))
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


def ranking_page_tracks(*, user, ranked: list, n: int, offset: int) -> list[ScoredTrack]:
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


def ranking_page_items(*, user, ranked: list, n: int, offset: int) -> list[dict]:
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


def _similar_by_tags(*, track: Track, n: int, exclude: frozenset[int]) -> list[ScoredTrack]:
    tag_ids = list(track.tag_links.values_list("tag_id", flat=True))
    rows = (
        Track.objects.exclude(pk=track.pk)
        .exclude(pk__in=exclude)
        .filter(Q(tag_links__tag_id__in=tag_ids) | Q(artist_id=track.artist_id))
        .annotate(shared=Count("tag_links", filter=Q(tag_links__tag_id__in=tag_ids)))
        .select_related("artist")
        .order_by("-shared", "-popularity", "id")[:n]
    )
    return [ScoredTrack(track=t, score=float(t.shared) / max(1, len(tag_ids))) for t in rows]


def tracks_similar_to(
    *, track: Track, n: int, use_ann: bool = False, exclude: frozenset[int] = frozenset()
) -> list[ScoredTrack]:
    """Nearest tracks by cosine of the active recommender's item vectors: pgvector HNSW by
    default, FAISS HNSW with `use_ann`; tag overlap when no model is active. Tracks of
    `exclude` (a listener's do-not-recommend marks) are left out of the search itself."""
    state = active_state(ModelVersion.Kind.RECOMMENDER)
    if state is None or track.pk not in state.track_index:
        return _similar_by_tags(track=track, n=n, exclude=exclude)
    query = state.unit_item_vectors[state.track_index[track.pk]]
    if use_ann:
        # Deep enough that n remain after dropping the track itself and the excluded ones.
        depth = min(n + 1 + len(exclude), state.track_ids.shape[0])
        scores, rows = state.faiss_index("hnsw-cos").search(query.reshape(1, -1), depth)
        pairs = [
            (int(state.track_ids[r]), float(s))
            for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0 and int(state.track_ids[r]) != track.pk
            and int(state.track_ids[r]) not in exclude
        ][:n]  # fmt: skip
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(100, 2 * n + len(exclude))])
            rows = (
                TrackVector.objects.filter(model_version_id=state.version_id)
                .exclude(track_id=track.pk)
                .exclude(track_id__in=exclude)
                .annotate(distance=CosineDistance("embedding", padded_vector(query).tolist()))
                .order_by("distance")
                .values_list("track_id", "distance")[:n]
            )
            pairs = [(track_id, 1.0 - float(distance)) for track_id, distance in rows]
    tracks = Track.objects.select_related("artist").in_bulk([t for t, _ in pairs])
    return [ScoredTrack(track=tracks[t], score=s) for t, s in pairs if t in tracks]


def similar_tracks_payload(
    *, track_id: int, n: int, use_ann: bool = False, exclude: frozenset[int] = frozenset()
) -> dict | None:
    """`tracks_similar_to` as plain data (the API's payload: {"track_id", "items": [{"track_id",
    "title", "artist", "score"}]}), None for an unknown track."""
    track = Track.objects.select_related("artist").filter(pk=track_id).first()
    if track is None:
        return None
    items = [
        {"track_id": item.track.pk, "title": item.track.title,
         "artist": item.track.artist.name, "score": item.score}
        for item in tracks_similar_to(track=track, n=n, use_ann=use_ann, exclude=exclude)
    ]  # fmt: skip
    return {"track_id": track.pk, "items": items}


def user_readable_by(*, user_id: int, reader):
    """The user whose recommendations `reader` may read: themselves, or anyone for staff. None
    for anyone else and for a missing id alike, so that ids cannot be probed."""
    if user_id == reader.pk:
        return reader
    if not reader.is_staff:
        return None
    return get_user_model().objects.filter(pk=user_id).first()


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
    unique_artists, centroids = state.artist_centroids()
    position = np.searchsorted(unique_artists, artist.pk)
    if position >= len(unique_artists) or unique_artists[position] != artist.pk:
        return []
    similarity = centroids @ centroids[position]
    similarity[position] = -np.inf
    similarity[unique_artists < 0] = -np.inf
    top = top_k_indices(similarity, n)
    artists = Artist.objects.in_bulk([int(unique_artists[i]) for i in top])
    return [
        ScoredArtist(artist=artists[int(unique_artists[i])], score=float(similarity[i]))
        for i in top
        if int(unique_artists[i]) in artists
    ]
