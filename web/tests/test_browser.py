"""The site in a real browser: Debian's Chromium driven by Playwright against a live server.

A listener signs up, onboards, likes a track and sees Discover change without a reload, builds a
playlist, reorders and continues it, and logs out; staff look at the model dashboard. Each main
page is screenshotted: into $TUNEDIN_SCREENSHOT_DIR when set (`make screenshots` uses
docs/screenshots), otherwise into a temporary directory.
"""

import os
import re
from pathlib import Path

import pytest

from catalog.models import ArtistTag, TrackTag
from catalog.tests.factories import ArtistFactory, TagFactory, TrackFactory, UserFactory
from feedback.models import Interaction
from mltasks.models import ModelVersion
from playlists.models import Playlist
from playlists.tests.factories import track_order

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
PASSWORD = "a-long-enough-passphrase-7"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)"
    ),
]


@pytest.fixture
def screenshots(tmp_path) -> Path:
    directory = Path(os.environ.get("TUNEDIN_SCREENSHOT_DIR") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def browser(monkeypatch):
    from django.db import connection, connections

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The live server's request threads must not keep connections open past the test, or the
    # test database cannot be dropped at the end of the run.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # ORM calls made while Playwright runs get a connection of their own context.
        connections.close_all()


@pytest.fixture
def music(transactional_db):
    """A small catalog: shoegaze and techno artists, 40 tracks, falling popularity."""
    shoegaze, techno = TagFactory(name="shoegaze"), TagFactory(name="techno")
    names = ["Slowdive", "Ride", "Lush", "Kraftwerk", "Underworld"]
    artists = [ArtistFactory(name=name) for name in names]
    for index in range(40):
        artist = artists[index % 5]
        tag = techno if artist.name in ("Kraftwerk", "Underworld") else shoegaze
        track = TrackFactory(
            title=f"{artist.name} song {index}", artist=artist, popularity=99 - index
        )
        TrackTag.objects.create(track=track, tag=tag)
    for artist in artists:
        tag = techno if artist.name in ("Kraftwerk", "Underworld") else shoegaze
        ArtistTag.objects.create(artist=artist, tag=tag)
    return artists


def card_titles(page) -> list[str]:
    return page.locator("#discover .card-title").all_inner_texts()


def test_a_listener_signs_up_discovers_and_builds_a_playlist(
    live_server, browser, music, screenshots
):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)

    # Logged out: popular tracks and an invitation.
    page.goto(live_server.url + "/")
    expect(page).to_have_title("Popular tracks · TunedIn")
    expect(page.locator(".track-list .track-title").first).to_have_text("Slowdive song 0")
    page.screenshot(path=screenshots / "home-logged-out.png", full_page=True)

    # Sign up, then onboarding asks for favourites.
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Username").fill("newlistener")
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/accounts/onboarding/$"))
    page.get_by_label("shoegaze").check()
    page.get_by_label("Slowdive").check()
    page.screenshot(path=screenshots / "onboarding.png", full_page=True)
    page.get_by_role("button", name="Save and discover").click()

    # Discover starts from the favourites and says no model is serving yet.
    expect(page).to_have_title("Discover · TunedIn")
    expect(page.locator("#model-note")).to_contain_text("No model yet")
    expect(page.locator("#discover .card")).to_have_count(12)
    before = card_titles(page)
    assert all("Kraftwerk" not in title and "Underworld" not in title for title in before[:8])
    page.screenshot(path=screenshots / "discover.png", full_page=True)

    # Like the first card: it is replaced in place by a new track, with no page load.
    page.evaluate("window.notReloaded = true")
    first = page.locator("#discover .card").first
    liked_title = first.locator(".card-title").inner_text()
    first.get_by_role("button", name=re.compile("^Like")).click()
    expect(page.locator(".card-status").first).to_have_text(f"Liked “{liked_title}”.")
    assert page.evaluate("window.notReloaded") is True
    after = card_titles(page)
    assert liked_title not in after
    assert len(after) == 12 and after[1:] == before[1:]
    liked = Interaction.objects.get(user__username="newlistener")
    assert (liked.kind, liked.track.title, liked.source) == ("like", liked_title, "web")

    # "More" appends the next cards.
    page.get_by_role("button", name="More recommendations").click()
    expect(page.locator("#discover .card").nth(12)).to_be_visible()
    titles = card_titles(page)
    assert len(set(titles)) == len(titles) > 12
    page.reload()
    assert liked_title not in card_titles(page)  # Discover changed: the liked track is done

    # Create a playlist, then add three tracks to it from Discover.
    page.get_by_role("link", name="Playlists").click()
    page.get_by_label("Name").fill("Evening")
    page.get_by_role("button", name="Create playlist").click()
    expect(page.get_by_role("heading", name="Evening")).to_be_visible()
    page.get_by_role("link", name="Discover").click()
    added = []
    for card in page.locator("#discover .card").all()[:3]:
        added.append(card.locator(".card-title").inner_text())
        card.locator("summary", has_text="Add to playlist").click()
        card.get_by_label("Playlist", exact=True).select_option(label="Evening")
        card.get_by_role("button", name=re.compile("^Add “")).click()
        expect(card.locator(".add-status")).to_contain_text("Added to Evening")
    playlist = Playlist.objects.get(owner__username="newlistener", name="Evening")
    assert len(track_order(playlist)) == 3

    # Reorder: move the first track down, in place.
    page.goto(f"{live_server.url}/playlists/{playlist.pk}/")
    entries = page.locator("#playlist-entries .entry .track-title")
    expect(entries).to_have_text(added)
    page.get_by_role("button", name=f"Move “{added[0]}” down").click()
    expect(entries).to_have_text([added[1], added[0], added[2]])
    expect(page.get_by_role("button", name=f"Move “{added[0]}” down")).to_be_focused()

    # Continue it: suggestions appear, and one click adds one.
    page.get_by_role("link", name="Continue this playlist").click()
    suggestion = page.locator("#continuation .suggestion").first
    expect(suggestion).to_be_visible()
    suggested_title = suggestion.locator(".track-title").inner_text()
    assert suggested_title not in added
    suggestion.get_by_role("button", name=re.compile("^Add")).click()
    expect(suggestion).to_contain_text("Added ✓")
    expect(entries).to_have_count(4)
    expect(entries.last).to_have_text(suggested_title)
    page.screenshot(path=screenshots / "playlist.png", full_page=True)

    # The other main pages, for the README.
    page.get_by_role("link", name=suggested_title).first.click()
    expect(page.get_by_role("heading", name="Similar tracks")).to_be_visible()
    page.screenshot(path=screenshots / "track.png", full_page=True)
    page.locator(".byline a").click()
    expect(page.get_by_role("heading", name="Top tracks")).to_be_visible()
    page.screenshot(path=screenshots / "artist.png", full_page=True)
    page.get_by_label("Search tracks and artists").fill("ride")
    page.get_by_label("Search tracks and artists").press("Enter")
    expect(page.locator("#search-results .track-title").first).to_contain_text("Ride song")
    page.screenshot(path=screenshots / "search.png", full_page=True)

    # At phone width Discover is one column and still usable.
    phone = browser.new_page(
        viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state()
    )
    phone.goto(live_server.url + "/")
    phone_cards = phone.locator("#discover .card")
    expect(phone_cards.first).to_be_visible()
    box_first, box_second = phone_cards.nth(0).bounding_box(), phone_cards.nth(1).bounding_box()
    assert box_second["y"] > box_first["y"] + box_first["height"] - 1  # stacked, not side by side
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=screenshots / "discover-phone.png")
    phone.close()

    # Log out.
    page.locator(".account-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Sign up").first).to_be_visible()
    page.close()


