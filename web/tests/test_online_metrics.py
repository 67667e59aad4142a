"""Impressions on the site (Discover, its "more" cards, playlist suggestions, generated
playlists), site feedback linked to them through the cards' request_id, and the dashboard's
online metrics per version and day. Real PostgreSQL and Redis; the flush is the service the
beat task calls."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from catalog.tests.factories import TrackFactory, UserFactory
from feedback.models import Impression, Interaction
from feedback.services import impressions_flush
from feedback.tests.factories import InteractionFactory
from mltasks.models import ModelVersion
from playlists.models import Playlist, PlaylistEntry
from playlists.tests.factories import playlist_with_tracks

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def tracks():
    return [TrackFactory(popularity=100 - index) for index in range(30)]


@pytest.fixture
def listener(client):
    user = UserFactory(onboarded_at=timezone.now())
    client.force_login(user)
    return user


def card_request_ids(html: str) -> dict[int, str]:
    """{track id: the request_id its like/skip form sends} of the cards in `html`."""
    ids = {}
    for track_id, body in re.findall(
        r'<article class="card" id="card-(\d+)"(.*?)</article>', html, re.S
    ):
        found = re.search(r'name="request_id" value="([0-9a-f-]+)"', body)
        ids[int(track_id)] = found.group(1) if found else None
    return ids


def shown(request_id) -> list[tuple[int, int]]:
    """(position, track id) of the tracks the list `request_id` showed, in order."""
    row = Impression.objects.get(request_id=request_id)
    return [(row.position_of(track_id), track_id) for track_id in row.track_ids]


def test_discover_logs_its_cards_and_each_card_carries_the_request_id(client, listener, tracks):
    response = client.get("/")
    page = response.context["recommendations"]
    cards = card_request_ids(response.content.decode())

    assert list(cards) == [item.track.pk for item in page.items]
    assert set(cards.values()) == {str(page.request_id)}
    impressions_flush()
    assert shown(page.request_id) == [(i, item.track.pk) for i, item in enumerate(page.items)]
    assert set(
        Impression.objects.values_list("user_id", "surface", "model_version_id", "pipeline")
    ) == {(listener.pk, "discover", None, "")}  # no model: the popularity fallback


def test_more_cards_are_a_new_list_placed_after_the_cards_on_the_page(client, listener, tracks):
    first = client.get("/").context["recommendations"]
    on_page = [item.track.pk for item in first.items]

    more = client.get("/discover/more/", {"shown": on_page}, **HTMX)

    request_id = more.context["request_id"]
    assert request_id != first.request_id
    assert set(card_request_ids(more.content.decode()).values()) == {str(request_id)}
    impressions_flush()
    assert shown(request_id) == [
        (len(on_page) + i, item.track.pk) for i, item in enumerate(more.context["items"])
    ]


def test_a_like_from_a_card_links_to_its_impression_and_the_new_card_is_logged(
    client, listener, tracks
):
    page = client.get("/").context["recommendations"]
    on_page = [item.track.pk for item in page.items]
    liked = on_page[2]
    impressions_flush()

    response = client.post(
        f"/tracks/{liked}/feedback/",
        {"kind": "like", "shown": on_page, "request_id": str(page.request_id)},
        **HTMX,
    )

    assert response.status_code == 200
    like = Interaction.objects.get(user=listener)
    assert like.request_id == page.request_id
    assert like.impression == Impression.objects.get(request_id=page.request_id)
    assert like.impression.position_of(liked) == 2
    replacement = response.context["item"].track.pk
    new_list = response.context["request_id"]
    assert card_request_ids(response.content.decode()) == {replacement: str(new_list)}
    impressions_flush()
    assert shown(new_list) == [(len(on_page), replacement)]


def test_a_skip_before_the_flush_is_linked_by_the_flush(client, listener, tracks):
    page = client.get("/").context["recommendations"]
    skipped = page.items[0].track.pk
    client.post(
        f"/tracks/{skipped}/feedback/",
        {"kind": "skip", "request_id": str(page.request_id), "next": "/"},
    )
    assert Interaction.objects.get(user=listener).impression is None

    assert impressions_flush().linked == 1
    skip = Interaction.objects.get(user=listener)
    assert skip.impression.request_id == page.request_id
    assert skip.impression.position_of(skipped) == 0


def test_a_malformed_request_id_from_a_card_is_a_400_and_saves_nothing(client, listener, tracks):
    response = client.post(
        f"/tracks/{tracks[0].pk}/feedback/", {"kind": "like", "request_id": "12; drop"}, **HTMX
    )
    assert response.status_code == 400
    assert "request_id is not a request id" in response.content.decode()
    assert not Interaction.objects.exists()


def test_playlist_suggestions_are_logged_as_a_continuation(client, listener, tracks):
    playlist, _ = playlist_with_tracks(3, owner=listener)

    response = client.get(f"/playlists/{playlist.pk}/continue/", **HTMX)

    suggestions = response.context["suggestions"]
    assert suggestions.items and suggestions.request_id
    impressions_flush()
    assert shown(suggestions.request_id) == [
        (i, item.track.pk) for i, item in enumerate(suggestions.items)
    ]
    assert set(Impression.objects.values_list("surface", "user_id")) == {
        ("continuation", listener.pk)
    }


def test_a_generated_playlist_opened_by_its_listener_is_logged(client, listener, tracks):
    playlist = Playlist.objects.create(
        owner=listener, name="Weekly Exploration", generated="weekly-exploration"
    )
    PlaylistEntry.objects.bulk_create(
        PlaylistEntry(playlist=playlist, track=track, position=position)
        for position, track in enumerate(tracks[:5])
    )
    someone_else = Client()
    someone_else.force_login(UserFactory())

    assert client.get(f"/playlists/{playlist.pk}/").status_code == 200
    someone_else.get(f"/playlists/{playlist.pk}/")  # not theirs (a 404): nothing shown
    impressions_flush()

    row = Impression.objects.get()
    assert shown(row.request_id) == [(i, t.pk) for i, t in enumerate(tracks[:5])]
    assert (row.user_id, row.surface, row.pipeline) == (
        listener.pk, "generated", "weekly-exploration",
    )  # fmt: skip


# ----------------------------------------------------------------------------- dashboard


@pytest.fixture
def staff():
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    return client


def online_section(html: str) -> str:
    return html[html.index('id="online-metrics"') :]


def test_the_dashboard_says_when_there_are_no_impressions_yet(staff):
    html = online_section(staff.get("/dashboard/models/").content.decode())
    assert "No impressions yet" in html


def test_the_dashboard_shows_each_versions_rates_and_coverage_per_day(staff):
    version = ModelVersion.objects.create(
        kind=ModelVersion.Kind.RECOMMENDER, algorithm="sasrec", status=ModelVersion.Status.ACTIVE
    )
    listener = UserFactory()
    tracks = TrackFactory.create_batch(8)
    now = timezone.now()
    shown_list = Impression.objects.create(
        request_id=uuid.uuid4(),
        user=listener,
        track_ids=[track.pk for track in tracks[:4]],
        surface="api_rec",
        model_version_id=version.pk,
        pipeline="sasrec",
        shown_at=now,
    )
    for track, kind in [(tracks[0], "like"), (tracks[1], "skip")]:
        InteractionFactory(user=listener, track=track, kind=kind, impression=shown_list)

    response = staff.get("/dashboard/models/")

    html = online_section(response.content.decode())
    row = re.search(rf"<tr>\s*<th scope=\"row\">{timezone.localdate():%Y-%m-%d}</th>(.*?)</tr>",
                    html, re.S).group(1)  # fmt: skip
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row)]
    assert cells == [
        f"#{version.pk} {version.get_kind_display().lower()}",
        "sasrec", "4", "0.2500 (1)", "0.2500 (1)", "0.5000 (4 of 8)",
    ]  # fmt: skip
    assert "No impressions yet" not in html


def test_online_metrics_are_for_staff_only(client, listener):
    response = client.get("/dashboard/models/")
    assert response.status_code == 403
    assert b"Online metrics" not in response.content
