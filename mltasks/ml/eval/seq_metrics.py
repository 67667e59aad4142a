"""Continuation metrics (Repetition@K, ArtistRepeat@K), ranking of evaluation cases, re-ranking.

`rank_cases` turns any continuation scorer (an object with `score_batch`) into top-K lists with
the protocol's full ranking: every catalog item scored, the items already in the sequence's
history removed before taking the top K. `evaluate_rankings` adds the shared metrics from
`metrics.py` and the continuation ones defined in EVALUATION.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from mltasks.ml.eval.metrics import evaluate_top_items
from mltasks.ml.eval.topk import PAD, exclude_items, top_k_indices

DEFAULT_METRICS = ("Recall@20", "nDCG@10", "HR@10", "Coverage@100")


class ContinuationScorer(Protocol):
    name: str
    n_items: int

    def score_batch(
        self,
        inputs: Sequence[np.ndarray],
        hours: np.ndarray,
        dows: np.ndarray,
        *,
        train_rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """(len(inputs), n_items) scores; higher is better."""
        ...


def repetition_at_k(top_items: np.ndarray, input_items: Sequence[np.ndarray], k: int) -> float:
    """Share of the top-K slate that already occurs in the input or earlier in the slate."""
    shares = []
    for row, inputs in zip(top_items[:, :k], input_items, strict=True):
        slate = row[row != PAD]
        if len(slate) == 0:
            continue
        seen = set(np.asarray(inputs).tolist())
        repeats = 0
        for item in slate.tolist():
            if item in seen:
                repeats += 1
            seen.add(item)
        shares.append(repeats / len(slate))
    return float(np.mean(shares)) if shares else 0.0


def artist_repeat_at_k(top_items: np.ndarray, item_artist: np.ndarray, k: int) -> float:
    """Share of slate items whose artist already appeared earlier in the slate (-1 = unknown).

    Every place of a known artist after its first is a repeat: a slate's repeats are its known
    artists' places less its distinct known artists (counted for every case at once)."""
    slates = np.asarray(top_items)[:, :k]
    shown = slates != PAD
    lengths = shown.sum(axis=1)
    if len(slates) == 0 or not lengths.any():
        return 0.0
    artists = np.where(shown, item_artist[np.where(shown, slates, 0)], -1)
    artists.sort(axis=1)
    known = artists >= 0
    repeats = (known[:, 1:] & (artists[:, 1:] == artists[:, :-1])).sum(axis=1)
    has_slate = lengths > 0
    return float(np.mean(repeats[has_slate] / lengths[has_slate]))


