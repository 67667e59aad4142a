"""The load bench's impression-logging measurement (bench/load.py): the paired rounds and their
order, the cost targets computed from them, and the flusher that writes the served lists'
impressions while the server runs. No server is started."""

from __future__ import annotations

import collections
import functools
import uuid

import pytest

from bench import load, stack
from catalog.tests.factories import TrackFactory, UserFactory
from feedback import services
from feedback.models import Impression
from feedback.services import impressions_log

LOGGED, UNFLUSHED, OFF = load.IMPRESSIONS_LOGGED, load.IMPRESSIONS_UNFLUSHED, load.IMPRESSIONS_OFF


def result(p99: float, *, status_5xx: int = 0) -> load.ScenarioResult:
    return load.ScenarioResult(
        scenario="rec_user impressions",
        endpoint="GET /api/rec/users/{id}",
        requests=1000,
        requests_per_second=500.0,
        latency_ms={"p50": 3.0, "p95": 8.0, "p99": p99, "max": 40.0},
        status_5xx=status_5xx,
    )


def rounds(*p99s: dict[str, float]) -> list[dict[str, load.ScenarioResult]]:
    return [{condition: result(p99) for condition, p99 in runs.items()} for runs in p99s]


def target(rows: list[dict], metric: str = load.IMPRESSION_COST_METRIC) -> dict:
    (row,) = [r for r in rows if r["metric"] == metric]
    return row


@pytest.mark.parametrize(
    ("logged", "off", "added", "passed"),
    [
        # Per-round differences +1.0, +5.0, +1.5: the median, 1.5, passes.
        ((12.0, 16.0, 11.5), (11.0, 11.0, 10.0), 1.5, True),
        # +3.0, +4.0, -1.0: 3.0 fails although one round was faster with logging on.
        ((14.0, 15.0, 9.0), (11.0, 11.0, 10.0), 3.0, False),
        # -1.0, -2.0, +0.5: logging on ran faster: -1.0 passes.
        ((10.0, 9.0, 10.5), (11.0, 11.0, 10.0), -1.0, True),
    ],
)
def test_the_cost_is_the_median_of_the_paired_differences(logged, off, added, passed):
    measured = rounds(*({LOGGED: on, OFF: o} for on, o in zip(logged, off, strict=True)))

    cost = load.impression_logging_cost(measured)
    row = target(load.evaluate_targets([], measured))

    assert cost["added_p99_ms_per_round"] == [
        round(on - o, 2) for on, o in zip(logged, off, strict=True)
    ]
    assert cost["added_p99_ms"] == added
    assert cost["p99_ms"][LOGGED] == list(logged)
    assert cost["off_p99_spread_ms"] == 1.0
    assert (row["measured"], row["threshold"], row["passed"]) == (added, 2.0, passed)


def test_the_request_paths_share_comes_from_the_runs_with_the_flusher_paused():
    measured = rounds(
        {OFF: 11.0, LOGGED: 30.0, UNFLUSHED: 12.0},
        {LOGGED: 25.0, UNFLUSHED: 10.0, OFF: 11.0},
        {UNFLUSHED: 15.0, OFF: 10.0, LOGGED: 29.0},
    )
    cost = load.impression_logging_cost(measured)
    assert cost["request_path_added_p99_ms_per_round"] == [1.0, -1.0, 5.0]
    assert (cost["added_p99_ms"], cost["request_path_added_p99_ms"]) == (19.0, 1.0)
    rows = load.evaluate_targets([], measured)
    assert target(rows)["passed"] is False
    request_path = target(rows, load.IMPRESSION_REQUEST_COST_METRIC)
    assert (request_path["measured"], request_path["passed"]) == (1.0, True)


def test_the_light_load_target_comes_from_the_light_load_rounds_alone():
    flat_out = rounds({OFF: 100.0, LOGGED: 160.0}, {LOGGED: 120.0, OFF: 90.0})
    light = rounds({OFF: 20.0, LOGGED: 21.0}, {LOGGED: 22.5, OFF: 20.0}, {OFF: 19.0, LOGGED: 20.0})

    rows = load.evaluate_targets([], flat_out, light)

    assert (target(rows)["measured"], target(rows)["passed"]) == (45.0, False)
    light_row = target(rows, load.IMPRESSION_LIGHT_COST_METRIC)
    assert (light_row["measured"], light_row["threshold"], light_row["passed"]) == (1.0, 2.0, True)
    without = load.evaluate_targets([], flat_out)
    assert target(without, load.IMPRESSION_LIGHT_COST_METRIC)["passed"] is None


def test_the_light_load_rounds_5xx_count_too():
    light = [{LOGGED: result(12.0, status_5xx=1), OFF: result(11.0)}]
    (row,) = [r for r in load.evaluate_targets([], [], light) if r["metric"] == "status_5xx"]
    assert (row["measured"], row["passed"]) == (1, False)


