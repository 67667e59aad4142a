"""The playlist pages: owners edit in place (htmx), public playlists are readable by link, and
someone else's private playlist does not exist as far as the site is concerned."""

import pytest
from django.test import Client

from catalog.models import TrackTag
from catalog.tests.factories import TagFactory, TrackFactory, UserFactory
from playlists.models import Playlist
from playlists.tests.factories import PlaylistFactory, playlist_with_tracks, track_order
from recommendations.track_cards import track_cards

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def owner(client):
    user = UserFactory()
    client.force_login(user)
    return user


def test_list_shows_your_playlists_with_counts(client, owner, django_assert_max_num_queries):
    for index in range(5):
        playlist_with_tracks(index, owner=owner, name=f"Mix {index}")
    PlaylistFactory(name="Not mine", is_public=True)

    with django_assert_max_num_queries(5):
        response = client.get("/playlists/")

    html = response.content.decode()
    assert "Mix 4" in html and "4 tracks" in html
    assert "Not mine" not in html


def test_create_a_playlist(client, owner):
    response = client.post("/playlists/", {"name": "Sunday", "is_public": "on"})

    playlist = Playlist.objects.get()
    assert response.status_code == 302 and response.url == f"/playlists/{playlist.pk}/"
    assert (playlist.owner, playlist.name, playlist.is_public) == (owner, "Sunday", True)


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the playlist a name."), ("x" * 201, "at most 200 characters")],
)
def test_create_explains_a_bad_name(client, owner, name, message):
    response = client.post("/playlists/", {"name": name})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Playlist.objects.exists()


def test_detail_lists_tracks_in_order_without_n_plus_one(
    client, owner, django_assert_max_num_queries
):
    playlist, tracks = playlist_with_tracks(20, owner=owner)

    with django_assert_max_num_queries(6):
        response = client.get(f"/playlists/{playlist.pk}/")

    assert [e.track_id for e in response.context["entries"]] == [t.pk for t in tracks]
    html = response.content.decode()
    assert "Continue this playlist" in html
    assert 'aria-label="Move “' in html


def test_rename_and_share(client, owner):
    playlist = PlaylistFactory(owner=owner, name="Old")

    response = client.post(
        f"/playlists/{playlist.pk}/settings/", {"name": "New", "is_public": "on"}
    )

    playlist.refresh_from_db()
    assert response.status_code == 302
    assert (playlist.name, playlist.is_public) == ("New", True)


def test_rename_to_nothing_is_refused(client, owner):
    playlist = PlaylistFactory(owner=owner, name="Keep")

    response = client.post(f"/playlists/{playlist.pk}/settings/", {"name": "  "})

    playlist.refresh_from_db()
    assert response.status_code == 400
    assert "Give the playlist a name." in response.content.decode()
    assert playlist.name == "Keep"


def test_delete_asks_first_then_deletes(client, owner):
    playlist = PlaylistFactory(owner=owner, name="Gone soon")

    confirm = client.get(f"/playlists/{playlist.pk}/delete/")
    deleted = client.post(f"/playlists/{playlist.pk}/delete/")

    assert "Delete “Gone soon”?" in confirm.content.decode()
    assert deleted.status_code == 302 and deleted.url == "/playlists/"
    assert not Playlist.objects.exists()


def test_move_up_and_down_swap_the_list_in_place(client, owner):
    playlist, tracks = playlist_with_tracks(3, owner=owner)

    up = client.post(f"/playlists/{playlist.pk}/entries/2/move/", {"direction": "up"}, **HTMX)
    down = client.post(f"/playlists/{playlist.pk}/entries/0/move/", {"direction": "down"}, **HTMX)

    assert up.status_code == down.status_code == 200
    assert 'id="playlist-entries"' in down.content.decode()
    assert "<html" not in down.content.decode()  # a fragment, not a page
    assert track_order(playlist) == [tracks[2].pk, tracks[0].pk, tracks[1].pk]


def test_moving_the_first_track_up_is_refused_with_a_message(client, owner):
    playlist, tracks = playlist_with_tracks(2, owner=owner)

    response = client.post(f"/playlists/{playlist.pk}/entries/0/move/", {"direction": "up"}, **HTMX)

    assert response.status_code == 400
    assert "out of range" in response.content.decode()
    assert track_order(playlist) == [t.pk for t in tracks]


def test_remove_a_track(client, owner):
    playlist, tracks = playlist_with_tracks(3, owner=owner)

    response = client.post(f"/playlists/{playlist.pk}/entries/1/remove/", **HTMX)

    assert response.status_code == 200
    assert "Track removed." in response.content.decode()
    assert track_order(playlist) == [tracks[0].pk, tracks[2].pk]


def test_add_to_playlist_from_a_track_card(client, owner):
    playlist = PlaylistFactory(owner=owner, name="Faves")
    track = TrackFactory()

    response = client.post("/playlists/add/", {"track": track.pk, "playlist": playlist.pk}, **HTMX)

    assert response.status_code == 200
    assert "Added to" in response.content.decode() and "Faves" in response.content.decode()
    assert track_order(playlist) == [track.pk]


