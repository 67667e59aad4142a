"""The Django admin: every list and edit page loads with a bounded number of queries, the
interaction log is read-only, and a model version can be activated from its list."""

import pytest
from django.contrib.auth import get_user_model

from catalog.models import ArtistTag, TrackTag
from catalog.tests.factories import (
    ArtistFactory,
    TagFactory,
    TrackFactory,
    UserFactory,
)
from feedback.tests.factories import InteractionFactory
from mltasks.models import ModelVersion
from playlists.tests.factories import playlist_with_tracks

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    tag = TagFactory(name="ambient")
    artist = ArtistFactory(name="Eno")
    ArtistTag.objects.create(artist=artist, tag=tag)
    tracks = TrackFactory.create_batch(20, artist=artist)
    for track in tracks:
        TrackTag.objects.create(track=track, tag=tag)
        InteractionFactory(track=track, kind="like")
    playlist, _ = playlist_with_tracks(5)
    version = ModelVersion.objects.create(
        kind="recommender", algorithm="lightgcn", status="ready", metrics={"nDCG@20": 0.1}
    )
    return {
        "tag": tag, "artist": artist, "track": tracks[0], "playlist": playlist,
        "version": version, "interaction": tracks[0].interactions.get(), "user": playlist.owner,
    }  # fmt: skip


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("catalog/tag", "tag"),
        ("catalog/artist", "artist"),
        ("catalog/track", "track"),
        ("playlists/playlist", "playlist"),
        ("mltasks/modelversion", "version"),
        ("feedback/interaction", "interaction"),
        ("accounts/user", "user"),
    ],
)
def test_list_search_and_change_pages_load_without_n_plus_one(
    admin_client, world, model, key, django_assert_max_num_queries
):
    with django_assert_max_num_queries(14):
        listing = admin_client.get(f"/admin/{model}/")
    searched = admin_client.get(f"/admin/{model}/", {"q": "a"})
    change = admin_client.get(f"/admin/{model}/{world[key].pk}/change/")

    assert listing.status_code == searched.status_code == change.status_code == 200


def test_interactions_are_read_only(admin_client, world):
    interaction = world["interaction"]

    assert admin_client.get("/admin/feedback/interaction/add/").status_code == 403
    response = admin_client.post(
        f"/admin/feedback/interaction/{interaction.pk}/change/", {"kind": "skip"}
    )
    assert response.status_code == 403
    interaction.refresh_from_db()
    assert interaction.kind == "like"


def test_interactions_filter_by_kind_and_date(admin_client, world):
    response = admin_client.get(
        "/admin/feedback/interaction/",
        {"kind__exact": "skip", "occurred_at__gte": "2000-01-01T00:00:00+00:00"},
    )

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 0


def test_activate_action_makes_a_version_serve(admin_client, world):
    version = world["version"]

    admin_client.post(
        "/admin/mltasks/modelversion/",
        {"action": "activate_version", "_selected_action": [version.pk]},
    )

    version.refresh_from_db()
    assert version.status == "active"


def test_the_user_admin_shows_onboarding_favourites(admin_client, world):
    user = get_user_model().objects.get(pk=world["user"].pk)
    user.favourite_tags.add(world["tag"])

    response = admin_client.get(f"/admin/accounts/user/{user.pk}/change/")

    assert "Favourite tags" in response.content.decode()
