"""API token authentication: cached in Redis, forgotten as soon as a user or token changes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from catalog.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:9/1",
    "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
}


@pytest.fixture
def token():
    return Token.objects.create(user=UserFactory())


def _me(api_client, token_key: str, user_id: int) -> int:
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")
    return api_client.get(f"/api/rec/users/{user_id}/similar").status_code


def _token_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "authtoken_token" in q["sql"]]


def test_a_token_is_looked_up_in_the_database_once_then_served_from_the_cache(api_client, token):
    with CaptureQueriesContext(connection) as first:
        assert _me(api_client, token.key, token.user_id) == 200
    with CaptureQueriesContext(connection) as second:
        assert _me(api_client, token.key, token.user_id) == 200
    assert len(_token_queries(first)) == 1
    assert _token_queries(second) == []


def test_a_wrong_token_is_refused(api_client, token):
    assert _me(api_client, token.key[:-1] + "x", token.user_id) == 401


def test_a_deleted_token_stops_working_at_once(api_client, token):
    key, user_id = token.key, token.user_id  # delete() clears the instance's key
    assert _me(api_client, key, user_id) == 200
    token.delete()
    assert _me(api_client, key, user_id) == 401


def test_a_deactivated_user_is_refused_at_once(api_client, token):
    assert _me(api_client, token.key, token.user_id) == 200
    token.user.is_active = False
    token.user.save()
    assert _me(api_client, token.key, token.user_id) == 401


def test_a_user_promoted_to_staff_is_staff_at_once(api_client, token):
    other = UserFactory()
    assert _me(api_client, token.key, other.pk) == 404  # not your data: as if missing
    token.user.is_staff = True
    token.user.save()
    assert _me(api_client, token.key, other.pk) == 200


def test_a_deleted_user_is_refused_at_once(api_client, token):
    key, user_id = token.key, token.user_id
    assert _me(api_client, key, user_id) == 200
    token.user.delete()
    assert _me(api_client, key, user_id) == 401


def test_tokens_still_work_when_redis_is_down(api_client, token, settings):
    settings.CACHES = {"default": DEAD_REDIS}
    assert _me(api_client, token.key, token.user_id) == 200
    assert _me(api_client, token.key, token.user_id) == 200
