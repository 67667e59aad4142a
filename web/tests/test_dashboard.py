"""The staff model dashboard: versions, training curves, activation, rollback, retraining."""

import pytest
from django.test import Client

from catalog.tests.factories import UserFactory
from mltasks.models import ModelVersion
from web.charts import history_charts, metrics_table
from web.dashboard import ActivationDecision

pytestmark = pytest.mark.django_db

HISTORY = [
    {"epoch": 1, "loss": 0.9, "epoch_seconds": 1.0},
    {"epoch": 2, "loss": 0.5, "valid_nDCG@20": 0.10, "epoch_seconds": 1.0},
    {"epoch": 3, "loss": 0.4, "epoch_seconds": 1.0},
    {"epoch": 4, "loss": 0.45, "valid_nDCG@20": 0.14, "epoch_seconds": 1.0},
]
METRICS = {
    "served": "LightGCN",
    "models": {
        "LightGCN": {"valid": {"nDCG@20": 0.14}, "test": {"nDCG@20": 0.13}},
        "MostPop": {"valid": {"nDCG@20": 0.05}, "test": {"nDCG@20": 0.04}},
    },
}


@pytest.fixture
def staff():
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    return client


def version(status, **fields):
    return ModelVersion.objects.create(
        kind=ModelVersion.Kind.RECOMMENDER, algorithm="lightgcn", status=status,
        metrics=METRICS, history=HISTORY, **fields,
    )  # fmt: skip


def test_history_becomes_one_chart_per_series_skipping_timings():
    charts = {chart.name: chart for chart in history_charts(HISTORY)}

    assert set(charts) == {"loss", "valid_nDCG@20"}
    assert len(charts["loss"].dots) == 4 and len(charts["valid_nDCG@20"].dots) == 2
    assert (charts["loss"].best_value, charts["loss"].best_epoch) == (0.4, 3)  # lower is better
    assert charts["valid_nDCG@20"].best_value == 0.14
    xs = [x for x, _ in charts["loss"].dots]
    assert xs == sorted(xs) and xs[0] == charts["loss"].left and xs[-1] == charts["loss"].right


def test_odd_histories_give_no_charts_rather_than_errors():
    assert history_charts([]) == []
    assert history_charts({"not": "a list"}) == []
    assert history_charts([{"epoch": 1, "note": "text"}, "junk"]) == []


def test_metrics_table_has_one_row_per_model_and_marks_the_served_one():
    table = metrics_table(METRICS)

    assert table.columns == ["valid nDCG@20", "test nDCG@20"]
    assert table.rows[0] == ("LightGCN", ["0.1400", "0.1300"])
    assert table.highlight == "LightGCN"
    assert metrics_table({"loss": 0.5}).rows == [("loss", ["0.5000"])]


def test_the_dashboard_is_for_staff_only(db):
    listener = Client()
    listener.force_login(UserFactory())

    assert Client().get("/dashboard/models/").status_code == 302  # to the login page
    assert listener.get("/dashboard/models/").status_code == 403


def test_the_dashboard_shows_versions_metrics_and_svg_charts(staff, django_assert_max_num_queries):
    active = version(ModelVersion.Status.ACTIVE)
    version(ModelVersion.Status.RETIRED)
    version(ModelVersion.Status.FAILED, error="Traceback: out of memory")

    with django_assert_max_num_queries(6):
        response = staff.get("/dashboard/models/")

    html = response.content.decode()
    assert f"#{active.pk} lightgcn" in html
    assert "<svg" in html and "<polyline" in html
    assert "LightGCN (served)" in html
    assert "Roll back to" in html
    assert "out of memory" in html
    assert "No active version" in html  # no continuation model


KEPT_READY = {
    "activated": False,
    "reason": "worse than the active version #7 on this run's validation split (identical "
    "split): nDCG@20 0.1300 < 0.1400",
    "metric": "nDCG@20",
    "new_metric": 0.13,
    "most_popular_metric": 0.05,
    "active_version": 7,
    "active_metric_on_new_split": 0.14,
    "held_out": "identical split",
    "comparison": {"evaluated": 57, "leak": {"note": "no leak on an identical split"}},
}


