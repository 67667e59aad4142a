"""The per-process snapshot of track titles, artists and tags used to render lists."""

import pytest

from catalog.models import TrackTag
from catalog.tests.factories import TagFactory, TrackFactory
from recommendations.track_cards import track_cards

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


def test_the_snapshot_is_taken_again_once_older_than_the_cache_ttl(settings):
    track = TrackFactory(title="Old name")
    assert track_cards([track.pk])[track.pk].title == "Old name"
    track.title = "New name"
    track.save()
    assert track_cards([track.pk])[track.pk].title == "Old name"  # as stale as a cached page
    settings.CACHE_TTL_SECONDS = 0
    assert track_cards([track.pk])[track.pk].title == "New name"
