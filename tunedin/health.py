"""What /healthz reports: database, cache and the model versions this process serves, checked
cheaply on every call (serving state is only read: web workers load it at boot and on
activation, recommendations.serving)."""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError

from mltasks.models import ModelVersion
from recommendations import serving

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_DEGRADED = "degraded"
STATUS_DOWN = "down"


def _active_versions() -> dict[str, int] | None:
    """{kind: active version id}; None when the database cannot be reached."""
    try:
        return dict(
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("kind", "pk")
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


def health_check() -> dict:
    """`status` is down without the database, degraded without cache or when this process does
    not serve every kind's active version. `serving` says, per kind, which version this process
    serves and whether it is the active one; `pid` tells the processes behind one address apart.
    """
    active = _active_versions()
    db_connected = active is not None
    cache_connected = _cache_connected()
    served = serving.served_versions()
    serving_report = {
        kind: {
            "version": served[kind],
            "loaded": served[kind] is not None and served[kind] == (active or {}).get(kind),
        }
        for kind in ModelVersion.Kind.values
    }
    model_loaded = {kind: report["loaded"] for kind, report in serving_report.items()}
    if not db_connected:
        status = STATUS_DOWN
    elif cache_connected and all(model_loaded.values()):
        status = STATUS_OK
    else:
        status = STATUS_DEGRADED
    return {
        "status": status,
        "version": settings.APP_VERSION,
        "pid": os.getpid(),
        "serving": serving_report,
        "model_loaded": model_loaded,
        "cache_connected": cache_connected,
        "db_connected": db_connected,
    }
