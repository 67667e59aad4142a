"""The per-process snapshot of track titles, artists and tags used to render lists."""

import threading

import pytest
from django.db import OperationalError

from catalog.models import TrackTag
from catalog.tests.factories import TagFactory, TrackFactory
from recommendations import track_cards as track_cards_module
from recommendations.track_cards import forget, track_cards, wait_for_refresh

pytestmark = pytest.mark.django_db


def test_cards_carry_title_artist_and_sorted_tag_names(django_assert_num_queries):
    track = TrackFactory(title="Blue Room")
    for name in ("trip-hop", "ambient"):
        TrackTag.objects.create(track=track, tag=TagFactory(name=name))
    untagged = TrackFactory()

    cards = track_cards([track.pk, untagged.pk, 987654])

    assert cards[track.pk].title == "Blue Room"
    assert cards[track.pk].artist == track.artist.name
    assert cards[track.pk].tags == ("ambient", "trip-hop")
    assert cards[untagged.pk].tags == ()
    assert 987654 not in cards
    with django_assert_num_queries(0):  # from the snapshot now
        assert track_cards([track.pk])[track.pk].title == "Blue Room"


def test_a_track_added_after_the_snapshot_is_read_from_the_database():
    track_cards([TrackFactory().pk])
    newcomer = TrackFactory(title="Fresh")
    assert track_cards([newcomer.pk])[newcomer.pk].title == "Fresh"


@pytest.mark.django_db(transaction=True)  # the refresh thread reads committed rows only
def test_an_expired_snapshot_is_taken_again_in_the_background_while_the_old_one_serves(
    settings, django_assert_num_queries
):
    track = TrackFactory(title="Old name")
    assert track_cards([track.pk])[track.pk].title == "Old name"
    track.title = "New name"
    track.save()
    assert track_cards([track.pk])[track.pk].title == "Old name"  # as stale as a cached page
    settings.CACHE_TTL_SECONDS = 0
    with django_assert_num_queries(0):  # the request that finds it expired does not pay
        assert track_cards([track.pk])[track.pk].title == "Old name"
    wait_for_refresh()
    settings.CACHE_TTL_SECONDS = 300
    with django_assert_num_queries(0):
        assert track_cards([track.pk])[track.pk].title == "New name"


@pytest.mark.django_db(transaction=True)
def test_a_refresh_that_fails_keeps_the_previous_snapshot(settings, monkeypatch):
    track = TrackFactory(title="Kept")
    assert track_cards([track.pk])[track.pk].title == "Kept"
    settings.CACHE_TTL_SECONDS = 0

    def database_away(track_ids):
        raise OperationalError("the database is away")

    monkeypatch.setattr(track_cards_module, "_read", database_away)
    track_cards([track.pk])
    wait_for_refresh()
    settings.CACHE_TTL_SECONDS = 300
    assert track_cards([track.pk])[track.pk].title == "Kept"  # still read from no database


@pytest.mark.django_db(transaction=True)
def test_a_refresh_started_before_forget_does_not_install_its_snapshot(settings, monkeypatch):
    first = TrackFactory(title="First")
    track_cards([first.pk])
    settings.CACHE_TTL_SECONDS = 0
    release = threading.Event()
    read = track_cards_module._read

    def slow_read(track_ids):
        release.wait(10)
        return read(track_ids)

    monkeypatch.setattr(track_cards_module, "_read", slow_read)
    track_cards([first.pk])  # starts the refresh, which waits
    refresher = track_cards_module._refresher
    forget()
    monkeypatch.setattr(track_cards_module, "_read", read)
    settings.CACHE_TTL_SECONDS = 300
    second = TrackFactory(title="Second")
    assert set(track_cards([first.pk])) == {first.pk}  # a new first snapshot, taken now
    release.set()
    refresher.join(10)
    assert not refresher.is_alive()
    assert second.pk in track_cards_module._snapshot  # the new one, not the stale refresh's
