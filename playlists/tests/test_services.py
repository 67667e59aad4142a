import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from catalog.tests.factories import TrackFactory, UserFactory
from playlists.models import Playlist, PlaylistEntry
from playlists.services import (
    playlist_add_tracks,
    playlist_create,
    playlist_create_with_tracks,
    playlist_delete,
    playlist_move_entry,
    playlist_remove_entry,
    playlist_rename,
    playlist_set_visibility,
)
from playlists.tests.factories import PlaylistFactory, playlist_with_tracks, track_order

pytestmark = pytest.mark.django_db


def ids(tracks):
    return [track.pk for track in tracks]


def test_create_strips_the_name_and_is_private_by_default():
    owner = UserFactory()

    playlist = playlist_create(owner=owner, name="  Night drive  ")

    assert playlist.name == "Night drive"
    assert playlist.owner == owner
    assert playlist.is_public is False


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_create_rejects_an_empty_or_too_long_name(name):
    with pytest.raises(ValidationError) as error:
        playlist_create(owner=UserFactory(), name=name)

    assert "name" in error.value.message_dict
    assert not Playlist.objects.exists()


def test_a_name_of_200_characters_is_accepted():
    assert playlist_create(owner=UserFactory(), name="x" * 200).name == "x" * 200


def test_create_with_tracks_makes_the_playlist_with_its_tracks_in_order():
    tracks = TrackFactory.create_batch(2)

    playlist = playlist_create_with_tracks(
        owner=UserFactory(), name="Fresh", track_ids=ids(tracks[::-1])
    )

    assert (playlist.name, track_order(playlist)) == ("Fresh", ids(tracks[::-1]))


@pytest.mark.parametrize(
    ("name", "track_ids", "field"),
    [("Ghost", [999_999], "track_ids"), ("Empty", [], "track_ids"), ("   ", ["TRACK"], "name")],
)
def test_create_with_tracks_leaves_nothing_when_anything_is_wrong(name, track_ids, field):
    track = TrackFactory()
    track_ids = [track.pk if value == "TRACK" else value for value in track_ids]

    with pytest.raises(ValidationError) as error:
        playlist_create_with_tracks(owner=UserFactory(), name=name, track_ids=track_ids)

    assert field in error.value.message_dict
    assert not Playlist.objects.exists() and not PlaylistEntry.objects.exists()


def test_rename_and_visibility_change_touch_updated_at():
    playlist = PlaylistFactory(name="Old")
    before = playlist.updated_at

    playlist_rename(playlist=playlist, name="New")
    playlist_set_visibility(playlist=playlist, is_public=True)

    playlist.refresh_from_db()
    assert (playlist.name, playlist.is_public) == ("New", True)
    assert playlist.updated_at > before


def test_rename_rejects_an_empty_name_and_keeps_the_old_one():
    playlist = PlaylistFactory(name="Keep me")

    with pytest.raises(ValidationError):
        playlist_rename(playlist=playlist, name=" ")

    playlist.refresh_from_db()
    assert playlist.name == "Keep me"


def test_delete_removes_the_playlist_and_its_entries():
    playlist, _ = playlist_with_tracks(3)

    playlist_delete(playlist=playlist)

    assert not Playlist.objects.exists()
    assert not PlaylistEntry.objects.exists()


def test_add_appends_tracks_in_the_given_order():
    playlist, tracks = playlist_with_tracks(2)
    new = TrackFactory.create_batch(2)

    playlist_add_tracks(playlist=playlist, track_ids=[new[1].pk, new[0].pk])

    assert track_order(playlist) == ids(tracks) + [new[1].pk, new[0].pk]


def test_add_at_a_position_shifts_the_later_entries_down():
    playlist, tracks = playlist_with_tracks(3)
    new = TrackFactory.create_batch(2)

    playlist_add_tracks(playlist=playlist, track_ids=ids(new), position=1)

    assert track_order(playlist) == [tracks[0].pk, *ids(new), tracks[1].pk, tracks[2].pk]


def test_add_at_position_zero_and_at_the_end_both_work():
    playlist, tracks = playlist_with_tracks(2)
    first, last = TrackFactory(), TrackFactory()

    playlist_add_tracks(playlist=playlist, track_ids=[first.pk], position=0)
    playlist_add_tracks(playlist=playlist, track_ids=[last.pk], position=3)

    assert track_order(playlist) == [first.pk, *ids(tracks), last.pk]


def test_add_to_an_empty_playlist_and_the_same_track_twice():
    playlist = PlaylistFactory()
    track = TrackFactory()

    playlist_add_tracks(playlist=playlist, track_ids=[track.pk, track.pk])

    assert track_order(playlist) == [track.pk, track.pk]


def test_add_unknown_track_ids_is_rejected_with_the_ids_and_adds_nothing():
    playlist, tracks = playlist_with_tracks(1)

    with pytest.raises(ValidationError) as error:
        playlist_add_tracks(playlist=playlist, track_ids=[tracks[0].pk, 999_999])

    assert "999999" in error.value.message_dict["track_ids"][0]
    assert track_order(playlist) == ids(tracks)


@pytest.mark.parametrize("position", [-1, 3])
def test_add_at_a_position_past_the_end_is_rejected(position):
    playlist, tracks = playlist_with_tracks(2)

    with pytest.raises(ValidationError) as error:
        playlist_add_tracks(playlist=playlist, track_ids=[TrackFactory().pk], position=position)

    assert "position" in error.value.message_dict
    assert track_order(playlist) == ids(tracks)


def test_add_nothing_is_rejected():
    with pytest.raises(ValidationError):
        playlist_add_tracks(playlist=PlaylistFactory(), track_ids=[])


@pytest.mark.parametrize(("position", "expected"), [(0, [1, 2, 3]), (2, [0, 1, 3]), (3, [0, 1, 2])])
def test_remove_closes_the_gap(position, expected):
    playlist, tracks = playlist_with_tracks(4)

    playlist_remove_entry(playlist=playlist, position=position)

    assert track_order(playlist) == [tracks[i].pk for i in expected]


def test_remove_out_of_range_is_rejected():
    playlist, tracks = playlist_with_tracks(2)

    with pytest.raises(ValidationError):
        playlist_remove_entry(playlist=playlist, position=2)

    assert track_order(playlist) == ids(tracks)


@pytest.mark.parametrize(
    ("from_position", "to_position", "expected"),
    [
        (0, 3, [1, 2, 3, 0]),
        (3, 0, [3, 0, 1, 2]),
        (1, 2, [0, 2, 1, 3]),
        (2, 1, [0, 2, 1, 3]),
        (2, 2, [0, 1, 2, 3]),
    ],
)
def test_move_shifts_the_entries_between(from_position, to_position, expected):
    playlist, tracks = playlist_with_tracks(4)

    playlist_move_entry(playlist=playlist, from_position=from_position, to_position=to_position)

    assert track_order(playlist) == [tracks[i].pk for i in expected]


@pytest.mark.parametrize(("from_position", "to_position"), [(-1, 0), (0, 3), (3, 0)])
def test_move_out_of_range_is_rejected(from_position, to_position):
    playlist, tracks = playlist_with_tracks(3)

    with pytest.raises(ValidationError):
        playlist_move_entry(playlist=playlist, from_position=from_position, to_position=to_position)

    assert track_order(playlist) == ids(tracks)


def test_the_database_itself_refuses_two_entries_at_one_position():
    playlist, tracks = playlist_with_tracks(1)

    with pytest.raises(IntegrityError), transaction.atomic():
        PlaylistEntry.objects.create(playlist=playlist, track=tracks[0], position=0)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