def test_staff_see_model_versions_with_training_curves(live_server, browser, music, screenshots):
    from playwright.sync_api import expect

    UserFactory(username="staffer", is_staff=True)
    history = [
        {"epoch": epoch, "loss": 1 / epoch, "valid_nDCG@20": 0.05 + 0.01 * epoch}
        for epoch in range(1, 11)
    ]
    metrics = {
        "served": "LightGCN",
        "models": {
            "LightGCN": {"valid": {"nDCG@20": 0.15, "Recall@20": 0.3}},
            "MostPop": {"valid": {"nDCG@20": 0.06, "Recall@20": 0.12}},
        },
    }
    for status in ("retired", "active"):
        ModelVersion.objects.create(
            kind="recommender", algorithm="lightgcn", status=status, metrics=metrics,
            history=history,
        )  # fmt: skip
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)

    page.goto(live_server.url + "/accounts/login/?next=/dashboard/models/")
    page.get_by_label("Username").fill("staffer")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_title("Models · TunedIn")
    expect(page.locator("details.version[open] svg polyline")).to_have_count(2)
    page.screenshot(path=screenshots / "model-dashboard.png", full_page=True)
    page.get_by_role("button", name=re.compile("^Roll back to")).click()
    expect(page.locator(".message")).to_contain_text("Rolled back to")
    assert ModelVersion.objects.filter(status="active").count() == 1
    page.close()


