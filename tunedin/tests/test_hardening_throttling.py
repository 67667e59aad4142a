"""No cheap abuse: API rates per client and per user, stricter ones for the token endpoint and for
feedback, and a login lockout on the site, the admin and the token endpoint; each a 429 with
Retry-After. The suite runs with the generous default rates; these tests set small ones."""

import pytest
from rest_framework.authtoken.models import Token

from catalog.tests.factories import TrackFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # UserFactory's


@pytest.fixture
def throttle_rates(settings):
    """Replace some of REST_FRAMEWORK's rates for one test (the Redis counts start empty)."""

    def set_rates(rates: dict[str, str | None]) -> None:
        current = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**current, **rates},
        }

    return set_rates


@pytest.fixture
def lockout_after_3(settings):
    settings.AXES_FAILURE_LIMIT = 3


def _assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) > 0


def test_the_token_endpoint_is_throttled_per_client_address(client, throttle_rates):
    throttle_rates({"api-token": "2/minute"})
    user = UserFactory()
    credentials = {"username": user.username, "password": PASSWORD}

    answers = [client.post("/api/auth/token", credentials) for _ in range(2)]
    throttled = client.post("/api/auth/token", credentials)

    assert [answer.status_code for answer in answers] == [200, 200]
    _assert_throttled(throttled)
    assert "throttled" in throttled.json()["detail"].lower()
    other_address = client.post("/api/auth/token", credentials, REMOTE_ADDR="10.0.0.7")
    assert other_address.status_code == 200


def test_feedback_is_throttled_per_user(api_client, throttle_rates):
    throttle_rates({"feedback": "2/minute"})
    track = TrackFactory()
    body = {"track_id": track.pk, "event": "play"}
    listener, other = UserFactory(), UserFactory()

    api_client.force_authenticate(listener)
    answers = [api_client.post("/api/feedback", body, format="json") for _ in range(3)]
    api_client.force_authenticate(other)
    other_answer = api_client.post("/api/feedback", body, format="json")

    assert [answer.status_code for answer in answers[:2]] == [201, 201]
    _assert_throttled(answers[2])
    assert other_answer.status_code == 201


def test_api_requests_are_throttled_per_anonymous_address_and_per_user(api_client, throttle_rates):
    throttle_rates({"anon": "2/minute", "user": "3/minute"})
    anonymous = [api_client.get("/api/schema/") for _ in range(3)]
    api_client.force_authenticate(UserFactory())
    signed_in = [api_client.get("/api/schema/") for _ in range(4)]

    assert [answer.status_code for answer in anonymous[:2]] == [200, 200]
    _assert_throttled(anonymous[2])
    assert [answer.status_code for answer in signed_in[:3]] == [200, 200, 200]
    _assert_throttled(signed_in[3])


def test_an_empty_rate_turns_a_throttle_off(client, throttle_rates):
    throttle_rates({"api-token": None})
    user = UserFactory()
    credentials = {"username": user.username, "password": PASSWORD}
    assert {client.post("/api/auth/token", credentials).status_code for _ in range(40)} == {200}


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_site_and_admin_logins_lock_a_username_out_after_failures(
    client, lockout_after_3, login_url
):
    user = UserFactory(is_staff=True)
    wrong = {"username": user.username, "password": "not-the-password"}

    failures = [client.post(login_url, wrong) for _ in range(3)]
    right_password = client.post(login_url, {"username": user.username, "password": PASSWORD})

    assert [failure.status_code for failure in failures[:2]] == [200, 200]  # the form again
    for refused in (failures[2], right_password):
        _assert_throttled(refused)
        assert "too many login attempts" in refused.content.decode().lower()
    assert "_auth_user_id" not in client.session
    other_user = UserFactory(is_staff=True)
    allowed = client.post(login_url, {"username": other_user.username, "password": PASSWORD})
    assert allowed.status_code == 302  # lockout is per username and address


def test_the_token_endpoint_locks_a_username_out_after_failures(client, lockout_after_3):
    user = UserFactory()
    wrong = {"username": user.username, "password": "not-the-password"}

    failures = [client.post("/api/auth/token", wrong) for _ in range(3)]
    right_password = client.post(
        "/api/auth/token", {"username": user.username, "password": PASSWORD}
    )

    assert [failure.status_code for failure in failures[:2]] == [400, 400]
    for refused in (failures[2], right_password):
        _assert_throttled(refused)
        assert "locked out" in refused.json()["detail"]
    assert not Token.objects.filter(user=user).exists()


def test_a_successful_login_clears_earlier_failures(client, lockout_after_3):
    user = UserFactory()
    wrong = {"username": user.username, "password": "not-the-password"}
    right = {"username": user.username, "password": PASSWORD}

    for _ in range(2):
        client.post("/api/auth/token", wrong)
    assert client.post("/api/auth/token", right).status_code == 200
    answers = [client.post("/api/auth/token", wrong).status_code for _ in range(2)]

    assert answers == [400, 400]
