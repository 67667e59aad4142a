"""Generated playlists (Weekly Exploration, Daily Jams): replaced in bulk by the builder,
read-only for their owner, and saved as a playlist of one's own."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError

from catalog.tests.factories import TrackFactory, UserFactory
from playlists.models import Playlist
from playlists.selectors import playlist_for_writing, playlists_owned_by
from playlists.services import generated_playlists_replace, playlist_save_copy
from playlists.tests.factories import PlaylistFactory, playlist_with_tracks, track_order

pytestmark = pytest.mark.django_db

WEEKLY, JAMS = Playlist.Generated.WEEKLY_EXPLORATION, Playlist.Generated.DAILY_JAMS


def test_replacing_creates_each_playlist_once_and_then_replaces_its_tracks():
    first, second = UserFactory(), UserFactory()
    tracks = TrackFactory.create_batch(6)
    written = generated_playlists_replace(
        track_ids={
            (first.pk, WEEKLY): [tracks[0].pk, tracks[1].pk],
            (first.pk, JAMS): [tracks[2].pk],
            (second.pk, WEEKLY): [tracks[3].pk],
        }
    )
    assert written == 4
    weekly = Playlist.objects.get(owner=first, generated=WEEKLY)
    assert weekly.name == "Weekly Exploration" and not weekly.is_public
    assert track_order(weekly) == [tracks[0].pk, tracks[1].pk]

    generated_playlists_replace(track_ids={(first.pk, WEEKLY): [tracks[5].pk, tracks[4].pk]})

    again = Playlist.objects.get(owner=first, generated=WEEKLY)
    assert again.pk == weekly.pk and again.updated_at > weekly.updated_at
    assert track_order(again) == [tracks[5].pk, tracks[4].pk]
    assert track_order(Playlist.objects.get(owner=first, generated=JAMS)) == [tracks[2].pk]
    assert Playlist.objects.count() == 3


def test_an_unknown_generated_playlist_is_refused_and_nothing_is_written():
    user, track = UserFactory(), TrackFactory()
    with pytest.raises(ValidationError, match="Unknown generated playlist"):
        generated_playlists_replace(
            track_ids={(user.pk, WEEKLY): [track.pk], (user.pk, "monthly"): [track.pk]}
        )
    assert not Playlist.objects.exists()


def test_the_database_allows_one_playlist_of_each_kind_per_owner():
    user = UserFactory()
    PlaylistFactory(owner=user, generated=WEEKLY)
    PlaylistFactory(owner=user)
    PlaylistFactory(owner=user)  # any number of one's own
    with pytest.raises(IntegrityError):
        PlaylistFactory(owner=user, generated=WEEKLY)


def test_a_generated_playlist_cannot_be_written_and_is_kept_out_of_ones_own():
    user, track = UserFactory(), TrackFactory()
    generated_playlists_replace(track_ids={(user.pk, WEEKLY): [track.pk]})
    generated = Playlist.objects.get(owner=user)
    with pytest.raises(PermissionDenied, match="save a copy"):
        playlist_for_writing(playlist_id=generated.pk, user=user)
    assert list(playlists_owned_by(user=user)) == []
    assert list(playlists_owned_by(user=user, include_generated=True)) == [generated]


def test_saving_a_copy_keeps_the_tracks_in_a_private_playlist_of_ones_own():
    user = UserFactory()
    tracks = TrackFactory.create_batch(3)
    generated_playlists_replace(track_ids={(user.pk, JAMS): [t.pk for t in reversed(tracks)]})
    generated = Playlist.objects.get(owner=user)

    copy = playlist_save_copy(playlist=generated, owner=user)

    assert copy.pk != generated.pk and copy.generated == "" and not copy.is_public
    assert copy.name.startswith("Daily Jams · ")
    assert track_order(copy) == [t.pk for t in reversed(tracks)]
    assert playlist_for_writing(playlist_id=copy.pk, user=user) == copy
    named = playlist_save_copy(playlist=generated, owner=user, name="  Keepers ")
    assert named.name == "Keepers"
    with pytest.raises(ValidationError):
        playlist_save_copy(playlist=generated, owner=user, name=" ")


# ----------------------------------------------------------------------------- API


@pytest.fixture
def listener(api_client):
    user = UserFactory()
    api_client.force_authenticate(user)
    return user


def test_the_api_lists_generated_playlists_and_refuses_changes_to_them(api_client, listener):
    track = TrackFactory()
    generated_playlists_replace(track_ids={(listener.pk, WEEKLY): [track.pk]})
    generated = Playlist.objects.get(owner=listener)
    base = f"/api/playlists/{generated.pk}"

    listing = api_client.get("/api/playlists/").json()["results"]
    detail = api_client.get(f"{base}/").json()

    assert [(p["name"], p["generated"]) for p in listing] == [("Weekly Exploration", WEEKLY)]
    assert detail["generated"] == WEEKLY
    for path, body in [
        ("update/", {"name": "Mine now"}),
        ("delete/", None),
        ("tracks/add/", {"track_ids": [track.pk]}),
        ("tracks/remove/", {"position": 0}),
    ]:
        response = api_client.post(f"{base}/{path}", body, format="json")
        assert response.status_code == 403, path
        assert "save a copy" in response.json()["detail"]
    assert track_order(generated) == [track.pk]


def test_saving_through_the_api_returns_the_new_playlist(api_client, listener):
    mine, tracks = playlist_with_tracks(2, owner=UserFactory(), is_public=True, name="Shared")

    response = api_client.post(f"/api/playlists/{mine.pk}/save/", {}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["owner"] == listener.username and body["name"] == "Shared"
    assert [e["track"]["id"] for e in body["entries"]] == [t.pk for t in tracks]
    named = api_client.post(f"/api/playlists/{mine.pk}/save/", {"name": "Two"}, format="json")
    assert named.status_code == 201 and named.json()["name"] == "Two"


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "x" * 201}, {"name": 5}])
def test_saving_with_a_bad_name_is_a_400(api_client, listener, body):
    playlist, _ = playlist_with_tracks(1, owner=listener)
    response = api_client.post(f"/api/playlists/{playlist.pk}/save/", body, format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert Playlist.objects.count() == 1


def test_someone_elses_private_playlist_cannot_be_saved(api_client, listener):
    secret, _ = playlist_with_tracks(1, owner=UserFactory())
    assert (
        api_client.post(f"/api/playlists/{secret.pk}/save/", {}, format="json").status_code == 404
    )
    api_client.force_authenticate(None)
    assert (
        api_client.post(f"/api/playlists/{secret.pk}/save/", {}, format="json").status_code == 401
    )
