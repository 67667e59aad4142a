"""API tokens: obtained with a password, revoked by their owner or by a new password, and a
revoked token stops working at once even though token lookups are cached."""

import pytest
from rest_framework.authtoken.models import Token

from catalog.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # UserFactory's
NEW_PASSWORD = "an-entirely-new-passphrase-9"


@pytest.fixture
def user():
    return UserFactory()


def _obtain(api_client, user) -> str:
    response = api_client.post("/api/auth/token", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _status_with(api_client, token_key: str, user) -> int:
    """An authenticated call (its token lookup is cached after the first one)."""
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")
    return api_client.get(f"/api/rec/users/{user.pk}/similar").status_code


def test_the_token_endpoint_answers_the_same_token_until_it_is_revoked(api_client, user):
    key = _obtain(api_client, user)
    assert _obtain(api_client, user) == key
    assert _status_with(api_client, key, user) == 200


def test_revoking_deletes_the_callers_token_and_it_stops_working_at_once(api_client, user):
    key = _obtain(api_client, user)
    assert _status_with(api_client, key, user) == 200  # now cached

    response = api_client.post("/api/auth/token/revoke")

    assert response.status_code == 204
    assert not Token.objects.filter(user=user).exists()
    assert _status_with(api_client, key, user) == 401
    api_client.credentials()
    assert _obtain(api_client, user) != key  # a new password login gets a new token


def test_revoking_needs_authentication_and_touches_only_the_callers_token(api_client, user):
    other_key = Token.objects.create(user=UserFactory()).key
    assert api_client.post("/api/auth/token/revoke").status_code == 401
    api_client.force_authenticate(user)  # no token of its own: nothing to delete
    assert api_client.post("/api/auth/token/revoke").status_code == 204
    assert Token.objects.filter(key=other_key).exists()


def test_a_new_password_deletes_the_users_tokens_at_once(api_client, user):
    key = _obtain(api_client, user)
    assert _status_with(api_client, key, user) == 200  # now cached

    user.set_password(NEW_PASSWORD)
    user.save()

    assert not Token.objects.filter(user=user).exists()
    assert _status_with(api_client, key, user) == 401


def test_changing_the_password_on_the_site_deletes_the_users_tokens(client, api_client, user):
    key = _obtain(api_client, user)
    client.force_login(user)

    response = client.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert _status_with(api_client, key, user) == 401


def test_other_saves_of_the_user_keep_the_tokens(api_client, user):
    key = _obtain(api_client, user)
    user.first_name = "Renamed"
    user.save()
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    assert Token.objects.filter(key=key).exists()


def test_rehashing_the_same_password_at_login_keeps_the_tokens(api_client, user, settings):
    key = Token.objects.create(user=user).key
    old_hash = user.password  # MD5 (conftest): the next login upgrades it to PBKDF2
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]

    assert _obtain(api_client, user) == key

    user.refresh_from_db()
    assert user.password != old_hash and user.password.startswith("pbkdf2_")
    assert Token.objects.filter(key=key).exists()


def test_the_schema_documents_obtaining_and_revoking_tokens(api_client):
    paths = api_client.get("/api/schema/", {"format": "json"}).json()["paths"]
    revoke = paths["/api/auth/token/revoke"]["post"]
    assert {"204", "401", "429"} <= set(revoke["responses"])
    assert "requestBody" not in revoke
    obtain = paths["/api/auth/token"]["post"]
    assert {"200", "400", "429"} <= set(obtain["responses"])
