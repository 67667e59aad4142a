"""The staff page of interleaved tests: who may see it, starting a test from its form (and the
reasons a start is refused), the live and offline readings side by side, stopping and
promoting. Versions are planted (known vectors, no training)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from catalog.tests.factories import ArtistFactory, TrackFactory, UserFactory
from feedback.models import Impression, Interaction
from mltasks.models import InterleavingTest, ModelVersion
from recommendations.serving import active_states, interleaving_tests
from recommendations.tests.planted import planted_recommender, random_vectors

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/experiments/"
START = "/dashboard/experiments/start/"


@pytest.fixture(autouse=True)
def _fresh_serving_state():
    active_states.reset()
    interleaving_tests.reset()
    yield
    active_states.reset()
    interleaving_tests.reset()


@pytest.fixture
def staff():
    client = Client()
    client.force_login(UserFactory(is_staff=True, username="staffer"))
    return client


@pytest.fixture
def planted(settings, tmp_path):
    """An active version and a ready one over 20 tracks and 4 listeners, with a few plays."""
    settings.ARTIFACTS_DIR = tmp_path
    artist = ArtistFactory()
    tracks = [TrackFactory(artist=artist) for _ in range(20)]
    users = UserFactory.create_batch(4)
    now = timezone.now()
    for i, user in enumerate(users):
        for track in tracks[i : i + 6]:
            Interaction.objects.create(
                user=user, track=track, kind="play", occurred_at=now, hour=now.hour,
                day_of_week=now.weekday(),
            )  # fmt: skip
    track_ids, user_ids = [t.pk for t in tracks], [u.pk for u in users]
    active = planted_recommender(
        directory=tmp_path, vectors=random_vectors(track_ids=track_ids, user_ids=user_ids, seed=1)
    )
    ready = planted_recommender(
        directory=tmp_path,
        vectors=random_vectors(track_ids=track_ids, user_ids=user_ids, seed=2),
        activate=False,
    )
    return {"active": active, "ready": ready, "tracks": tracks, "users": users}


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_page_and_its_forms_are_for_staff_only(planted):
    listener = Client()
    listener.force_login(UserFactory())
    test = InterleavingTest.objects.create(
        control=planted["active"], challenger=planted["ready"], share=0.5
    )
    posts = [START, f"{PAGE}{test.pk}/stop/", f"{PAGE}{test.pk}/promote/"]

    assert Client().get(PAGE).status_code == 302  # to the login page
    assert listener.get(PAGE).status_code == 403
    for url in posts:
        assert Client().post(url).status_code == 302
        assert listener.post(url, {"version": planted["ready"].pk}).status_code == 403
    assert InterleavingTest.objects.get().status == "running"


def test_staff_start_a_test_from_the_form_and_see_both_readings(staff, planted):
    page = staff.get(PAGE)
    assert page.status_code == 200
    assert f"#{planted['active'].pk} planted</strong> (active)" in page.content.decode()
    options = re.findall(r'<option value="(\d+)"', page.content.decode())
    assert options == [str(planted["ready"].pk)]  # the active version cannot challenge itself

    response = staff.post(
        START, {"challenger": planted["ready"].pk, "share_percent": "25"}, follow=True
    )

    test = InterleavingTest.objects.get()
    assert (test.control, test.challenger, test.share) == (
        planted["active"],
        planted["ready"],
        0.25,
    )
    assert test.started_by.username == "staffer"
    assert f"Test #{test.pk} started" in messages_of(response)[0]
    html = response.content.decode()
    assert "Start a test" not in html  # one test at a time
    assert f"Stop test #{test.pk}" in html and f"Promote challenger #{test.challenger_id}" in html
    # The offline replay ran on the listeners' plays: its reading sits under the live one.
    assert test.offline["users"] == 4
    live, offline = re.findall(r'<tr class="(live|offline)">', html)
    assert (live, offline) == ("live", "offline")
    assert "25% of listeners" in html


def counts_row(html: str, reading: str) -> dict[str, str]:
    row = re.search(rf'<tr class="{reading}">(.*?)</tr>', html, re.S).group(1)
    return dict(re.findall(r'<td class="([a-z-]+)">(.*?)</td>', row))


def test_the_live_counts_interval_and_verdict_follow_the_feedback(staff, planted):
    test = InterleavingTest.objects.create(
        control=planted["active"], challenger=planted["ready"], share=1.0
    )
    listener, tracks = planted["users"][0], planted["tracks"]
    now = timezone.now()
    for index in range(12):
        request_id = uuid.uuid4()
        Impression.objects.create(
            request_id=request_id, user=listener, track_ids=[tracks[0].pk, tracks[1].pk],
            surface="discover", interleaving_test_id=test.pk, teams=["A", "B"], shown_at=now,
        )  # fmt: skip
        liked = tracks[0] if index < 11 else tracks[1]  # the control wins 11 lists of 12
        Interaction.objects.create(
            user=listener, track=liked, kind="like", occurred_at=now, hour=now.hour,
            day_of_week=now.weekday(), request_id=request_id,
        )  # fmt: skip

    row = counts_row(staff.get(PAGE).content.decode(), "live")

    assert (row["lists"], row["wins"], row["losses"], row["ties"]) == ("12", "11", "1", "0")
    delta, low, high = map(float, re.findall(r"-?\d\.\d+", row["delta"]))
    assert delta == pytest.approx(10 / 12, abs=1e-3) and 0 < low < delta < high
    assert row["verdict"] == f"significant: the control #{test.control_id} is preferred"
    assert float(row["p-value"]) < 0.01


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"share_percent": "0"}, "greater than or equal to 0.1"),
        ({"share_percent": "150"}, "less than or equal to 100"),
        ({"share_percent": "many"}, "Enter a number"),
        ({"challenger": "active"}, "Choose a trained recommender version"),
        ({"challenger": "999999"}, "Choose a trained recommender version"),
    ],
)
def test_a_bad_start_is_refused_with_the_reason(staff, planted, form, reason):
    data = {"challenger": planted["ready"].pk, "share_percent": "10", **form}
    if data["challenger"] == "active":
        data["challenger"] = planted["active"].pk

    response = staff.post(START, data, follow=True)

    assert response.status_code == 200
    assert reason in messages_of(response)[0]
    assert not InterleavingTest.objects.exists()


def test_a_second_start_says_a_test_is_running(staff, planted):
    InterleavingTest.objects.create(
        control=planted["active"], challenger=planted["ready"], share=0.5
    )

    response = staff.post(START, {"challenger": planted["ready"].pk, "share_percent": "10"},
                          follow=True)  # fmt: skip

    assert "already running" in messages_of(response)[0]
    assert InterleavingTest.objects.count() == 1


def test_staff_stop_a_test(staff, planted):
    test = InterleavingTest.objects.create(
        control=planted["active"], challenger=planted["ready"], share=0.5
    )

    response = staff.post(f"{PAGE}{test.pk}/stop/", follow=True)

    assert f"Test #{test.pk} stopped" in messages_of(response)[0]
    assert InterleavingTest.objects.get().status == "stopped"
    assert "Start a test" in response.content.decode()
    again = staff.post(f"{PAGE}{test.pk}/stop/", follow=True)
    assert "is not running" in messages_of(again)[0]
    assert staff.post(f"{PAGE}999999/stop/").status_code == 404
    assert staff.get(f"{PAGE}{test.pk}/stop/").status_code == 405


def test_staff_promote_the_challenger(staff, planted):
    test = InterleavingTest.objects.create(
        control=planted["active"], challenger=planted["ready"], share=0.5
    )

    response = staff.post(
        f"{PAGE}{test.pk}/promote/", {"version": planted["ready"].pk}, follow=True
    )

    assert f"#{planted['ready'].pk} now serves everyone" in messages_of(response)[0]
    assert ModelVersion.objects.get(status="active") == planted["ready"]
    assert InterleavingTest.objects.get().status == "promoted"


@pytest.mark.parametrize("version", ["", "abc", "999999"])
def test_promoting_a_version_outside_the_test_is_refused(staff, planted, version):
    test = InterleavingTest.objects.create(
        control=planted["active"], challenger=planted["ready"], share=0.5
    )

    response = staff.post(f"{PAGE}{test.pk}/promote/", {"version": version}, follow=True)

    assert response.status_code == 200
    assert "version" in messages_of(response)[0].lower()
    assert ModelVersion.objects.get(status="active") == planted["active"]
    assert InterleavingTest.objects.get().status == "running"


def test_without_another_trained_version_the_page_says_so(staff, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    tracks = [TrackFactory() for _ in range(5)]
    planted_recommender(
        directory=tmp_path, vectors=random_vectors(track_ids=[t.pk for t in tracks])
    )

    html = staff.get(PAGE).content.decode()

    assert "No other trained recommender version" in html
    assert "No test has run yet." in html