def log_in(page, live_server, username: str, password: str = "correct-horse-battery") -> None:
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_listener_stops_an_artist_from_being_recommended_anywhere(
    live_server, browser, music, screenshots
):
    from django.utils import timezone
    from playwright.sync_api import expect

    from catalog.models import Tag
    from feedback.models import DoNotRecommend
    from playlists.services import playlist_create_with_tracks

    listener = UserFactory(username="picky", onboarded_at=timezone.now())
    listener.favourite_tags.add(Tag.objects.get(name="shoegaze"))
    ride = music[1].tracks.order_by("-popularity").first()
    playlist = playlist_create_with_tracks(owner=listener, name="Dusk", track_ids=[ride.pk])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    log_in(page, live_server, "picky")

    # Discover mixes artists (two cards each at most before one repeats) and has Slowdive.
    expect(page).to_have_title("Discover · TunedIn")
    artists = page.locator("#discover .card .track-artist")
    expect(artists).to_have_count(12)
    assert "Slowdive" in artists.all_inner_texts()[:6]
    assert max(artists.all_inner_texts()[:6].count(name) for name in ("Slowdive", "Ride")) <= 2

    # "Not for me" on a Slowdive card: every Slowdive card is replaced in place, no reload.
    page.evaluate("window.notReloaded = true")
    card = page.locator("#discover .card", has_text="Slowdive").first
    card.locator("summary", has_text="Not for me").click()
    card.get_by_role("button", name="Don't recommend Slowdive").click()
    expect(page.locator(".card-status").first).to_have_text("We won't recommend Slowdive to you.")
    expect(page.locator("#discover .card .track-artist", has_text="Slowdive")).to_have_count(0)
    expect(artists).to_have_count(12)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=screenshots / "discover-not-for-me.png", full_page=True)
    mark = DoNotRecommend.objects.get(user=listener)
    assert mark.artist_id == music[0].pk and mark.until is None

    # Gone from Discover after a reload, and from "More".
    page.reload()
    page.get_by_role("button", name="More recommendations").click()
    expect(page.locator("#discover .card").nth(12)).to_be_visible()
    assert "Slowdive" not in artists.all_inner_texts()

    # Gone from a playlist's continuation too (Slowdive's tracks are the most popular ones).
    page.goto(f"{live_server.url}/playlists/{playlist.pk}/")
    page.get_by_role("link", name="Continue this playlist").click()
    suggestions = page.locator("#continuation .suggestion")
    expect(suggestions.first).to_be_visible()
    assert not [text for text in suggestions.all_inner_texts() if "Slowdive" in text]

    # The artist page says so, and lifts it in place.
    page.goto(f"{live_server.url}/artists/{music[0].pk}/")
    expect(page.locator("#not-for-me")).to_contain_text("Slowdive is not recommended to you")
    page.screenshot(path=screenshots / "artist-not-recommended.png", full_page=True)
    page.get_by_role("button", name="Recommend Slowdive again").click()
    expect(page.locator("#not-for-me")).to_contain_text("can be recommended to you again")
    assert not DoNotRecommend.objects.filter(user=listener).exists()
    page.close()


