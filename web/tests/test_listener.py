"""Listener control on the site: "don't recommend" from Discover cards and from track and
artist pages (htmx), the list of marks, the artist cap on Discover, and generated playlists on
Discover and in the playlists pages."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from html import unescape
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone

from catalog.models import ArtistTag, TrackTag
from catalog.tests.factories import ArtistFactory, TagFactory, TrackFactory, UserFactory
from feedback.models import DoNotRecommend
from feedback.services import do_not_recommend_mark
from playlists.models import Playlist
from playlists.services import generated_playlists_replace
from playlists.tests.factories import playlist_with_tracks, track_order

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
WEEKLY = Playlist.Generated.WEEKLY_EXPLORATION


@pytest.fixture
def catalog():
    """One tag, four artists of 6 tracks each; the first artist's tracks are the most popular."""
    shoegaze = TagFactory(name="shoegaze")
    artists = [ArtistFactory(name=name) for name in ("Slowdive", "Ride", "Lush", "Cocteau")]
    tracks = []
    for index in range(24):
        artist = artists[index // 6]
        track = TrackFactory(title=f"Song {index:02d}", artist=artist, popularity=100 - index)
        TrackTag.objects.create(track=track, tag=shoegaze, weight=1.0)
        tracks.append(track)
    for artist in artists:
        ArtistTag.objects.create(artist=artist, tag=shoegaze)
    return SimpleNamespace(tracks=tracks, artists=artists, tag=shoegaze)


@pytest.fixture
def listener(client):
    user = UserFactory(onboarded_at=timezone.now())
    client.force_login(user)
    return user


def card_ids(response) -> list[int]:
    return [item.track.pk for item in response.context["recommendations"].items]


def test_discover_shows_at_most_two_cards_per_artist_before_repeating_one(
    client, listener, catalog
):
    response = client.get("/")
    tracks = {t.pk: t for t in catalog.tracks}
    artists = [tracks[t].artist_id for t in card_ids(response)]
    assert len(artists) == 12
    assert max(Counter(artists[:8]).values()) == 2  # 4 artists, 2 each, then the rest
    assert "Not for me" in response.content.decode()


def test_not_for_me_on_a_card_replaces_it_and_the_artists_other_cards(
    client, listener, catalog, django_capture_on_commit_callbacks
):
    shown = card_ids(client.get("/"))
    slowdive = catalog.artists[0]
    card = shown[0]
    others = [t for t in shown[1:] if t in {x.pk for x in catalog.tracks[:6]}]
    assert others  # the first artist has a second card on the page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/not-recommended/add/",
            {"artist": slowdive.pk, "card": card, "shown": shown},
            **HTMX,
        )

    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "We won't recommend Slowdive to you." in html
    assert f'hx-swap-oob="outerHTML:#card-{others[0]}"' in html  # its other card goes too
    replacements = [c["item"].track for c in response.context["cards"] if c["item"]]
    assert len(replacements) == 1 + len(others)
    assert not {t.pk for t in replacements} & set(shown)
    assert all(t.artist_id != slowdive.pk for t in replacements)
    assert DoNotRecommend.objects.get(user=listener).artist_id == slowdive.pk
    again = card_ids(client.get("/"))
    assert not {t.pk for t in catalog.tracks[:6]} & set(again)


def test_not_for_me_on_a_card_for_one_track_until_a_day(
    client, listener, catalog, django_capture_on_commit_callbacks
):
    shown = card_ids(client.get("/"))
    day = timezone.localdate() + timedelta(days=10)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/not-recommended/add/",
            {"track": shown[0], "card": shown[0], "shown": shown, "until": day.isoformat()},
            **HTMX,
        )
    assert response.status_code == 200
    mark = DoNotRecommend.objects.get(user=listener)
    assert mark.track_id == shown[0] and timezone.localdate(mark.until) == day
    assert "until" in response.content.decode()
    assert shown[0] not in card_ids(client.get("/"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [({}, "Choose a track or an artist."),
     ({"track": "TRACK", "artist": "ARTIST"}, "Choose a track or an artist."),
     ({"track": "987654"}, "That track or artist does not exist."),
     ({"track": "TRACK", "until": "2001-01-01"}, "Choose a day after today"),
     ({"track": "TRACK", "until": "soon"}, "Enter a valid date."),
     ({"track": "x"}, "Enter a whole number."),
     ({"track": "TRACK", "shown": "²"}, "is not a track id.")],
)  # fmt: skip
def test_a_bad_mark_is_a_400_with_the_reason_and_stores_nothing(
    client, listener, catalog, data, reason
):
    names = {"TRACK": catalog.tracks[0].pk, "ARTIST": catalog.artists[0].pk}
    data = {key: names.get(value, value) for key, value in data.items()}
    response = client.post("/not-recommended/add/", data, **HTMX)
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not DoNotRecommend.objects.exists()


def test_marking_needs_a_login_a_post_and_a_csrf_token(catalog):
    track = catalog.tracks[0]
    assert Client().post("/not-recommended/add/", {"track": track.pk}).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory())
    assert strict.get("/not-recommended/add/").status_code == 405
    assert strict.post("/not-recommended/add/", {"track": track.pk}).status_code == 403
    assert not DoNotRecommend.objects.exists()


