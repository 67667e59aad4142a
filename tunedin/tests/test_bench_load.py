"""The load bench's impression-logging measurement (bench/load.py): the scenario with logging
off right after the warm rec_user run, the cost target computed from the two p99s, and the
flusher that writes the served lists' impressions while the server runs. No server is
started."""

from __future__ import annotations

import uuid

import pytest

from bench import load
from catalog.tests.factories import TrackFactory, UserFactory
from feedback.models import Impression
from feedback.services import impressions_log
from feedback.tests.factories import InteractionFactory


def result(scenario: str, p99: float) -> load.ScenarioResult:
    return load.ScenarioResult(
        scenario=scenario,
        endpoint="GET /api/rec/users/{id}",
        requests=1000,
        requests_per_second=500.0,
        latency_ms={"p50": 3.0, "p95": 8.0, "p99": p99, "max": 40.0},
    )


def target(rows: list[dict], metric: str = load.IMPRESSION_COST_METRIC) -> dict:
    (row,) = [r for r in rows if r["metric"] == metric]
    return row


@pytest.mark.parametrize(
    ("on", "off", "added", "passed"),
    [(12.5, 11.0, 1.5, True), (14.25, 11.0, 3.25, False), (10.0, 11.0, -1.0, True)],
)
def test_the_cost_target_is_the_difference_of_the_two_p99s(on, off, added, passed):
    results = [result("rec_user", on), result(load.IMPRESSIONS_OFF_SCENARIO, off)]

    cost = load.impression_logging_cost(results)
    row = target(load.evaluate_targets(results))

    assert cost == {"p99_on_ms": on, "p99_off_ms": off, "added_p99_ms": added}
    assert (row["measured"], row["threshold"], row["passed"]) == (added, 2.0, passed)


def test_the_request_paths_share_comes_from_the_run_with_the_flusher_paused():
    results = [
        result("rec_user", 30.0),
        result(load.IMPRESSIONS_UNFLUSHED_SCENARIO, 12.0),
        result(load.IMPRESSIONS_OFF_SCENARIO, 11.0),
    ]
    cost = load.impression_logging_cost(results)
    assert (cost["added_p99_ms"], cost["request_path_added_p99_ms"]) == (19.0, 1.0)
    rows = load.evaluate_targets(results)
    assert target(rows)["passed"] is False
    request_path = target(rows, load.IMPRESSION_REQUEST_COST_METRIC)
    assert (request_path["measured"], request_path["passed"]) == (1.0, True)


def test_without_both_runs_the_cost_is_not_measured():
    results = [result("rec_user", 12.0)]
    assert load.impression_logging_cost(results) is None
    assert target(load.evaluate_targets(results))["passed"] is None


def test_the_printed_targets_show_the_cost_in_milliseconds(capsys):
    results = [result("rec_user", 14.0), result(load.IMPRESSIONS_OFF_SCENARIO, 11.0)]
    load.print_targets(load.evaluate_targets(results), connections=32)
    line = next(
        text for text in capsys.readouterr().out.splitlines() if "impression logging" in text
    )
    assert "<= 2.00 ms" in line and "3.00 ms" in line and line.endswith("FAIL")


@pytest.mark.django_db
def test_the_logging_off_run_replays_the_rec_user_requests_right_after_them():
    users = UserFactory.create_batch(3)
    tracks = TrackFactory.create_batch(5)
    for user in users:
        InteractionFactory(user=user, track=tracks[0])

    scenarios = load.build_scenarios(exponent=1.1, seed=1)

    names = list(scenarios)
    at = names.index("rec_user")
    assert names[at + 1 : at + 3] == [
        load.IMPRESSIONS_UNFLUSHED_SCENARIO, load.IMPRESSIONS_OFF_SCENARIO
    ]  # fmt: skip
    for name in (load.IMPRESSIONS_UNFLUSHED_SCENARIO, load.IMPRESSIONS_OFF_SCENARIO):
        assert scenarios[name][1] == scenarios["rec_user"][1]
        assert name in load.WARMED_SCENARIOS


@pytest.mark.django_db(transaction=True)
def test_the_flusher_writes_what_the_server_logged_and_a_last_batch_on_stop():
    user, tracks = UserFactory(), TrackFactory.create_batch(3)
    flusher = load.ImpressionFlusher(interval_s=3600)  # only the last flush, on stop
    flusher.start()
    impressions_log(
        user_id=user.pk, surface="api_rec", request_id=uuid.uuid4(),
        track_ids=[t.pk for t in tracks], model_version_id=None, pipeline="",
    )  # fmt: skip

    flusher.stop()

    assert Impression.objects.get().track_ids == [t.pk for t in tracks]
    assert flusher.totals["lists"] == flusher.totals["written"] == 1
    assert flusher.totals["impressions"] == 3
    assert flusher.errors == []
