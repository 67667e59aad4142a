"""Slate diversity: re-ranks that spread a list over artists and content, the metrics that
measure how spread it is, and the push-down of tracks close to ones a listener disliked.

Re-ranks take a ranked list (best first) and return a permutation of its positions, so the
caller keeps its own ids and scores. Metrics take `top_items`, an (n_lists, K_max) array of item
indices ranked best first, padded with -1 (topk.PAD) like the accuracy metrics of
eval.metrics, so a benchmark reports them next to nDCG and Recall.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mltasks.ml.eval.metrics import evaluate_top_items
from mltasks.ml.eval.seq_metrics import rerank_max_per_artist


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def max_per_artist_order(artists: np.ndarray, max_per_artist: int) -> np.ndarray:
    """Positions of a ranked list with at most `max_per_artist` items of an artist up front:
    the items over their artist's cap move, in order, behind every item that fits (so every
    prefix keeps the cap while other artists remain). Artist -1 (unknown) is never capped."""
    artists = np.asarray(artists, dtype=np.int64)
    positions = np.arange(len(artists))
    order, _ = rerank_max_per_artist(positions, -positions.astype(np.float64), artists,
                                     max_per_artist)  # fmt: skip
    return order


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, diversity: float) -> np.ndarray:
    """Maximal marginal relevance: positions in the order picked greedily by
    (1 - diversity) * relevance - diversity * (highest cosine to an item already picked).

    Relevance is rescaled to [0, 1] over the list first, so that it and the cosine share a
    scale; `diversity` 0 keeps the relevance order, 1 picks the item least like those before.
    Rows of `vectors` describe the items (e.g. tag vectors); an all-zero row is like nothing.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
    relevance = np.asarray(relevance, dtype=np.float64)
    n = len(relevance)
    if n == 0 or diversity == 0.0:
        return np.argsort(-relevance, kind="stable")
    spread = relevance.max() - relevance.min()
    scaled = (relevance - relevance.min()) / spread if spread > 0 else np.ones(n)
    unit = unit_rows(vectors).astype(np.float64)
    closest = np.full(n, -np.inf)  # highest cosine to a picked item (none picked yet)
    picked = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    for step in range(n):
        redundancy = np.where(np.isfinite(closest), closest, 0.0)
        value = (1.0 - diversity) * scaled - diversity * redundancy
        value[picked] = -np.inf
        best = int(np.argmax(value))  # ties: the better-ranked position
        order[step], picked[best] = best, True
        closest = np.maximum(closest, unit @ unit[best])
    return order


