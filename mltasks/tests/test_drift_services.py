import logging
import random
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from prometheus_client import REGISTRY

from catalog.tests.factories import TrackFactory
from feedback.context import interaction_context
from feedback.models import Interaction
from mltasks import served_scores
from mltasks.drift_services import drift_report_create
from mltasks.drift_tasks import drift_check
from mltasks.models import DriftReport, ModelVersion
from mltasks.served_scores import served_scores_record

NOW = datetime(2026, 3, 1, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def _listen(users, tracks, *, start, days, hours, seed):
    """Six sessions of 3–6 plays per user, at distinct (day, hour) slots of the window."""
    rng = random.Random(seed)
    slots = [(day, hour) for day in range(days) for hour in hours]
    rows = []
    for user in users:
        for day, hour in rng.sample(slots, k=min(6, len(slots))):
            at = start + timedelta(days=day, hours=hour)
            for _ in range(rng.randint(3, 6)):
                track = tracks[min(int(rng.paretovariate(1.2)) - 1, len(tracks) - 1)]
                hour, day_of_week = interaction_context(occurred_at=at)
                rows.append(
                    Interaction(user=user, track=track, kind="play", occurred_at=at,
                                hour=hour, day_of_week=day_of_week)
                )  # fmt: skip
                at += timedelta(minutes=4)
    Interaction.objects.bulk_create(rows)


@pytest.fixture
def listeners():
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"drift-listener-{n}") for n in range(100)
    )  # no password hashing; 600 sessions a window: enough for a 24-bin PSI
    return users, TrackFactory.create_batch(30)


def test_without_an_active_model_the_recent_week_is_compared_with_the_week_before(
    listeners, caplog
):
    users, tracks = listeners
    _listen(users, tracks, start=NOW - timedelta(days=14), days=7, hours=[6, 9, 12], seed=1)
    _listen(users, tracks, start=NOW - timedelta(days=7), days=7, hours=[19, 22], seed=2)

    with caplog.at_level(logging.WARNING, logger="mltasks.drift_services"):
        report = drift_report_create(window_days=7, psi_threshold=0.2, window_end=NOW)

    report.refresh_from_db()
    assert report.reference_source == DriftReport.ReferenceSource.PRECEDING_WINDOW
    assert report.reference_version is None
    assert (report.window_start, report.window_end) == (NOW - timedelta(days=7), NOW)
    assert (report.reference_start, report.reference_end) == (
        NOW - timedelta(days=14),
        NOW - timedelta(days=7),
    )
    assert any("no active recommender model" in note for note in report.notes)
    hour = report.features["hour_of_day"]
    assert hour["drifted"] and hour["psi"] > 1 and hour["ks_pvalue"] < 1e-6
    assert report.features["item_popularity"]["psi"] < 0.2  # same taste, other hours
    assert report.features["session_length"]["n_current"] == 100 * 6
    assert report.features["served_score"]["psi"] is None
    assert "no active recommender model" in report.features["served_score"]["note"]
    assert report.drifted
    drift_warnings = [r for r in caplog.records if getattr(r, "feature", None) == "hour_of_day"]
    assert drift_warnings and drift_warnings[0].levelno == logging.WARNING
    assert REGISTRY.get_sample_value("tunedin_drift_psi", {"feature": "hour_of_day"}) == (
        pytest.approx(hour["psi"])
    )
    assert REGISTRY.get_sample_value(
        "tunedin_drift_ks_pvalue", {"feature": "hour_of_day"}
    ) == pytest.approx(hour["ks_pvalue"])


def test_stable_listening_is_not_reported_as_drift(listeners):
    users, tracks = listeners
    _listen(users, tracks, start=NOW - timedelta(days=14), days=7, hours=[8, 18, 22], seed=3)
    _listen(users, tracks, start=NOW - timedelta(days=7), days=7, hours=[8, 18, 22], seed=4)

    report = drift_report_create(window_days=7, psi_threshold=0.2, window_end=NOW)

    assert not report.drifted
    for name in ("item_popularity", "hour_of_day", "session_length"):
        assert report.features[name]["psi"] < 0.2, name
        assert report.features[name]["n_reference"] > 50