def test_add_to_a_new_playlist_by_name(client, owner):
    track = TrackFactory()

    response = client.post("/playlists/add/", {"track": track.pk, "new_name": "Fresh"}, **HTMX)

    assert response.status_code == 200
    assert track_order(Playlist.objects.get(owner=owner, name="Fresh")) == [track.pk]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"track": 999_999, "new_name": "X"}, "Unknown track ids"),
        ({"track": "TRACK"}, "Choose a playlist or name a new one."),
        ({"track": "TRACK", "playlist": 999_999}, "That playlist does not exist."),
    ],
)
def test_add_to_playlist_explains_what_is_wrong(client, owner, form, message):
    track = TrackFactory()
    form = {key: track.pk if value == "TRACK" else value for key, value in form.items()}

    response = client.post("/playlists/add/", form, **HTMX)

    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize("htmx", [HTMX, {}], ids=["htmx", "plain"])
def test_adding_an_unknown_track_to_a_new_playlist_creates_no_playlist(client, owner, htmx):
    response = client.post("/playlists/add/", {"track": 999_999, "new_name": "Ghost"}, **htmx)

    assert response.status_code == (400 if htmx else 302)
    assert not Playlist.objects.filter(owner=owner).exists()


def test_continue_suggests_tracks_not_yet_in_the_playlist_and_adds_them_in_one_click(
    client, owner, django_assert_max_num_queries
):
    dream_pop = TagFactory(name="dream pop")
    tracks = TrackFactory.create_batch(6)
    for track in tracks:
        TrackTag.objects.create(track=track, tag=dream_pop)
    playlist = PlaylistFactory(owner=owner)
    client.post(f"/playlists/{playlist.pk}/tracks/", {"track": tracks[0].pk})
    track_cards(())  # taken when a web worker starts (tunedin/gunicorn.conf.py), not per request

    with django_assert_max_num_queries(10):
        suggestions = client.get(f"/playlists/{playlist.pk}/continue/", **HTMX)
    suggested = [item.track.pk for item in suggestions.context["suggestions"].items]
    added = client.post(f"/playlists/{playlist.pk}/tracks/", {"track": suggested[0]}, **HTMX)

    assert tracks[0].pk not in suggested
    assert set(suggested) == {t.pk for t in tracks[1:]}
    assert "No continuation model yet" in suggestions.content.decode()
    assert added.status_code == 200
    assert f'id="suggestion-action-{suggested[0]}"' in added.content.decode()  # "Added ✓"
    assert track_order(playlist) == [tracks[0].pk, suggested[0]]


def test_continue_without_htmx_shows_the_suggestions_on_the_page(client, owner):
    playlist, _ = playlist_with_tracks(1, owner=owner)

    response = client.get(f"/playlists/{playlist.pk}/continue/", follow=True)

    assert response.redirect_chain[-1][0].endswith("?continue=1#continuation")
    assert "Suggestions to continue" in response.content.decode()


def test_a_public_playlist_is_readable_by_anyone_with_the_link_but_not_editable(db):
    playlist, tracks = playlist_with_tracks(2, is_public=True, name="Shared")
    anonymous, stranger = Client(), Client()
    stranger.force_login(UserFactory())

    page = anonymous.get(f"/playlists/{playlist.pk}/")
    as_stranger = stranger.get(f"/playlists/{playlist.pk}/")
    edit = stranger.post(f"/playlists/{playlist.pk}/entries/0/remove/")

    assert page.status_code == as_stranger.status_code == 200
    assert "Shared" in page.content.decode()
    assert "Continue this playlist" not in as_stranger.content.decode()
    assert 'aria-label="Remove' not in as_stranger.content.decode()
    assert edit.status_code == 403
    assert track_order(playlist) == [t.pk for t in tracks]


def test_someone_elses_private_playlist_is_a_404_everywhere(db):
    playlist, tracks = playlist_with_tracks(2, name="Secret")
    stranger = Client()
    stranger.force_login(UserFactory())
    base = f"/playlists/{playlist.pk}"

    assert Client().get(f"{base}/").status_code == 404
    assert stranger.get(f"{base}/").status_code == 404
    assert stranger.get(f"{base}/continue/", **HTMX).status_code == 404
    assert stranger.get(f"{base}/delete/").status_code == 404
    for path, data in [
        ("/settings/", {"name": "Mine"}),
        ("/delete/", {}),
        ("/tracks/", {"track": tracks[0].pk}),
        ("/entries/0/remove/", {}),
        ("/entries/0/move/", {"direction": "down"}),
    ]:
        assert stranger.post(f"{base}{path}", data).status_code == 404, path
    added = stranger.post("/playlists/add/", {"track": tracks[0].pk, "playlist": playlist.pk})
    assert added.status_code == 302  # refused with a message, like a missing playlist
    playlist.refresh_from_db()
    assert playlist.name == "Secret"
    assert track_order(playlist) == [t.pk for t in tracks]


def test_editing_needs_a_csrf_token(db):
    playlist, tracks = playlist_with_tracks(2)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(playlist.owner)

    response = strict.post(f"/playlists/{playlist.pk}/entries/0/remove/")

    assert response.status_code == 403
    assert track_order(playlist) == [t.pk for t in tracks]
