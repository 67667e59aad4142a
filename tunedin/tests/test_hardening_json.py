"""Any JSON body the API cannot parse is a 400 that says why, on every route, never a 500."""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from catalog.tests.factories import TrackFactory, UserFactory
from tunedin.parsers import MAX_JSON_DEPTH, json_depth_exceeds

pytestmark = pytest.mark.django_db

# About 2 KB: deep enough for a RecursionError in Python's json module inside a request.
DEEP = '{"username": ' + "[" * 1000 + "]" * 1000 + ', "password": "x"}'
TOO_DEEP_FOR_THE_LIMIT = (
    '{"track_id": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}"
)


def _post_json(client, url: str, body: str | bytes, content_type: str = "application/json"):
    client.raise_request_exception = False  # a 500 is an answer to assert on, not an error
    return client.generic("POST", url, body, content_type=content_type)  # the bytes as they are


def test_deeply_nested_json_to_the_anonymous_token_endpoint_is_a_400(client):
    response = _post_json(client, "/api/auth/token", DEEP)
    assert response.status_code == 400
    assert "nested deeper than" in response.json()["detail"]


def test_deeply_nested_json_to_feedback_is_a_400_and_stores_nothing(client):
    from feedback.models import Interaction

    client.force_login(UserFactory())
    for body in (DEEP, TOO_DEEP_FOR_THE_LIMIT):
        response = _post_json(client, "/api/feedback", body)
        assert response.status_code == 400, body[:40]
        assert "JSON parse error" in response.json()["detail"]
    assert not Interaction.objects.exists()


def test_json_that_is_not_utf8_or_holds_a_5000_digit_number_is_a_400(client):
    client.force_login(UserFactory())
    not_utf8 = _post_json(client, "/api/feedback", b'{"event": "\xff\xfe"}')
    huge_number = _post_json(client, "/api/feedback", '{"track_id": ' + "9" * 5000 + "}")
    for response in (not_utf8, huge_number):
        assert response.status_code == 400
        assert response.json()["detail"].startswith("JSON parse error")


def test_every_json_operation_answers_a_too_deep_body_below_500(client):
    """Each operation of the OpenAPI schema that takes a JSON body, sent the nested body as an
    authenticated user: a view that lists DRF's own JSONParser would answer 500."""
    user = UserFactory()
    TrackFactory()
    client.force_login(user)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    sent = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            url = re.sub(r"\{[^}]+\}", "1", path.replace("{user_id}", str(user.pk)))
            client.raise_request_exception = False
            response = client.generic(method.upper(), url, DEEP, content_type="application/json")
            sent.append(f"{method.upper()} {path}")
            assert response.status_code < 500, (method, path, response.content[:200])
    assert "POST /api/feedback" in sent and "POST /api/auth/token" in sent


def test_the_depth_check_walks_without_recursing():
    nested = []
    for _ in range(100_000):
        nested = [nested]
    assert json_depth_exceeds({"a": nested}, MAX_JSON_DEPTH)
    assert not json_depth_exceeds([{"track_id": 1, "context": {"tags": [1, 2]}}], MAX_JSON_DEPTH)
