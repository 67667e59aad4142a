"""Why a pipeline recommends an item: the scorer that contributed most, and the history item
behind it (no ORM; serving turns these into sentences).

- a ranker: its largest per-item contribution (LightGBM's SHAP values summed per scorer), then
  the history item behind that scorer;
- an item-item model: the history item i with the largest w(i) * W[i, j];
- a factor model: the history item whose vector is closest (cosine) to the item's;
- popularity: no history item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mltasks.ml.scorers.base import HistoryContext, Scorer
from mltasks.ml.scorers.factor import FactorScorer
from mltasks.ml.scorers.item_item import ItemItemScorer
from mltasks.ml.scorers.popularity import PopularityScorer
from mltasks.ml.scorers.ranker import RankerPipeline


@dataclass(frozen=True)
class Because:
    """`source`: "neighbour" (an item-item model), "similar" (a factor model), "popular",
    "tags", "artist" or "model"; `history_item`: the context item behind it, if any."""

    source: str
    history_item: int | None = None


def explain(
    scorer: Scorer, context: HistoryContext, items: np.ndarray, exclude: np.ndarray | None = None
) -> dict[int, Because]:
    """A `Because` for each of `items` (item indices of `scorer`)."""
    items = np.asarray(items, dtype=np.int64)
    if isinstance(scorer, RankerPipeline):
        groups = scorer.contributions(context, items, exclude)
        by_group: dict[str, list[int]] = {}
        for item, group in groups.items():
            by_group.setdefault(group, []).append(item)
        reasons: dict[int, Because] = {}
        for group, members in by_group.items():
            if group in scorer.scorers:
                reasons |= explain(scorer.scorers[group], context, np.array(members))
            else:
                source = {"popularity": "popular"}.get(group, group)
                reasons |= {item: Because(source) for item in members}
        return reasons
    if isinstance(scorer, ItemItemScorer):
        return _neighbours(scorer, context, items)
    if isinstance(scorer, FactorScorer):
        return _closest(scorer.item_vectors, context, items)
    if isinstance(scorer, PopularityScorer):
        return {int(item): Because("popular") for item in items}
    return {int(item): Because("model") for item in items}


def _history(context: HistoryContext, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    items, weights = context.item_weights()
    keep = (items >= 0) & (items < n_items)
    return items[keep], weights[keep]


def _neighbours(scorer: ItemItemScorer, context, items) -> dict[int, Because]:
    history, weights = _history(context, scorer.n_items)
    if len(history) == 0 or len(items) == 0:
        return {int(item): Because("neighbour") for item in items}
    contributions = scorer.weights[history][:, items].toarray()
    contributions *= (
        np.ones_like(weights)[:, None] if scorer.weighting == "binary" else (weights[:, None])
    )
    best = contributions.argmax(axis=0)
    return {
        int(item): Because("neighbour", int(history[b]) if contributions[b, column] > 0 else None)
        for column, (item, b) in enumerate(zip(items.tolist(), best.tolist(), strict=True))
    }


def _closest(item_vectors: np.ndarray, context, items) -> dict[int, Because]:
    history, _ = _history(context, len(item_vectors))
    if len(history) == 0 or len(items) == 0:
        return {int(item): Because("similar") for item in items}
    unit = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit[items] @ unit[history].T
    best = similarity.argmax(axis=1)
    return {
        int(item): Because("similar", int(history[b]))
        for item, b in zip(items.tolist(), best.tolist(), strict=True)
    }
