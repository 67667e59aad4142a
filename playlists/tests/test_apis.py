import pytest

from catalog.tests.factories import TrackFactory, UserFactory
from playlists.models import Playlist
from playlists.tests.factories import PlaylistFactory, playlist_with_tracks, track_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def client_as(api_client):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return login


def test_listing_shows_only_your_own_playlists_with_track_counts(client_as, owner):
    mine, _ = playlist_with_tracks(2, owner=owner, name="Mine")
    PlaylistFactory(is_public=True, name="Someone else's")

    response = client_as(owner).get("/api/playlists/")

    assert response.status_code == 200
    assert response.data["count"] == 1
    assert response.data["results"][0] | {"updated_at": None} == {
        "id": mine.pk, "name": "Mine", "is_public": False, "generated": "", "n_tracks": 2,
        "updated_at": None,
    }  # fmt: skip


@pytest.mark.parametrize("query", ["limit=abc", "offset=%C2%8C", "limit=0", "offset=-1"])
def test_listing_with_a_limit_or_offset_that_is_not_a_whole_number_in_range_returns_400(
    client_as, owner, query
):
    response = client_as(owner).get(f"/api/playlists/?{query}")

    assert response.status_code == 400
    assert set(response.data) <= {"limit", "offset"}


def test_listing_pages_with_limit_and_offset(client_as, owner):
    for name in ("a", "b", "c"):
        PlaylistFactory(owner=owner, name=name)

    response = client_as(owner).get("/api/playlists/?limit=1&offset=1")

    assert response.status_code == 200
    assert (response.data["count"], len(response.data["results"])) == (3, 1)


def test_listing_needs_a_login(api_client):
    assert api_client.get("/api/playlists/").status_code in (401, 403)


def test_create_returns_201_with_the_empty_playlist(client_as, owner):
    response = client_as(owner).post(
        "/api/playlists/create/", {"name": "Road trip", "is_public": True}, format="json"
    )

    assert response.status_code == 201
    assert response.data["name"] == "Road trip"
    assert response.data["is_public"] is True
    assert response.data["owner"] == owner.username
    assert response.data["entries"] == []
    assert Playlist.objects.get().owner == owner


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_create_with_an_empty_or_too_long_name_returns_400_with_the_reason(client_as, owner, name):
    response = client_as(owner).post("/api/playlists/create/", {"name": name}, format="json")

    assert response.status_code == 400
    assert "name" in response.data
    assert not Playlist.objects.exists()


def test_detail_lists_entries_in_order_with_track_and_artist(
    client_as, owner, django_assert_max_num_queries
):
    playlist, tracks = playlist_with_tracks(5, owner=owner)
    api = client_as(owner)

    with django_assert_max_num_queries(6):
        response = api.get(f"/api/playlists/{playlist.pk}/")

    assert response.status_code == 200
    assert [e["track"]["id"] for e in response.data["entries"]] == [t.pk for t in tracks]
    assert [e["position"] for e in response.data["entries"]] == [0, 1, 2, 3, 4]
    assert response.data["entries"][0]["track"]["artist"]["name"] == tracks[0].artist.name


def test_a_public_playlist_is_readable_without_logging_in(api_client):
    playlist, _ = playlist_with_tracks(1, is_public=True)

    assert api_client.get(f"/api/playlists/{playlist.pk}/").status_code == 200


def test_someone_elses_private_playlist_is_a_404_not_a_403(client_as, api_client):
    private = PlaylistFactory(is_public=False)
    stranger = client_as(UserFactory())

    assert stranger.get(f"/api/playlists/{private.pk}/").status_code == 404
    for path, body in [
        ("update/", {"name": "Mine now"}),
        ("delete/", {}),
        ("tracks/add/", {"track_ids": [TrackFactory().pk]}),
        ("tracks/remove/", {"position": 0}),
        ("tracks/move/", {"from_position": 0, "to_position": 0}),
    ]:
        response = stranger.post(f"/api/playlists/{private.pk}/{path}", body, format="json")
        assert response.status_code == 404, path
    private.refresh_from_db()
    assert private.name != "Mine now"


