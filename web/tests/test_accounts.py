"""Sign-up, onboarding, log-in/out and password change through the site's forms."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from catalog.tests.factories import ArtistFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "a-long-enough-passphrase-7"


def test_sign_up_logs_the_new_user_in_and_starts_onboarding(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "newbie", "email": "", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert response.status_code == 302
    assert response.url == "/accounts/onboarding/"
    user = User.objects.get(username="newbie")
    assert user.check_password(PASSWORD)
    assert user.onboarded_at is None
    assert client.get("/").url == "/accounts/onboarding/"


def test_sign_up_explains_what_is_wrong(client):
    UserFactory(username="taken")

    response = client.post(
        "/accounts/signup/",
        {"username": "taken", "password1": "short", "password2": "different"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "A user with that username already exists." in html
    assert "The two password fields didn’t match." in html
    assert User.objects.count() == 1


def test_sign_up_form_fields_have_labels(client):
    html = client.get("/accounts/signup/").content.decode()

    for field in ("id_username", "id_email", "id_password1", "id_password2"):
        assert f'<label for="{field}"' in html


def test_onboarding_stores_favourites_and_opens_discover(client):
    user = UserFactory(onboarded_at=None)
    shoegaze, ride = TagFactory(name="shoegaze"), ArtistFactory(name="Ride")
    client.force_login(user)

    page = client.get("/accounts/onboarding/")
    response = client.post("/accounts/onboarding/", {"tags": [shoegaze.pk], "artists": [ride.pk]})

    assert "shoegaze" in page.content.decode() and "Ride" in page.content.decode()
    assert response.status_code == 302 and response.url == "/"
    user.refresh_from_db()
    assert user.onboarded_at is not None
    assert list(user.favourite_tags.all()) == [shoegaze]
    assert list(user.favourite_artists.all()) == [ride]


def test_onboarding_needs_at_least_one_choice_unless_skipped(client):
    user = UserFactory(onboarded_at=None)
    client.force_login(user)

    empty = client.post("/accounts/onboarding/", {})
    skipped = client.post("/accounts/onboarding/", {"skip": "1"})

    assert empty.status_code == 200
    assert "Pick at least one tag or artist" in empty.content.decode()
    assert skipped.status_code == 302
    user.refresh_from_db()
    assert user.onboarded_at is not None
    assert not user.favourite_tags.exists()


def test_onboarding_refuses_unknown_choices(client):
    client.force_login(UserFactory(onboarded_at=None))

    response = client.post("/accounts/onboarding/", {"tags": [999_999]})

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_log_in_and_log_out(client):
    UserFactory(username="returning", onboarded_at=timezone.now())

    logged_in = client.post(
        "/accounts/login/", {"username": "returning", "password": "correct-horse-battery"}
    )
    logged_out = client.post("/accounts/logout/")

    assert logged_in.status_code == 302 and logged_in.url == "/"
    assert logged_out.status_code == 302
    assert "Sign up" in client.get("/").content.decode()


def test_a_wrong_password_is_refused_with_a_message(client):
    UserFactory(username="returning")

    response = client.post("/accounts/login/", {"username": "returning", "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_password_change(client):
    user = UserFactory()
    client.force_login(user)

    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": "correct-horse-battery",
            "new_password1": PASSWORD,
            "new_password2": PASSWORD,
        },
    )

    assert response.status_code == 302
    assert response.url == "/accounts/password_change/done/"
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert "Password changed" in client.get(response.url).content.decode()
