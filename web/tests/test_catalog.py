"""The catalog pages: Discover (home), feedback from the cards, track/artist/tag pages, search."""

from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone

from catalog.models import ArtistTag, TrackTag
from catalog.tests.factories import (
    ArtistFactory,
    TagFactory,
    TrackFactory,
    UserFactory,
)
from feedback.models import Interaction
from feedback.tests.factories import InteractionFactory
from playlists.tests.factories import PlaylistFactory
from recommendations.selectors import RecommendationList

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def catalog():
    """Two tags, three artists and 30 tracks with falling popularity, each tagged."""
    shoegaze, techno = TagFactory(name="shoegaze"), TagFactory(name="techno")
    artists = [ArtistFactory(name=name) for name in ("Slowdive", "Ride", "Kraftwerk")]
    tracks = []
    for index in range(30):
        artist = artists[index % 3]
        tag = techno if artist.name == "Kraftwerk" else shoegaze
        track = TrackFactory(title=f"Song {index:02d}", artist=artist, popularity=100 - index)
        TrackTag.objects.create(track=track, tag=tag, weight=1.0)
        tracks.append(track)
    for artist in artists:
        ArtistTag.objects.create(
            artist=artist, tag=techno if artist.name == "Kraftwerk" else shoegaze
        )
    return SimpleNamespace(tracks=tracks, artists=artists, shoegaze=shoegaze, techno=techno)


@pytest.fixture
def listener(client):
    user = UserFactory(onboarded_at=timezone.now())
    client.force_login(user)
    return user


def card_track_ids(response) -> list[int]:
    return [item.track.pk for item in response.context["recommendations"].items]


def test_logged_out_home_lists_popular_tracks_and_invites_to_sign_up(client, catalog):
    response = client.get("/")

    assert response.status_code == 200
    titles = [item.track.title for item in response.context["items"]]
    assert titles[:3] == ["Song 00", "Song 01", "Song 02"]
    assert b"Sign up" in response.content


def test_a_new_user_is_sent_to_onboarding_first(client, catalog):
    client.force_login(UserFactory(onboarded_at=None))

    response = client.get("/")

    assert response.status_code == 302
    assert response.url == "/accounts/onboarding/"


def test_discover_shows_cards_with_artist_tags_reason_and_buttons(
    client, listener, catalog, django_assert_max_num_queries
):
    PlaylistFactory.create_batch(3, owner=listener)

    # independent of the number of cards (3 of them: do-not-recommend marks, the ranked tracks'
    # artists, the generated playlists)
    with django_assert_max_num_queries(17):
        response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert len(card_track_ids(response)) == 12
    assert "Song 00" in html and "Slowdive" in html and "shoegaze" in html
    assert "Popular right now" in html
    assert 'value="like"' in html and 'value="skip"' in html
    assert "Add to playlist" in html
    assert "No model yet" in html


def test_discover_says_which_model_version_picked_the_tracks(
    client, listener, catalog, monkeypatch
):
    from web import site_recommendations

    picked = [SimpleNamespace(track=t, score=1.0, reason="Because") for t in catalog.tracks[5:8]]
    monkeypatch.setattr(
        site_recommendations,
        "recommendations_for_user",
        lambda *, user, n, offset=0, **options: RecommendationList(
            user_id=user.pk, model_version=7, items=picked[:n]
        ),
    )

    response = client.get("/")

    assert card_track_ids(response) == [t.pk for t in catalog.tracks[5:8]]
    assert "recommender version #7" in response.content.decode()
    assert "No model yet" not in response.content.decode()


def test_liking_a_card_records_the_like_and_swaps_in_a_new_track(
    client, listener, catalog, django_capture_on_commit_callbacks
):
    shown = card_track_ids(client.get("/"))
    liked = shown[0]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/tracks/{liked}/feedback/", {"kind": "like", "shown": shown}, **HTMX
        )

    assert response.status_code == 200
    replacement = response.context["item"].track.pk
    assert replacement not in shown
    assert "Liked “Song 00”." in response.content.decode()
    interaction = Interaction.objects.get(user=listener)
    assert (interaction.track_id, interaction.kind, interaction.source) == (liked, "like", "web")
    assert liked not in card_track_ids(client.get("/"))