def test_activation_decisions_are_read_from_the_metrics_and_older_versions_have_none():
    decision = ActivationDecision.of({**METRICS, "activation": KEPT_READY})

    assert decision.activated is False
    assert (decision.active_version, decision.active_metric) == (7, 0.14)
    assert decision.held_out == "identical split"
    assert decision.leak_note == "no leak on an identical split"
    assert ActivationDecision.of(METRICS) is None
    assert ActivationDecision.of({"activation": "junk"}) is None


def test_the_dashboard_shows_each_versions_activation_decision_and_reason(
    staff, django_assert_max_num_queries
):
    activated = {"activated": True, "reason": "beats MostPop (nDCG@20 0.1400 > 0.0500); no "
                 "active version to compare with", "metric": "nDCG@20"}  # fmt: skip
    ModelVersion.objects.create(
        kind=ModelVersion.Kind.RECOMMENDER, algorithm="lightgcn", status="active",
        metrics={**METRICS, "activation": activated},
    )  # fmt: skip
    kept = ModelVersion.objects.create(
        kind=ModelVersion.Kind.RECOMMENDER, algorithm="ease-svd", status="ready",
        metrics={**METRICS, "activation": KEPT_READY},
    )  # fmt: skip
    version(ModelVersion.Status.RETIRED)  # trained before decisions were recorded

    with django_assert_max_num_queries(6):
        html = staff.get("/dashboard/models/").content.decode()

    assert "<strong>activated</strong>: beats MostPop" in html
    assert "<strong>kept ready</strong>: worse than the active version #7" in html
    assert (
        "Compared with #7 on identical split: nDCG@20 0.1300 (this version) against 0.1400" in html
    )
    assert "Leak: no leak on an identical split." in html
    assert f"Activate #{kept.pk}" in html  # staff can still activate it by hand


def test_activating_a_ready_version_retires_the_active_one(staff):
    old = version(ModelVersion.Status.ACTIVE)
    new = version(ModelVersion.Status.READY)

    response = staff.post(f"/dashboard/models/{new.pk}/activate/")

    old.refresh_from_db()
    new.refresh_from_db()
    assert response.status_code == 302
    assert (old.status, new.status) == ("retired", "active")


def test_rolling_back_to_a_retired_version(staff):
    retired = version(ModelVersion.Status.RETIRED)
    current = version(ModelVersion.Status.ACTIVE)

    response = staff.post(f"/dashboard/models/{retired.pk}/activate/", follow=True)

    retired.refresh_from_db()
    current.refresh_from_db()
    assert (retired.status, current.status) == ("active", "retired")
    assert f"Rolled back to user recommendations #{retired.pk}" in response.content.decode()


@pytest.mark.parametrize("status", [ModelVersion.Status.FAILED, ModelVersion.Status.TRAINING])
def test_a_failed_or_unfinished_version_cannot_be_activated(staff, status):
    broken = version(status)

    response = staff.post(f"/dashboard/models/{broken.pk}/activate/", follow=True)

    broken.refresh_from_db()
    assert broken.status == status
    assert "can be activated" in response.content.decode()


def test_retrain_queues_a_training_run(staff, monkeypatch):
    from mltasks import services

    queued = []
    monkeypatch.setattr(
        services, "training_enqueue", lambda *, kind: queued.append(kind) or "task-1"
    )

    response = staff.post("/dashboard/models/retrain/", {"kind": "continuation"}, follow=True)

    assert queued == ["continuation"]
    assert "Retraining queued" in response.content.decode()


def test_activation_and_retraining_need_staff_and_post(db):
    ready = version(ModelVersion.Status.READY)
    listener = Client()
    listener.force_login(UserFactory())

    assert listener.post(f"/dashboard/models/{ready.pk}/activate/").status_code == 403
    assert listener.post("/dashboard/models/retrain/", {"kind": "recommender"}).status_code == 403
    ready.refresh_from_db()
    assert ready.status == "ready"
