"""The default retrieval backend, `auto`: exact search on a small catalog, FAISS HNSW above
RETRIEVAL_APPROXIMATE_ABOVE tracks (what each request used is the metric's backend label)."""

import pytest
from prometheus_client import REGISTRY

from recommendations.tests.test_rec_api import rec_url


def searches(backend: str) -> float:
    value = REGISTRY.get_sample_value(
        "tunedin_ann_search_seconds_count", {"kind": "recommender", "backend": backend}
    )
    return value or 0.0


@pytest.mark.django_db
@pytest.mark.parametrize(("approximate_above", "expected"), [(10_000, "exact"), (5, "faiss-hnsw")])
def test_auto_searches_exactly_below_the_size_and_approximately_above(
    api_client, planted_world, settings, approximate_above, expected
):
    settings.RETRIEVAL_BACKEND = "auto"
    settings.RETRIEVAL_APPROXIMATE_ABOVE = approximate_above
    fan_of_a = planted_world["users"][0]
    api_client.force_authenticate(fan_of_a)
    before = {backend: searches(backend) for backend in ("exact", "faiss-hnsw")}

    items = api_client.get(rec_url(fan_of_a, n=10)).json()["items"]

    assert len(items) == 10
    other = "faiss-hnsw" if expected == "exact" else "exact"
    assert searches(expected) == before[expected] + 1
    assert searches(other) == before[other]