def test_generated_playlists_appear_after_the_beat_task_runs(
    live_server, browser, music, screenshots, celery_worker_process
):
    import importlib
    import json
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask
    from playwright.sync_api import expect

    from feedback.tests.factories import InteractionFactory
    from tunedin.celery import app

    listener = UserFactory(username="regular", onboarded_at=timezone.now())
    long_ago = timezone.now() - timedelta(days=90)
    for track in music[2].tracks.all()[:3]:  # Lush, played long ago: Daily Jams material
        InteractionFactory(user=listener, track=track, kind="play", occurred_at=long_ago)
    InteractionFactory(user=listener, track=music[1].tracks.first(), kind="like")  # active now
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    log_in(page, live_server, "regular")
    expect(page.locator("#generated-playlists")).to_have_count(0)

    # What beat sends on schedule, sent now: both entries, to a real worker. (The entries come
    # from a data migration; a transactional test before this one flushed them: made again.)
    schedule = importlib.import_module("playlists.migrations.0003_generated_playlists_schedule")
    schedule.create_schedules(apps, None)
    for name in ("Build Weekly Exploration", "Build Daily Jams"):
        entry = PeriodicTask.objects.get(name=name)
        result = app.send_task(entry.task, kwargs=json.loads(entry.kwargs))
        assert result.get(timeout=120)["playlists"] == 1

    page.reload()
    made_for_you = page.locator("#generated-playlists")
    expect(made_for_you).to_contain_text("Weekly Exploration")
    expect(made_for_you).to_contain_text("Daily Jams")
    page.screenshot(path=screenshots / "discover-made-for-you.png", full_page=True)
    made_for_you.get_by_role("link", name="Daily Jams").click()
    entries = page.locator("#playlist-entries .entry")
    expect(entries.first).to_be_visible()
    jams = entries.all_inner_texts()
    assert sum("Lush" in text for text in jams) == 2  # at most two per artist
    assert max(sum(name in text for text in jams) for name in
               ("Slowdive", "Ride", "Lush", "Kraftwerk", "Underworld")) <= 2  # fmt: skip
    page.screenshot(path=screenshots / "generated-playlist.png", full_page=True)

    # Save it as the listener's own playlist, which they can then change.
    page.get_by_role("button", name="Save as my playlist").click()
    expect(page.locator(".message")).to_contain_text("Saved as “Daily Jams · ")
    expect(page.get_by_role("link", name="Continue this playlist")).to_be_visible()
    page.get_by_role("link", name="Playlists").click()
    expect(page.locator("#generated-playlists")).to_contain_text("Weekly Exploration")
    expect(page.locator(".playlist-list").last).to_contain_text("Daily Jams · ")
    page.close()