def test_the_track_page_marks_the_track_or_its_artist_in_place(
    client, listener, catalog, django_capture_on_commit_callbacks
):
    track = catalog.tracks[0]
    page = unescape(client.get(f"/tracks/{track.pk}/").content.decode())
    assert "Don't recommend this track" in page and "Don't recommend Slowdive" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/not-recommended/add/", {"track": track.pk, "page_track": track.pk}, **HTMX
        )

    html = unescape(response.content.decode())
    assert response.status_code == 200
    assert "Recommend this track again" in html and "Don't recommend Slowdive" in html
    assert "Don't recommend this track" not in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/not-recommended/remove/", {"track": track.pk, "page_track": track.pk}, **HTMX
        )
    assert "can be recommended to you again" in response.content.decode()
    assert not DoNotRecommend.objects.exists()


def test_the_artist_page_marks_the_artist_without_htmx_too(client, listener, catalog):
    artist = catalog.artists[1]
    page = client.get(f"/artists/{artist.pk}/")
    assert "Don't recommend Ride" in unescape(page.content.decode())

    response = client.post(
        "/not-recommended/add/", {"artist": artist.pk, "next": f"/artists/{artist.pk}/"}
    )

    assert response.status_code == 302 and response.url == f"/artists/{artist.pk}/"
    after = unescape(client.get(response.url).content.decode())
    assert "We won't recommend Ride to you." in after
    assert "Recommend Ride again" in after


def test_similar_tracks_on_a_track_page_leave_out_marked_artists(
    client, listener, catalog, django_capture_on_commit_callbacks
):
    track = catalog.tracks[0]
    before = [item.track.artist_id for item in client.get(f"/tracks/{track.pk}/").context[
        "similar"]]  # fmt: skip
    assert catalog.artists[1].pk in before
    with django_capture_on_commit_callbacks(execute=True):
        do_not_recommend_mark(user=listener, artist_id=catalog.artists[1].pk)
    after = client.get(f"/tracks/{track.pk}/").context["similar"]
    assert len(after) == len(before)
    assert catalog.artists[1].pk not in {item.track.artist_id for item in after}


def test_the_not_recommended_page_lists_marks_and_lifts_them(client, listener, catalog):
    do_not_recommend_mark(user=listener, artist_id=catalog.artists[2].pk)
    do_not_recommend_mark(
        user=listener, track_id=catalog.tracks[0].pk, until=timezone.now() + timedelta(days=3)
    )
    DoNotRecommend.objects.create(
        user=listener, track=catalog.tracks[1], until=timezone.now() - timedelta(days=1)
    )
    do_not_recommend_mark(user=UserFactory(), track_id=catalog.tracks[2].pk)

    html = client.get("/not-recommended/").content.decode()

    assert "Lush" in html and "every track" in html
    assert "Song 00" in html and "until" in html
    assert "Song 01" in html and "lapsed" in html
    assert "Song 02" not in html  # someone else's
    response = client.post(
        "/not-recommended/remove/", {"artist": catalog.artists[2].pk, "next": "/not-recommended/"}
    )
    assert response.status_code == 302
    assert not DoNotRecommend.objects.filter(artist=catalog.artists[2]).exists()


# ----------------------------------------------------------------------------- generated playlists


def test_generated_playlists_show_on_discover_and_in_the_playlists_list(client, listener, catalog):
    generated_playlists_replace(
        track_ids={(listener.pk, WEEKLY): [t.pk for t in catalog.tracks[:5]]}
    )
    playlist_with_tracks(2, owner=listener, name="Mine")

    discover = client.get("/").content.decode()
    listing = client.get("/playlists/").content.decode()

    assert "Made for you" in discover and "Weekly Exploration" in discover
    assert "Made for you" in listing and "Weekly Exploration" in listing and "Mine" in listing
    menu = [p.name for p in client.get("/").context["playlists"]]
    assert menu == ["Mine"]  # a generated playlist is not offered to add tracks to


def test_a_generated_playlist_is_read_only_and_can_be_saved_as_your_own(client, listener, catalog):
    generated_playlists_replace(
        track_ids={(listener.pk, WEEKLY): [t.pk for t in catalog.tracks[:5]]}
    )
    generated = Playlist.objects.get(owner=listener, generated=WEEKLY)

    page = client.get(f"/playlists/{generated.pk}/").content.decode()

    assert "Save as my playlist" in page and "Generated for you" in page
    assert "Continue this playlist" not in page and 'aria-label="Remove' not in page
    assert client.post(f"/playlists/{generated.pk}/entries/0/remove/").status_code == 403
    assert client.post(f"/playlists/{generated.pk}/delete/").status_code == 403

    response = client.post(f"/playlists/{generated.pk}/save/")

    copy = Playlist.objects.get(owner=listener, generated="")
    assert response.status_code == 302 and response.url == f"/playlists/{copy.pk}/"
    assert copy.name.startswith("Weekly Exploration · ")
    assert track_order(copy) == [t.pk for t in catalog.tracks[:5]]
    assert "Continue this playlist" in client.get(response.url).content.decode()


def test_someone_elses_private_playlist_cannot_be_saved(client, listener):
    playlist, _ = playlist_with_tracks(2, name="Secret")
    assert client.post(f"/playlists/{playlist.pk}/save/").status_code == 404
    assert Playlist.objects.count() == 1