def test_skipping_without_htmx_redirects_back_with_a_message(client, listener, catalog):
    track = catalog.tracks[0]

    response = client.post(
        f"/tracks/{track.pk}/feedback/", {"kind": "skip", "next": f"/tracks/{track.pk}/"}
    )

    assert response.status_code == 302
    assert response.url == f"/tracks/{track.pk}/"
    assert Interaction.objects.get(user=listener).kind == "skip"


def test_feedback_refuses_an_unknown_kind_and_an_offsite_next(client, listener, catalog):
    track = catalog.tracks[0]

    bad_kind = client.post(f"/tracks/{track.pk}/feedback/", {"kind": "play"}, **HTMX)
    offsite = client.post(
        f"/tracks/{track.pk}/feedback/", {"kind": "like", "next": "https://evil.example/"}
    )

    assert bad_kind.status_code == 400
    assert offsite.url == "/"


def test_feedback_needs_login_post_and_a_csrf_token(catalog):
    track = catalog.tracks[0]
    anonymous = Client()
    assert anonymous.post(f"/tracks/{track.pk}/feedback/", {"kind": "like"}).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory(onboarded_at=timezone.now()))

    assert strict.get(f"/tracks/{track.pk}/feedback/").status_code == 405
    assert strict.post(f"/tracks/{track.pk}/feedback/", {"kind": "like"}).status_code == 403
    assert not Interaction.objects.exists()


def test_more_loads_the_next_cards_without_repeating_shown_ones(
    client, listener, catalog, django_assert_max_num_queries
):
    shown = card_track_ids(client.get("/"))

    with django_assert_max_num_queries(12):
        response = client.get("/discover/more/", {"shown": shown}, **HTMX)

    more = [item.track.pk for item in response.context["items"]]
    assert len(more) == 12
    assert not set(more) & set(shown)


BAD_SHOWN = pytest.mark.parametrize(
    ("shown", "reason"),
    [
        (["²"], "“²” is not a track id."),
        (["٣"], "“٣” is not a track id."),
        (["5" * 5000], "is not a track id."),
        ([str(2**63)], f"“{2**63}” is not a track id."),
        (["0"], "“0” is not a track id."),
        (["-4"], "“-4” is not a track id."),
        (["4", "x"], "“x” is not a track id."),
        ([str(n) for n in range(1, 502)], "Send at most 500 track ids."),
    ],
    ids=["superscript", "arabic-indic", "5000-digits", "past-bigint", "zero", "negative",
         "word", "too-many"],
)  # fmt: skip


@BAD_SHOWN
def test_more_with_a_bad_shown_value_is_a_400_with_the_reason(client, listener, catalog, shown,
                                                              reason):  # fmt: skip
    response = client.get("/discover/more/", {"shown": shown}, **HTMX)

    assert response.status_code == 400
    assert reason in response.content.decode()


@BAD_SHOWN
def test_feedback_with_a_bad_shown_value_is_a_400_and_saves_nothing(
    client, listener, catalog, shown, reason
):
    track = catalog.tracks[0]

    response = client.post(
        f"/tracks/{track.pk}/feedback/", {"kind": "like", "shown": shown}, **HTMX
    )

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not Interaction.objects.exists()


def test_shown_takes_up_to_500_ids_that_fit_a_bigint(client, listener, catalog):
    shown = [str(2**63 - 1), *(str(n) for n in range(1, 500))]

    more = client.get("/discover/more/", {"shown": shown}, **HTMX)
    liked = client.post(
        f"/tracks/{catalog.tracks[0].pk}/feedback/", {"kind": "like", "shown": shown}, **HTMX
    )

    assert (more.status_code, liked.status_code) == (200, 200)


def test_track_page_shows_artist_tags_counts_and_similar_tracks(
    client, catalog, django_assert_max_num_queries
):
    track = catalog.tracks[0]
    InteractionFactory.create_batch(3, track=track, kind="play")
    InteractionFactory(track=track, kind="like")

    with django_assert_max_num_queries(8):
        response = client.get(f"/tracks/{track.pk}/")

    assert response.status_code == 200
    assert response.context["counts"] == {"plays": 3, "likes": 1, "skips": 0}
    similar = [item.track for item in response.context["similar"]]
    assert similar and track not in similar
    assert all(t.artist.name != "Kraftwerk" for t in similar[:5])  # shoegaze first
    assert "Slowdive" in response.content.decode()
    assert "<title>Song 00 by Slowdive · TunedIn</title>" in response.content.decode()