def test_staff_start_an_interleaved_test_and_see_its_counts_move_as_a_listener_likes(
    live_server, browser, music, screenshots, settings, tmp_path
):
    """Two planted versions: the active one (the control) sends the listener to shoegaze,
    the challenger to techno, so a card's genre says which version contributed it."""
    import numpy as np
    from django.utils import timezone
    from playwright.sync_api import expect

    from feedback.services import impressions_flush
    from feedback.tests.factories import InteractionFactory
    from mltasks.ml.artifacts import ServingVectors
    from mltasks.models import InterleavingTest
    from recommendations.serving import active_states, interleaving_tests
    from recommendations.tests.planted import planted_recommender

    settings.ARTIFACTS_DIR = tmp_path
    active_states.reset()
    interleaving_tests.reset()
    UserFactory(username="staffer", is_staff=True)
    listener = UserFactory(username="tester", onboarded_at=timezone.now())
    tracks = sorted((t for artist in music for t in artist.tracks.all()), key=lambda t: t.pk)
    techno = {"Kraftwerk", "Underworld"}
    genre = np.array([1 if t.artist.name in techno else 0 for t in tracks])

    def planted(favourite: int, *, activate: bool):
        item_vectors = np.zeros((len(tracks), 8), dtype=np.float32)
        item_vectors[np.arange(len(tracks)), genre] = [t.popularity / 100 for t in tracks]
        user_vectors = np.zeros((1, 8), dtype=np.float32)
        user_vectors[0, favourite] = 1.0
        vectors = ServingVectors(
            track_ids=np.array([t.pk for t in tracks]), item_vectors=item_vectors,
            user_ids=np.array([listener.pk]), user_vectors=user_vectors,
        )  # fmt: skip
        directory = tmp_path / ("challenger" if not activate else "control")
        return planted_recommender(directory=directory, vectors=vectors, activate=activate)

    control = planted(0, activate=True)
    challenger = planted(1, activate=False)
    # Other listeners' plays: what the offline replay holds out and drafts lists for.
    for index, other in enumerate(UserFactory.create_batch(12)):
        for track in tracks[index : index + 5]:
            InteractionFactory(user=other, track=track, kind="play")

    # Staff start a test of the challenger for every listener.
    staff = browser.new_page(viewport={"width": 1280, "height": 900})
    staff.set_default_timeout(15_000)
    log_in(staff, live_server, "staffer")
    staff.goto(live_server.url + "/dashboard/experiments/")
    expect(staff).to_have_title("Interleaved tests · TunedIn")
    staff.get_by_label("Challenger").select_option(value=str(challenger.pk))
    staff.get_by_label("Share of listeners (%)").fill("100")
    staff.get_by_role("button", name="Start the test").click()
    expect(staff.locator(".message")).to_contain_text("started")
    test = InterleavingTest.objects.get(status="running")
    assert (test.control_id, test.challenger_id, test.share) == (control.pk, challenger.pk, 1.0)
    live = staff.locator(f"#test-{test.pk} tr.live")
    expect(live.locator("td.lists")).to_have_text("0")
    # Beside it, the same comparison replayed on the held-out plays (one list per listener).
    expect(staff.locator(f"#test-{test.pk} tr.offline td.lists")).to_have_text("12")

    # The listener's Discover is drafted from both: shoegaze from the control, techno from
    # the challenger.
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    log_in(page, live_server, "tester")
    expect(page.locator("#discover .card")).to_have_count(12)
    artists = page.locator("#discover .card .track-artist").all_inner_texts()
    assert techno & set(artists[:6]) and set(artists[:6]) - techno

    # A like on a techno card: the challenger wins that list.
    page.locator("#discover .card", has_text="Kraftwerk").first.get_by_role(
        "button", name=re.compile("^Like")
    ).click()
    expect(page.locator(".card-status").first).to_contain_text("Liked")
    impressions_flush()
    staff.reload()
    expect(live.locator("td.losses")).to_have_text("1")  # lists the challenger won
    expect(live.locator("td.wins")).to_have_text("0")
    shown_lists = int(live.locator("td.lists").inner_text())
    assert shown_lists >= 1

    # A new Discover list, and a like on a shoegaze card: the control wins that one.
    page.reload()
    page.locator("#discover .card", has_text="Slowdive").first.get_by_role(
        "button", name=re.compile("^Like")
    ).click()
    expect(page.locator(".card-status").first).to_contain_text("Liked")
    impressions_flush()
    staff.reload()
    expect(live.locator("td.wins")).to_have_text("1")
    expect(live.locator("td.losses")).to_have_text("1")
    assert int(live.locator("td.lists").inner_text()) > shown_lists
    staff.screenshot(path=screenshots / "interleaving-test.png", full_page=True)

    # Staff stop it: the listener's next Discover comes from the control alone, which puts
    # shoegaze first (two tracks of each of its three artists, then the others).
    staff.get_by_role("button", name=f"Stop test #{test.pk}").click()
    expect(staff.locator(".message")).to_contain_text("stopped")
    page.reload()
    expect(page.locator("#discover .card")).to_have_count(12)
    artists = page.locator("#discover .card .track-artist").all_inner_texts()
    assert not techno & set(artists[:6])

    # Outside the test the lists are the control's own: the model dashboard's online metrics
    # count them (and the like on one of them) for that version.
    page.locator("#discover .card", has_text="Slowdive").first.get_by_role(
        "button", name=re.compile("^Like")
    ).click()
    expect(page.locator(".card-status").first).to_contain_text("Liked")
    impressions_flush()
    staff.goto(live_server.url + "/dashboard/models/")
    row = staff.locator("table.online tbody tr", has_text=f"#{control.pk}")
    expect(row).to_have_count(1)
    cells = row.locator("td")
    assert int(cells.nth(2).inner_text()) >= 12  # the 12 cards (and the one that replaced)
    expect(cells.nth(3)).to_contain_text("(1)")  # one shown track liked
    staff.locator("#online-metrics").scroll_into_view_if_needed()
    staff.locator("table.online").screenshot(path=screenshots / "online-metrics.png")
    page.close()
    staff.close()
