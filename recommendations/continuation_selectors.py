"""Playlist continuation: the next tracks for a sequence, from the active continuation model.

Reads only: the cached page the API serves is built by recommendations.continuation_services.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.utils import timezone

from catalog.models import Track
from feedback.context import interaction_context
from mltasks.ml.eval.seq_metrics import rerank_max_per_artist
from mltasks.ml.eval.topk import top_k_indices
from mltasks.ml.scorers.base import SequenceContext
from mltasks.ml.scorers.neural import NeuralSequenceScorer
from recommendations.selectors import ScoredTrack
from recommendations.serving import VectorState
from recommendations.track_cards import track_cards
from tunedin import metrics

MAX_CONTINUATION = 200
MAX_INPUT_TRACKS = 500


@dataclass(frozen=True)
class ContinuationList:
    model_version: int | None
    items: list[ScoredTrack]
    unknown_tracks: list[int] = field(default_factory=list)
    fallback: str | None = None  # "popularity" when no model or no known input track


def continuation_context(*, hour: int | None, dow: int | None) -> tuple[int, int]:
    """(hour, day of week) of the request: the ones given, else now's."""
    if hour is None or dow is None:
        now_hour, now_dow = interaction_context(occurred_at=timezone.now())
        hour = now_hour if hour is None else hour
        dow = now_dow if dow is None else dow
    return hour, dow


def _popular(*, exclude: set[int], k: int) -> list[tuple[int, float]]:
    rows = Track.objects.exclude(pk__in=exclude).order_by("-popularity", "id")
    return [(pk, float(p)) for pk, p in rows.values_list("pk", "popularity")[:k]]


def _candidates(*, state, model, indices, hour, dow, blocked, pool, use_ann):
    """(item rows, scores) best first: by the served pipeline when it is not a single neural
    model (the ranker, Markov and session-kNN rank exactly; `use_ann` applies to the neural
    models' vectors only), else by the neural model, over FAISS HNSW with `use_ann`."""
    forward = metrics.MODEL_FORWARD_SECONDS.labels(kind=state.kind, algorithm=state.algorithm)
    pipeline = state.pipeline()
    if pipeline is not None and not isinstance(pipeline, NeuralSequenceScorer):
        context = SequenceContext(items=indices, hour=hour, dow=dow)
        with forward.time():
            return pipeline.top_k(context, pool, exclude=np.asarray(blocked, dtype=np.int64))
    search = metrics.ANN_SEARCH_SECONDS.labels(
        kind=state.kind, backend="faiss-hnsw" if use_ann else "exact"
    )
    if use_ann:
        with forward.time():
            query = model.sequence_vector(indices, hour, dow).astype(np.float32)
        with search.time():
            scores, rows = state.faiss_index("hnsw-ip").search(query.reshape(1, -1), pool)
        keep = rows[0] >= 0
        candidates, candidate_scores = rows[0][keep], scores[0][keep]
        order = top_k_indices(candidate_scores, candidate_scores.size)  # best first, stable
        return candidates[order], candidate_scores[order]
    with forward.time():
        scores = model.score(indices, hour, dow)
    with search.time():
        candidates = top_k_indices(scores, pool)
    return candidates, scores[candidates]


def _ranked(*, state, indices, hour, dow, exclude, k, use_ann, max_per_artist):
    model, item_artist = state.continuation_model()
    blocked = [state.track_index[t] for t in exclude if t in state.track_index]
    # With an artist cap, rank a deeper pool so that enough other artists are in it.
    pool = min(state.track_ids.shape[0], k * (10 if max_per_artist else 1) + len(blocked))
    candidates, candidate_scores = _candidates(
        state=state, model=model, indices=indices, hour=hour, dow=dow, blocked=blocked,
        pool=pool, use_ann=use_ann,
    )  # fmt: skip
    allowed = ~np.isin(candidates, blocked)
    candidates, candidate_scores = candidates[allowed], candidate_scores[allowed]
    if max_per_artist and item_artist is not None:
        candidates, candidate_scores = rerank_max_per_artist(
            candidates, candidate_scores, item_artist, max_per_artist
        )
    return [
        (int(state.track_ids[i]), float(s))
        for i, s in zip(candidates[:k], candidate_scores[:k], strict=True)
    ]


def continuation_fallback_payload(*, track_ids: list[int], exclude: set[int], k: int) -> dict:
    """The API's payload without an active model: the most popular tracks not in `exclude`."""
    unknown = sorted(
        set(track_ids) - set(Track.objects.filter(pk__in=track_ids).values_list("pk", flat=True))
    )
    return _payload(
        ranked=_popular(exclude=exclude, k=k), version_id=None, unknown=unknown,
        fallback="popularity",
    )  # fmt: skip


def continuation_payload(
    *,
    state: VectorState,
    track_ids: list[int],
    exclude: set[int],
    hour: int,
    dow: int,
    k: int,
    use_ann: bool,
    max_per_artist: int | None,
) -> dict:
    """The API's payload from the active model `state`: {"model_version", "fallback",
    "unknown_tracks", "items": [{"track_id", "title", "artist", "score"}]}. Tracks of
    `exclude` never come back; ids the model does not know are reported in `unknown_tracks`
    (with none known, the most popular tracks)."""
    known = [t for t in track_ids if t in state.track_index]
    unknown = sorted({t for t in track_ids if t not in state.track_index})
    if not known:
        ranked, fallback = _popular(exclude=exclude, k=k), "popularity"
    else:
        fallback = None
        indices = [state.track_index[t] for t in known][-settings.MAX_SEQ_LEN :]
        ranked = _ranked(
            state=state, indices=indices, hour=hour, dow=dow, exclude=exclude, k=k,
            use_ann=use_ann, max_per_artist=max_per_artist,
        )  # fmt: skip
    return _payload(ranked=ranked, version_id=state.version_id, unknown=unknown, fallback=fallback)


def _payload(*, ranked: list[tuple[int, float]], version_id, unknown, fallback) -> dict:
    cards = track_cards(t for t, _ in ranked)
    items = [
        {"track_id": t, "title": cards[t].title, "artist": cards[t].artist, "score": s}
        for t, s in ranked
        if t in cards
    ]
    return {
        "model_version": version_id,
        "fallback": fallback,
        "unknown_tracks": unknown,
        "items": items,
    }


def continuation_list(payload: dict) -> ContinuationList:
    """A continuation payload with Track objects (artist loaded), for the site's templates."""
    ids = [item["track_id"] for item in payload["items"]]
    tracks = Track.objects.select_related("artist").in_bulk(ids)
    return ContinuationList(
        model_version=payload["model_version"],
        items=[
            ScoredTrack(track=tracks[item["track_id"]], score=item["score"])
            for item in payload["items"]
            if item["track_id"] in tracks
        ],
        unknown_tracks=payload["unknown_tracks"],
        fallback=payload["fallback"],
    )


def playlist_track_ids(playlist) -> list[int]:
    """The playlist's track ids in order (the sequence to continue)."""
    return list(playlist.entries.order_by("position").values_list("track_id", flat=True))