def test_the_added_cpu_is_split_by_process_group_with_the_rest_as_other():
    spent = {"server": 2.0, "postgres": 0.5, "redis": 0.1, "wrk": 0.3, "bench": 0.1}
    by_group = load.cpu_ms_per_request_by_group(spent=spent, host_seconds=3.5, requests=1000)
    assert by_group == {"server": 2.0, "postgres": 0.5, "redis": 0.1, "wrk": 0.3, "bench": 0.1,
                        "other": 0.5}  # fmt: skip

    measured = rounds({OFF: 11.0, LOGGED: 12.0}, {LOGGED: 13.0, OFF: 12.0}, {OFF: 9.0, LOGGED: 9.5})
    for round_, (server_off, server_logged, postgres_logged) in zip(
        measured, ((2.0, 2.1, 0.9), (2.2, 2.2, 0.7), (2.0, 2.4, 0.8)), strict=True
    ):
        round_[OFF].cpu_ms_per_request_by_group = {"server": server_off, "postgres": 0.5}
        round_[LOGGED].cpu_ms_per_request_by_group = {
            "server": server_logged,
            "postgres": postgres_logged,
        }
    added = load.impression_logging_cost(measured)["cpu_added_ms_per_request_by_group"]
    assert added == {"server": 0.1, "postgres": 0.3}  # medians of (0.1, 0, 0.4), (0.4, 0.2, 0.3)


def test_a_snapshot_pair_counts_new_processes_from_zero_and_skips_ended_ones():
    before = {(1, 10.0): ("server", 5.0), (2, 10.0): ("postgres", 1.0), (3, 10.0): ("wrk", 9.0)}
    after = {
        (1, 10.0): ("server", 6.5),
        (2, 10.0): ("postgres", 1.25),
        (4, 20.0): ("postgres", 0.5),
    }
    spent = stack.cpu_spent_by_group(before, after)
    assert spent == {"server": 1.5, "postgres": 0.75, "redis": 0.0, "wrk": 0.0, "bench": 0.0}


def test_a_live_snapshot_finds_this_process_as_the_bench():
    snapshot = stack.cpu_seconds_by_process()
    assert any(group == "bench" for group, _ in snapshot.values())
    assert all(group in stack.CPU_GROUPS and seconds >= 0 for group, seconds in snapshot.values())


def test_without_a_paired_round_the_cost_is_not_measured():
    unpaired = rounds({LOGGED: 12.0}, {OFF: 11.0})
    assert load.impression_logging_cost(unpaired) is None
    assert load.impression_logging_cost([]) is None
    assert target(load.evaluate_targets([], unpaired))["passed"] is None


def test_the_5xx_target_counts_the_rounds_runs_too():
    measured = [{LOGGED: result(12.0), OFF: result(11.0, status_5xx=2)}]
    (row,) = [r for r in load.evaluate_targets([], measured) if r["metric"] == "status_5xx"]
    assert (row["measured"], row["passed"]) == (2, False)


def test_the_printed_targets_show_the_cost_in_milliseconds(capsys):
    measured, light = rounds({LOGGED: 14.0, OFF: 11.0}), rounds({LOGGED: 12.5, OFF: 11.0})
    load.print_targets(load.evaluate_targets([], measured, light), connections=32)
    lines = capsys.readouterr().out.splitlines()
    full = next(text for text in lines if "impression logging adds" in text)
    assert "<= 2.00 ms" in full and "3.00 ms" in full and full.endswith("FAIL")
    light_line = next(text for text in lines if "impression logging, light" in text)
    assert "<= 2.00 ms" in light_line and "1.50 ms" in light_line
    assert light_line.endswith("PASS")


@pytest.mark.parametrize("number", [3, 6])
def test_each_condition_runs_equally_often_at_each_place_in_a_round(number):
    orders = load.impression_round_orders(number)

    assert len(orders) == number
    for order in orders:
        assert sorted(order) == sorted(load.IMPRESSION_CONDITIONS)
    for place in range(len(load.IMPRESSION_CONDITIONS)):
        counts = collections.Counter(order[place] for order in orders)
        assert counts == {condition: number // 3 for condition in load.IMPRESSION_CONDITIONS}


def test_the_rounds_replay_the_warm_rec_user_requests():
    assert load.IMPRESSION_SCENARIO == "rec_user"
    assert load.IMPRESSION_SCENARIO in load.WARMED_SCENARIOS


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


@pytest.mark.django_db(transaction=True)
def test_drain_writes_a_backlog_of_several_batches(monkeypatch):
    user, tracks = UserFactory(), TrackFactory.create_batch(2)
    # Runs of one batch of 2 lists: the backlog takes three.
    flush = functools.partial(services.impressions_flush, max_batches=1, batch_lists=2)
    monkeypatch.setattr(services, "impressions_flush", flush)
    for _ in range(5):
        impressions_log(
            user_id=user.pk, surface="api_rec", request_id=uuid.uuid4(),
            track_ids=[t.pk for t in tracks], model_version_id=None, pipeline="",
        )  # fmt: skip
    flusher = load.ImpressionFlusher(interval_s=3600)

    flusher.drain()

    assert Impression.objects.count() == 5
    assert flusher.totals["runs"] == 4  # 2 + 2 + 1 lists, then an empty run
    flusher.drain()
    assert flusher.totals["lists"] == 5


def test_the_rounds_record_keeps_each_runs_order_and_the_cost_the_report_reads():
    measured = rounds({OFF: 11.0, LOGGED: 12.0}, {LOGGED: 14.0, OFF: 11.5})
    record = load.impression_rounds_record(measured)
    assert [entry["order"] for entry in record["rounds"]] == [[OFF, LOGGED], [LOGGED, OFF]]
    assert record["rounds"][1]["runs"][LOGGED]["latency_ms"]["p99"] == 14.0
    assert record["cost"]["added_p99_ms_per_round"] == [1.0, 2.5]
    assert load.impression_rounds_record([]) == {"cost": None, "rounds": []}
