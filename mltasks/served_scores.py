"""A sample of the scores serving returns, kept in Redis for the drift check's `served_score`.

Serving records (`served_scores_record`, cheap and never raising); the drift check reads
(`served_scores_read`). Per model version, the first SERVED_SCORES_KEPT scores are its
reference and the latest SERVED_SCORES_KEPT the recent side.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import numpy as np
from django.core.cache import cache
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

SERVED_SCORES_KEPT = 5000  # per list: the first scores of a version and the latest ones
SERVED_SCORES_TTL_SECONDS = 60 * 60 * 24 * 60


def _keys(model_version_id: int) -> tuple[str, str, str]:
    base = f"drift:served_scores:{model_version_id}"
    return tuple(cache.make_key(f"{base}:{part}") for part in ("reference", "recent", "count"))


def served_scores_record(
    *, model_version_id: int, scores: Sequence[float], sample_rate: float = 0.05
) -> None:
    """Keep a sample of served scores for drift checks (call it from serving; never raises).
    One Redis round trip when sampled."""
    if not scores or random.random() >= sample_rate:
        return
    try:
        reference_key, recent_key, count_key = _keys(model_version_id)
        values = [float(score) for score in scores]
        pipeline = get_redis_connection("default").pipeline(transaction=False)
        pipeline.rpush(reference_key, *values)
        pipeline.ltrim(reference_key, 0, SERVED_SCORES_KEPT - 1)
        pipeline.lpush(recent_key, *values)
        pipeline.ltrim(recent_key, 0, SERVED_SCORES_KEPT - 1)
        pipeline.incrby(count_key, len(values))
        for key in (reference_key, recent_key, count_key):
            pipeline.expire(key, SERVED_SCORES_TTL_SECONDS)
        pipeline.execute()
    except Exception:
        logger.debug("served scores not recorded", exc_info=True)


def served_scores_read(model_version_id: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(reference, recent) scores once the recent list no longer overlaps the reference."""
    reference_key, recent_key, count_key = _keys(model_version_id)
    pipeline = get_redis_connection("default").pipeline(transaction=False)
    pipeline.lrange(reference_key, 0, -1)
    pipeline.lrange(recent_key, 0, -1)
    pipeline.get(count_key)
    reference, recent, count = pipeline.execute()
    if int(count or 0) < 2 * SERVED_SCORES_KEPT:
        return None
    return np.array(reference, dtype=np.float64), np.array(recent, dtype=np.float64)
