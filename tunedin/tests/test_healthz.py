from unittest import mock

import pytest
from django.db import OperationalError
from django.test import override_settings
from django.urls import reverse

from mltasks.models import ModelVersion

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "default": {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.2,
            "SOCKET_TIMEOUT": 0.2,
        },
    }
}


def _activate_every_kind():
    for kind in ModelVersion.Kind.values:
        ModelVersion.objects.create(kind=kind, algorithm="mostpop").activate()


@pytest.fixture
def serving_loads_everything(monkeypatch):
    """This process has loaded whatever is active (as after gunicorn's post_worker_init)."""
    monkeypatch.setattr(
        "recommendations.serving.loaded_kinds",
        lambda: dict.fromkeys(ModelVersion.Kind.values, True),
    )


def test_healthz_is_ok_with_database_cache_and_every_model(client, serving_loads_everything):
    _activate_every_kind()

    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": "0.1.0",
        "model_loaded": {"recommender": True, "continuation": True},
        "cache_connected": True,
        "db_connected": True,
    }
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_is_degraded_without_an_active_model(client, serving_loads_everything):
    ModelVersion.objects.create(kind="recommender", algorithm="lightgcn").activate()

    response = client.get(reverse("healthz"))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["model_loaded"] == {"recommender": True, "continuation": False}


def test_healthz_is_degraded_when_the_model_is_active_but_not_loaded_here(client, monkeypatch):
    _activate_every_kind()
    monkeypatch.setattr(
        "recommendations.serving.loaded_kinds",
        lambda: {"recommender": True, "continuation": False},
    )

    body = client.get(reverse("healthz")).json()

    assert body["status"] == "degraded"
    assert body["model_loaded"] == {"recommender": True, "continuation": False}


def test_healthz_is_degraded_when_redis_is_unreachable(client, serving_loads_everything):
    _activate_every_kind()

    with override_settings(CACHES=DEAD_REDIS):
        response = client.get(reverse("healthz"))

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cache_connected"], body["db_connected"]) == (
        "degraded",
        False,
        True,
    )


def test_healthz_is_down_with_503_when_the_database_is_unreachable(client):
    refused = OperationalError("connection refused")
    with mock.patch("django.db.backends.base.base.BaseDatabaseWrapper.cursor", side_effect=refused):
        response = client.get(reverse("healthz"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["db_connected"] is False
    assert body["model_loaded"] == {"recommender": False, "continuation": False}
    assert body["cache_connected"] is True