def rerank_max_per_artist(
    items: np.ndarray, scores: np.ndarray, item_artist: np.ndarray, max_per_artist: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the score order but allow at most `max_per_artist` items of an artist up front.

    Items over their artist's cap are moved, in their original order, behind every item that
    fits, so the result is a permutation of the input and any prefix respects the cap as long as
    enough other artists are available. Items with an unknown artist (-1) are never capped.
    """
    if max_per_artist < 1:
        raise ValueError("max_per_artist must be at least 1")
    items = np.asarray(items)
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")
    per_artist: dict[int, int] = {}
    kept, deferred = [], []
    for position in order.tolist():
        artist = int(item_artist[items[position]])
        if artist >= 0 and per_artist.get(artist, 0) >= max_per_artist:
            deferred.append(position)
            continue
        per_artist[artist] = per_artist.get(artist, 0) + 1
        kept.append(position)
    positions = np.array(kept + deferred, dtype=np.int64)
    return items[positions], scores[positions]


def rank_cases(
    model: ContinuationScorer,
    cases,
    *,
    k: int = 100,
    exclude_seen: bool = True,
    batch_size: int = 512,
    sampled_negatives: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-k lists for every case; optionally the target's rank among `sampled_negatives`.

    The sampled rank (0 = first) compares the target's score with that many items drawn
    uniformly from the catalog minus the history and the target, the SASRec paper's protocol.
    """
    rng = np.random.default_rng(seed)
    tops, sampled_ranks = [], []
    for start in range(0, len(cases), batch_size):
        stop = min(start + batch_size, len(cases))
        rows = np.arange(start, stop)
        scores = model.score_batch(
            [cases.inputs[r] for r in rows],
            cases.hours[rows],
            cases.dows[rows],
            train_rows=cases.train_rows[rows],
        )
        histories = [cases.histories[r] for r in rows] if exclude_seen else None
        # Sampled ranks read the target's own score below: then `scores` stays unmasked.
        masked = exclude_items(scores, histories, in_place=not sampled_negatives)
        tops.append(top_k_indices(masked, k))
        if sampled_negatives:
            negatives = case_negatives(rng, cases, rows, n_items=model.n_items, n=sampled_negatives)
            sampled_ranks.extend(ranks_among_negatives(scores, cases.targets[rows], negatives))
    top_items = np.vstack(tops) if tops else np.zeros((0, k), dtype=np.int64)
    return top_items, (np.array(sampled_ranks) if sampled_negatives else None)


def case_negatives(
    rng: np.random.Generator, cases, rows: np.ndarray, *, n_items: int, n: int
) -> list[np.ndarray]:
    """For each case of `rows`, in order, `n` items drawn from the catalog minus its history and
    its target (`sample_negatives`): the same `rng` state draws the same items."""
    return [
        sample_negatives(
            rng, n_items, set(cases.histories[row].tolist()) | {int(cases.targets[row])}, n
        )
        for row in np.asarray(rows).tolist()
    ]


def ranks_among_negatives(
    scores: np.ndarray, targets: np.ndarray, negatives: Sequence[np.ndarray]
) -> np.ndarray:
    """Each row's target rank (0 = first) among its drawn `negatives`: how many score above it.
    `scores` must be unmasked (a target may be in its history)."""
    target_scores = scores[np.arange(len(targets)), targets]
    return np.array(
        [int((scores[i, drawn] > target_scores[i]).sum()) for i, drawn in enumerate(negatives)],
        dtype=np.int64,
    )


def sample_negatives(
    rng: np.random.Generator, n_items: int, forbidden: set[int], n: int
) -> np.ndarray:
    """`n` distinct items drawn uniformly from the catalog minus `forbidden` (all that are left
    when there are no more); the same `rng` state draws the same items."""
    allowed = n_items - len(forbidden)
    if allowed <= n:
        return np.array([i for i in range(n_items) if i not in forbidden], dtype=np.int64)
    chosen: set[int] = set()
    while len(chosen) < n:
        for item in rng.integers(0, n_items, size=2 * n).tolist():
            if item not in forbidden and item not in chosen:
                chosen.add(item)
                if len(chosen) == n:
                    break
    return np.fromiter(chosen, dtype=np.int64)


def evaluate_rankings(
    *,
    top_items: np.ndarray,
    cases,
    n_items: int,
    item_artist: np.ndarray | None = None,
    metric_names: Iterable[str] = DEFAULT_METRICS,
    repetition_k: int = 20,
    sampled_ranks: np.ndarray | None = None,
) -> dict[str, float]:
    """Recall/nDCG/HR/Coverage (metrics.py) + Repetition@K, ArtistRepeat@K, sampled HR/nDCG."""
    test_items = [np.array([target]) for target in cases.targets.tolist()]
    results = evaluate_top_items(
        top_items=top_items, test_items=test_items, n_items=n_items, metric_names=metric_names
    )
    results[f"Repetition@{repetition_k}"] = repetition_at_k(top_items, cases.inputs, repetition_k)
    if item_artist is not None:
        results[f"ArtistRepeat@{repetition_k}"] = artist_repeat_at_k(
            top_items, item_artist, repetition_k
        )
    if sampled_ranks is not None and len(sampled_ranks):
        hits = sampled_ranks < 10
        results["sampled100-HR@10"] = float(hits.mean())
        results["sampled100-nDCG@10"] = float(
            np.mean(np.where(hits, 1.0 / np.log2(sampled_ranks + 2), 0.0))
        )
    return results