def test_someone_elses_public_playlist_is_readable_but_not_writable(client_as):
    public, tracks = playlist_with_tracks(2, is_public=True)
    stranger = client_as(UserFactory())

    assert stranger.get(f"/api/playlists/{public.pk}/").status_code == 200
    response = stranger.post(
        f"/api/playlists/{public.pk}/tracks/remove/", {"position": 0}, format="json"
    )
    assert response.status_code == 403
    assert stranger.post(f"/api/playlists/{public.pk}/delete/").status_code == 403
    assert track_order(public) == [t.pk for t in tracks]


def test_update_renames_and_shares(client_as, owner):
    playlist = PlaylistFactory(owner=owner, name="Old")

    response = client_as(owner).post(
        f"/api/playlists/{playlist.pk}/update/", {"name": "New", "is_public": True}, format="json"
    )

    assert response.status_code == 200
    assert (response.data["name"], response.data["is_public"]) == ("New", True)


def test_update_with_nothing_to_change_returns_400(client_as, owner):
    playlist = PlaylistFactory(owner=owner)

    response = client_as(owner).post(f"/api/playlists/{playlist.pk}/update/", {}, format="json")

    assert response.status_code == 400


def test_delete_returns_204(client_as, owner):
    playlist = PlaylistFactory(owner=owner)

    response = client_as(owner).post(f"/api/playlists/{playlist.pk}/delete/")

    assert response.status_code == 204
    assert not Playlist.objects.exists()


def test_add_tracks_at_a_position(client_as, owner):
    playlist, tracks = playlist_with_tracks(2, owner=owner)
    new = TrackFactory()

    response = client_as(owner).post(
        f"/api/playlists/{playlist.pk}/tracks/add/",
        {"track_ids": [new.pk], "position": 1},
        format="json",
    )

    assert response.status_code == 200
    assert [e["track"]["id"] for e in response.data["entries"]] == [
        tracks[0].pk,
        new.pk,
        tracks[1].pk,
    ]


def test_add_unknown_track_ids_returns_400_naming_them(client_as, owner):
    playlist = PlaylistFactory(owner=owner)

    response = client_as(owner).post(
        f"/api/playlists/{playlist.pk}/tracks/add/", {"track_ids": [424242]}, format="json"
    )

    assert response.status_code == 400
    assert "424242" in str(response.data["track_ids"])


@pytest.mark.parametrize("body", [{"track_ids": []}, {"track_ids": ["abc"]}, {}])
def test_add_without_usable_track_ids_returns_400(client_as, owner, body):
    playlist = PlaylistFactory(owner=owner)

    response = client_as(owner).post(
        f"/api/playlists/{playlist.pk}/tracks/add/", body, format="json"
    )

    assert response.status_code == 400
    assert "track_ids" in response.data


def test_add_at_a_position_past_the_end_returns_400(client_as, owner):
    playlist, tracks = playlist_with_tracks(1, owner=owner)

    response = client_as(owner).post(
        f"/api/playlists/{playlist.pk}/tracks/add/",
        {"track_ids": [TrackFactory().pk], "position": 2},
        format="json",
    )

    assert response.status_code == 400
    assert "position" in response.data
    assert track_order(playlist) == [tracks[0].pk]


def test_remove_and_move_keep_positions_dense(client_as, owner):
    playlist, tracks = playlist_with_tracks(4, owner=owner)
    api = client_as(owner)

    removed = api.post(
        f"/api/playlists/{playlist.pk}/tracks/remove/", {"position": 1}, format="json"
    )
    moved = api.post(
        f"/api/playlists/{playlist.pk}/tracks/move/",
        {"from_position": 2, "to_position": 0},
        format="json",
    )

    assert removed.status_code == moved.status_code == 200
    assert track_order(playlist) == [tracks[3].pk, tracks[0].pk, tracks[2].pk]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("tracks/remove/", {"position": 3}, "position"),
        ("tracks/move/", {"from_position": 0, "to_position": 3}, "to_position"),
        ("tracks/move/", {"from_position": -1, "to_position": 0}, "from_position"),
    ],
)
def test_positions_out_of_range_return_400_with_the_reason(client_as, owner, path, body, field):
    playlist, tracks = playlist_with_tracks(3, owner=owner)

    response = client_as(owner).post(f"/api/playlists/{playlist.pk}/{path}", body, format="json")

    assert response.status_code == 400
    assert field in response.data
    assert track_order(playlist) == [t.pk for t in tracks]


def test_the_schema_documents_the_playlist_endpoints(api_client):
    response = api_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/playlists/{playlist_id}/tracks/move/" in paths
    assert "/api/playlists/create/" in paths
