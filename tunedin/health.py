"""What /healthz reports: database, cache and serving models, checked cheaply on every call."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError

from mltasks.models import ModelVersion

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_DEGRADED = "degraded"
STATUS_DOWN = "down"


def _active_kinds() -> set[str] | None:
    """Kinds with an active model version; None when the database cannot be reached."""
    try:
        return set(
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list(
                "kind", flat=True
            )
        )
    except DatabaseError:
        logger.warning("health check: database unreachable", exc_info=True)
        return None


def _cache_connected() -> bool:
    try:
        from django_redis import get_redis_connection

        return bool(get_redis_connection("default").ping())
    except NotImplementedError:  # not a django-redis backend: a round trip instead
        cache.set("healthz", "1", timeout=5)
        return cache.get("healthz") == "1"
    except Exception:
        logger.warning("health check: cache unreachable", exc_info=True)
        return False


def _serving_loaded_kinds() -> dict[str, bool] | None:
    """Which kinds this process has loaded, when the serving module says so."""
    try:
        from recommendations.serving import loaded_kinds
    except ImportError:
        return None
    try:
        return dict(loaded_kinds())
    except Exception:
        logger.warning("health check: serving state unavailable", exc_info=True)
        return None


def health_check() -> dict:
    """`status` is down without the database, degraded without cache or a serving model."""
    active_kinds = _active_kinds()
    db_connected = active_kinds is not None
    cache_connected = _cache_connected()
    loaded = _serving_loaded_kinds() if db_connected else None
    model_loaded = {
        kind: kind in (active_kinds or ()) and (loaded is None or loaded.get(kind, False))
        for kind in ModelVersion.Kind.values
    }
    if not db_connected:
        status = STATUS_DOWN
    elif cache_connected and all(model_loaded.values()):
        status = STATUS_OK
    else:
        status = STATUS_DEGRADED
    return {
        "status": status,
        "version": settings.APP_VERSION,
        "model_loaded": model_loaded,
        "cache_connected": cache_connected,
        "db_connected": db_connected,
    }