def test_a_few_sessions_are_too_few_to_report_drift(listeners):
    users, tracks = listeners
    _listen(users[:10], tracks, start=NOW - timedelta(days=14), days=7, hours=[6], seed=8)
    _listen(users[:10], tracks, start=NOW - timedelta(days=7), days=7, hours=[22], seed=9)

    report = drift_report_create(window_days=7, window_end=NOW)

    hour = report.features["hour_of_day"]
    assert hour["psi"] is None and not hour["drifted"]
    assert hour["note"] == (
        "skipped: 60 sessions in a window, PSI over 24 bins needs 460 to tell drift from noise"
    )
    assert (hour["n_reference"], hour["n_current"]) == (
        Interaction.objects.filter(occurred_at__lte=NOW - timedelta(days=7)).count(),
        Interaction.objects.filter(occurred_at__gt=NOW - timedelta(days=7)).count(),
    )
    assert not report.drifted


def test_the_active_models_training_window_is_the_reference(listeners):
    users, tracks = listeners
    trained_until = NOW - timedelta(days=10)
    _listen(users, tracks, start=trained_until - timedelta(days=20), days=20, hours=[9], seed=5)
    _listen(users, tracks, start=NOW - timedelta(days=7), days=7, hours=[9], seed=6)
    version = ModelVersion.objects.create(
        kind="recommender",
        algorithm="lightgcn",
        params={"trained_until": trained_until.isoformat(), "data_window": 20},
    )
    version.activate()

    report = drift_report_create(window_days=7, window_end=NOW)

    assert report.reference_source == DriftReport.ReferenceSource.TRAINING_WINDOW
    assert report.reference_version == version
    assert (report.reference_start, report.reference_end) == (
        trained_until - timedelta(days=20),
        trained_until,
    )
    assert report.psi_threshold == 0.2  # settings.DRIFT_PSI_THRESHOLD
    assert report.features["hour_of_day"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert f"model version {version.pk}" in report.features["served_score"]["note"]


def test_a_model_without_a_recorded_window_uses_the_days_before_it_was_trained(listeners):
    users, tracks = listeners
    version = ModelVersion.objects.create(kind="recommender", algorithm="ease", params={})
    ModelVersion.objects.filter(pk=version.pk).update(trained_at=NOW - timedelta(days=3))
    version.refresh_from_db()
    version.activate()

    report = drift_report_create(window_days=7, window_end=NOW)

    assert report.reference_end == NOW - timedelta(days=3)
    assert report.reference_start == NOW - timedelta(days=10)
    assert any("no params.trained_until" in note for note in report.notes)
    assert any("overlaps" in note for note in report.notes)
    assert all(feature["psi"] is None for feature in report.features.values())
    assert not report.drifted


def test_served_scores_drift_once_enough_scores_are_recorded():
    version = ModelVersion.objects.create(kind="recommender", algorithm="lightgcn")
    version.activate()
    rng = random.Random(9)
    served_scores_record(model_version_id=version.pk, scores=[], sample_rate=1.0)  # no-op
    for batch in range(10):
        centre = 0.3 if batch < 5 else 0.7
        scores = [rng.gauss(centre, 0.05) for _ in range(served_scores.SERVED_SCORES_KEPT // 5)]
        served_scores_record(model_version_id=version.pk, scores=scores, sample_rate=1.0)

    report = drift_report_create(window_days=7, window_end=NOW)

    served = report.features["served_score"]
    assert (served["n_reference"], served["n_current"]) == (5000, 5000)
    assert served["drifted"] and served["ks_pvalue"] < 1e-6


def test_sampling_keeps_most_calls_off_redis(monkeypatch):
    calls = []
    monkeypatch.setattr(served_scores.random, "random", lambda: 0.5)
    monkeypatch.setattr(served_scores, "_keys", lambda pk: calls.append(pk))
    served_scores_record(model_version_id=1, scores=[0.1], sample_rate=0.05)
    assert calls == []


def test_drift_report_command_prints_a_table(listeners):
    users, tracks = listeners
    _listen(users, tracks, start=NOW - timedelta(days=14), days=14, hours=[12], seed=7)
    out = StringIO()

    call_command("drift_report", "--window-days", "7", "--until", NOW.isoformat(), stdout=out)

    text = out.getvalue()
    assert "Drift report #" in text
    assert "The window before the recent one" in text
    for name in ("item_popularity", "hour_of_day", "session_length", "served_score"):
        assert name in text
    assert DriftReport.objects.count() == 1


def test_drift_check_task_stores_a_report():
    result = drift_check.apply(kwargs={"window_days": 3}).get()
    report = DriftReport.objects.get(pk=result["drift_report"])
    assert result == {"drift_report": report.pk, "drifted": False}
    assert report.window_end - report.window_start == timedelta(days=3)


def test_a_daily_beat_entry_runs_the_drift_check():
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.get(task="mltasks.tasks.drift_check")
    assert entry.enabled
    assert (entry.crontab.minute, entry.crontab.hour, entry.crontab.day_of_week) == ("30", "4", "*")