def penalize_near(
    scores: np.ndarray, candidates: np.ndarray, avoided: np.ndarray, weight: float
) -> np.ndarray:
    """`scores` lowered for candidates close to any `avoided` vector: by weight x (highest
    positive cosine) x (the scores' spread), so a near-copy of a disliked track drops by
    `weight` of the list's range whatever scale the scores have."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0 or len(avoided) == 0:
        return scores.copy()
    similarity = (unit_rows(candidates) @ unit_rows(avoided).T).max(axis=1)
    spread = float(scores.max() - scores.min()) or 1.0
    return scores - weight * np.clip(similarity, 0.0, None) * spread


def _rows(top_items: np.ndarray, k: int):
    for row in np.asarray(top_items)[:, :k]:
        items = row[row >= 0]
        if len(items):
            yield items


def artist_repeat_at_k(top_items: np.ndarray, item_artist: np.ndarray, k: int) -> float:
    """ArtistRepeat@K: the share of a list's top K whose artist already appeared higher up
    (1 - distinct artists / items), averaged over lists; 0 = every item by another artist.
    Items of unknown artist (-1) count as distinct. Lists with no item are skipped."""
    item_artist = np.asarray(item_artist)
    shares = []
    for items in _rows(top_items, k):
        artists = item_artist[items]
        known = artists[artists >= 0]
        distinct = len(np.unique(known)) + int((artists < 0).sum())
        shares.append(1.0 - distinct / len(items))
    return float(np.mean(shares)) if shares else 0.0


def intra_list_diversity_at_k(top_items: np.ndarray, item_vectors, k: int) -> float:
    """ILD@K: the mean cosine distance (1 - cosine) over the pairs of a list's top K, averaged
    over lists with at least two items. `item_vectors` (dense, or scipy sparse such as tag
    counts: only each list's rows are made dense) are content vectors, e.g. tags; an
    all-zero row is at distance 1 from everything."""
    values = []
    for items in _rows(top_items, k):
        if len(items) < 2:
            continue
        rows = item_vectors[items]
        unit = unit_rows(rows.toarray() if sp.issparse(rows) else rows)
        similarity = unit @ unit.T
        pairs = len(items) * (len(items) - 1)
        values.append(1.0 - (similarity.sum() - np.trace(similarity)) / pairs)
    return float(np.mean(values)) if values else 0.0


# The slates a benchmark reports for the served lists: the model's order, the default artist
# cap of /api/rec and Discover, and that cap after an MMR re-rank on tags (as ?diversity=0.3).
SERVED_SLATES = (
    ("model order", 0, 0.0),
    ("max 2 per artist", 2, 0.0),
    ("MMR 0.3, max 2 per artist", 2, 0.3),
)


def slate_reordered(
    top_items: np.ndarray,
    *,
    item_artist: np.ndarray | None,
    item_vectors,
    max_per_artist: int,
    diversity: float,
) -> np.ndarray:
    """Each row of `top_items` (best first, -1 padded) re-ordered as a served slate would be:
    the MMR re-rank on `item_vectors` (relevance: the rank, best = 1), then the artist cap.
    Nothing is dropped, so a row's items stay the same; only their order moves."""
    reordered = np.array(top_items, copy=True)
    for row, items in enumerate(np.asarray(top_items)):
        items = items[items >= 0]
        if len(items) < 2:
            continue
        if diversity and item_vectors is not None:
            rows = item_vectors[items]
            vectors = rows.toarray() if sp.issparse(rows) else np.asarray(rows)
            relevance = np.linspace(1.0, 0.0, len(items))
            items = items[mmr_order(relevance, vectors, diversity)]
        if max_per_artist and item_artist is not None:
            items = items[max_per_artist_order(np.asarray(item_artist)[items], max_per_artist)]
        reordered[row, : len(items)] = items
    return reordered


def served_slate_report(
    *,
    top_items: np.ndarray,
    test_items,
    n_items: int,
    item_artist: np.ndarray | None = None,
    item_vectors=None,
    k: int = 20,
    slates=SERVED_SLATES,
) -> dict[str, dict[str, float]]:
    """Accuracy and diversity of the served lists under each slate: Recall@k and nDCG@k next to
    ArtistRepeat@k (with artists) and ILD@k (with content vectors), so a benchmark shows what
    the artist cap and the MMR re-rank cost in accuracy. `top_items` should hold more than k
    items per row (the re-ranks bring items from below k up)."""
    report = {}
    for name, max_per_artist, diversity in slates:
        if (max_per_artist and item_artist is None) or (diversity and item_vectors is None):
            continue
        lists = slate_reordered(
            top_items, item_artist=item_artist, item_vectors=item_vectors,
            max_per_artist=max_per_artist, diversity=diversity,
        )  # fmt: skip
        metrics = evaluate_top_items(
            top_items=lists, test_items=test_items, n_items=n_items,
            metric_names=(f"Recall@{k}", f"nDCG@{k}"),
        )  # fmt: skip
        if item_artist is not None:
            metrics[f"ArtistRepeat@{k}"] = artist_repeat_at_k(lists, item_artist, k)
        if item_vectors is not None:
            metrics[f"ILD@{k}"] = intra_list_diversity_at_k(lists, item_vectors, k)
        report[name] = metrics
    return report
