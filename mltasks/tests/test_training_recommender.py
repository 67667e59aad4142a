"""User-recommender training end to end on a small demo world, and the API that serves it."""

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from feedback.models import Interaction
from mltasks.artifact_store import artifact_directory_of
from mltasks.models import ModelVersion, TrackVector, UserVector
from mltasks.tests.conftest import trained_version


@pytest.fixture(scope="module")
def recommender_version(small_world, django_db_blocker, tmp_path_factory):
    yield from trained_version(
        kind="recommender", django_db_blocker=django_db_blocker, tmp_path_factory=tmp_path_factory
    )


@pytest.mark.django_db
def test_training_stores_metrics_for_the_model_and_every_baseline(recommender_version):
    version = ModelVersion.objects.get(pk=recommender_version.pk)
    assert version.status == ModelVersion.Status.ACTIVE
    models = version.metrics["models"]
    assert {"MostPop", "ItemKNN", "EASE", "LightGCN"} <= set(models)
    served = version.metrics["served"]
    assert models[served]["valid"]["nDCG@20"] > models["MostPop"]["valid"]["nDCG@20"]
    for name in ("MostPop", "ItemKNN", "EASE", "LightGCN"):
        assert 0 <= models[name]["test"]["nDCG@20"] <= 1
        assert 0 < models[name]["test"]["Coverage@100"] <= 1
    assert version.history and "loss" in version.history[0]
    assert version.params["trained_until"]


@pytest.mark.django_db
def test_vectors_are_in_pgvector_and_faiss(recommender_version):
    version = ModelVersion.objects.get(pk=recommender_version.pk)
    directory = artifact_directory_of(version_id=version.pk, artifact_path=version.artifact_path)
    for name in ("items.flat-ip.faiss", "items.hnsw-ip.faiss", "items.hnsw-cos.faiss"):
        assert (directory / name).exists()
    with np.load(directory / "vectors.npz") as arrays:
        n_items, n_users = len(arrays["track_ids"]), len(arrays["user_ids"])
    assert TrackVector.objects.filter(model_version=version).count() == n_items
    assert UserVector.objects.filter(model_version=version).count() == n_users
    assert n_users == Interaction.objects.values("user").distinct().count()


@pytest.mark.django_db
def test_trained_recommendations_exclude_history_and_agree_across_backends(
    api_client, recommender_version
):
    user = get_user_model().objects.get(username="demo")
    api_client.force_authenticate(user)
    seen = set(Interaction.objects.filter(user=user).values_list("track_id", flat=True))
    lists = {}
    for backend in ("exact", "faiss", "pgvector"):
        response = api_client.get(f"/api/rec/users/{user.pk}?n=20&backend={backend}")
        assert response.status_code == 200
        body = response.json()
        assert body["model_version"] == recommender_version.pk
        lists[backend] = [i["track_id"] for i in body["items"]]
    assert len(lists["exact"]) == 20
    assert not set(lists["exact"]) & seen
    assert lists["faiss"] == lists["exact"] == lists["pgvector"]
