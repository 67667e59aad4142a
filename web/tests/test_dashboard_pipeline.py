"""The model dashboard says which pipeline serves and why, shows every model's validation,
selection and test metrics, and draws the ranker's feature importances."""

import re

import pytest
from django.test import Client

from catalog.tests.factories import UserFactory
from mltasks.models import ModelVersion
from web.charts import bar_chart
from web.dashboard import PipelineChoice

pytestmark = pytest.mark.django_db

METRICS = {
    "served": "TunedIn-ranker",
    "models": {
        "EASE": {
            "valid": {"nDCG@20": 0.21},
            "selection": {"nDCG@20": 0.20},
            "test": {"nDCG@20": 0.19},
        },
        "TunedIn-ranker": {
            "valid": {"nDCG@20": 0.23},
            "selection": {"nDCG@20": 0.23},
            "test": {"nDCG@20": 0.22},
        },
    },  # fmt: skip
    "selection": {
        "served": "TunedIn-ranker",
        "reason": "TunedIn-ranker has the best validation nDCG@20 (0.2300) on the selection half",
        "protocol": "validation users split in two seeded halves",
        "ranker": "trained",
    },
    "vectors_model": "LightGCN",
    "ranker": {
        "feature_importances": {"EASE:score": 900.0, "LightGCN:rank": 300.0, "log_popularity": 0.0}
    },  # fmt: skip
}


def test_bars_are_scaled_to_the_largest_value_and_zeros_are_left_out():
    chart = bar_chart({"a": 50.0, "b": 200.0, "c": 0.0, "d": "n/a"}, title="t", limit=5)
    assert [bar.name for bar in chart.bars] == ["b", "a"]
    assert [bar.share for bar in chart.bars] == [1.0, 0.25]
    assert chart.bars[0].width == 4 * chart.bars[1].width
    assert bar_chart({"a": 0.0}, title="t") is None


def test_a_version_from_before_pipelines_has_no_pipeline_choice():
    assert PipelineChoice.of({"served": "LightGCN", "models": {}}) is None


def test_the_dashboard_shows_the_served_pipeline_its_reason_and_the_importances():
    ModelVersion.objects.create(
        kind=ModelVersion.Kind.RECOMMENDER, algorithm="tunedin-ranker",
        status=ModelVersion.Status.ACTIVE, metrics=METRICS,
    )  # fmt: skip
    staff = Client()
    staff.force_login(UserFactory(is_staff=True))

    page = staff.get("/dashboard/models/").content.decode()

    assert "Served pipeline: TunedIn-ranker." in page
    assert METRICS["selection"]["reason"] in page
    assert "use the vectors of LightGCN" in page
    svg = re.search(r'<figure class="chart importances">.*?</figure>', page, re.S).group(0)
    assert svg.index("EASE:score") < svg.index("LightGCN:rank")
    assert "log_popularity" not in svg
    assert "selection nDCG@20" in page and "0.2000" in page  # every model's selection metric