def test_missing_track_artist_and_tag_pages_are_404(client, db):
    for path in ("/tracks/999999/", "/artists/999999/", "/tags/999999/"):
        assert client.get(path).status_code == 404, path


def test_artist_page_lists_top_tracks_tags_and_similar_artists(
    client, catalog, django_assert_max_num_queries
):
    slowdive = catalog.artists[0]

    with django_assert_max_num_queries(8):
        response = client.get(f"/artists/{slowdive.pk}/")

    assert response.status_code == 200
    top = response.context["top_tracks"]
    assert {t.artist_id for t in top} == {slowdive.pk}
    assert [t.popularity for t in top] == sorted((t.popularity for t in top), reverse=True)
    assert [a.artist.name for a in response.context["similar"]] == ["Ride"]
    assert "shoegaze" in response.content.decode()


def test_tag_page_paginates_the_tags_top_tracks(client, catalog, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        first = client.get(f"/tags/{catalog.shoegaze.pk}/")
    second = client.get(f"/tags/{catalog.shoegaze.pk}/", {"page": 2})

    assert first.context["page"].paginator.count == 20
    assert [t.title for t in first.context["page"]][:2] == ["Song 00", "Song 01"]
    assert len(first.context["page"]) == 20
    assert second.context["page"].number == 1  # only one page of 25


def test_search_matches_word_prefixes_in_titles_and_names(client, db):
    TrackFactory(title="Shoegaze Dreams", popularity=5)
    TrackFactory(title="Dream Machine", popularity=9)
    TrackFactory(title="Nothing Alike")
    ArtistFactory(name="Dreamers United")

    response = client.get("/search/", {"q": "dream"})

    titles = [t.title for t in response.context["page"]]
    assert set(titles) == {"Shoegaze Dreams", "Dream Machine"}
    assert response.context["n_artists"] == 1
    assert [a.name for a in response.context["artist_preview"]] == ["Dreamers United"]


def test_search_with_several_words_needs_all_of_them(client, db):
    TrackFactory(title="Blue Monday")
    TrackFactory(title="Blue Hotel")

    response = client.get("/search/", {"q": "blue mon"})

    assert [t.title for t in response.context["page"]] == ["Blue Monday"]


def test_search_falls_back_to_a_substring_match(client, db):
    TrackFactory(title="Shoegaze Dreams")

    response = client.get("/search/", {"q": "gaze"})

    assert [t.title for t in response.context["page"]] == ["Shoegaze Dreams"]


def test_search_for_artists_paginates(client, db, django_assert_max_num_queries):
    for index in range(30):
        ArtistFactory(name=f"Band {index:02d}")

    with django_assert_max_num_queries(10):
        response = client.get("/search/", {"q": "band", "kind": "artists", "page": 2})

    assert response.context["page"].number == 2
    assert len(response.context["page"]) == 5
    assert response.context["n_artists"] == 30


def test_search_without_words_shows_the_form_only(client, db):
    for text in ("", "   ", "!!!"):
        response = client.get("/search/", {"q": text})
        assert response.status_code == 200
        assert text.strip() == "" or response.context["page"].paginator.count == 0


def test_feedback_is_always_recorded_for_the_logged_in_user_only(client, listener, catalog):
    someone_else = UserFactory()

    client.post(
        f"/tracks/{catalog.tracks[0].pk}/feedback/", {"kind": "like", "user": someone_else.pk}
    )

    assert Interaction.objects.get().user == listener
    assert not Interaction.objects.filter(user=someone_else).exists()


def test_the_track_page_shows_counts_not_who_listened(client, catalog):
    InteractionFactory(track=catalog.tracks[0], kind="like", user=UserFactory(username="secretfan"))

    response = client.get(f"/tracks/{catalog.tracks[0].pk}/")

    assert response.context["counts"]["likes"] == 1
    assert "secretfan" not in response.content.decode()
