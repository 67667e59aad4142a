"""Serving a version's saved pipeline (not its vectors): an item-item recommender and a Markov
continuation, planted with known weights, answer the API in the pipeline's order, with reasons
that name the history track behind each recommendation."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from catalog.tests.factories import ArtistFactory, TrackFactory, UserFactory
from feedback.tests.factories import InteractionFactory
from mltasks.ml.artifacts import SERVED_PIPELINE_FOLDER, ServingVectors, save_scorer
from mltasks.ml.scorers.item_item import ItemItemScorer
from mltasks.ml.scorers.sequence import MarkovScorer
from mltasks.models import ModelVersion
from mltasks.services import model_version_activate
from mltasks.training.publish import serving_vectors_publish
from recommendations.tests.planted import planted_continuation


def published(*, kind, directory: Path, vectors: ServingVectors, pipeline) -> ModelVersion:
    version = ModelVersion.objects.create(
        kind=kind, algorithm=pipeline.family, status=ModelVersion.Status.READY,
        metrics={"served": pipeline.family, "models": {}},
    )  # fmt: skip
    artifacts = directory / kind / str(version.pk)
    artifacts.mkdir(parents=True)
    save_scorer(pipeline, artifacts / SERVED_PIPELINE_FOLDER)
    serving_vectors_publish(version=version, directory=artifacts, vectors=vectors)
    version.artifact_path = str(artifacts)
    version.save(update_fields=["artifact_path"])
    model_version_activate(version=version)
    return version


@pytest.fixture
def item_item_world(db, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    artist = ArtistFactory()
    tracks = [TrackFactory(artist=artist) for _ in range(10)]
    # Track 0's neighbours: 5 (0.9) and 6 (0.5); track 1's: 7 (0.8).
    weights = sp.csr_matrix(
        ([0.9, 0.5, 0.8], ([0, 0, 1], [5, 6, 7])), shape=(10, 10), dtype=np.float32
    )
    rng = np.random.default_rng(0)
    vectors = ServingVectors(
        track_ids=np.array([t.pk for t in tracks]),
        item_vectors=rng.standard_normal((10, 4)).astype(np.float32),
        user_ids=np.zeros(0, dtype=np.int64),
        user_vectors=np.zeros((0, 4), dtype=np.float32),
    )
    version = published(
        kind=ModelVersion.Kind.RECOMMENDER, directory=tmp_path, vectors=vectors,
        pipeline=ItemItemScorer(weights=weights, source="EASE"),
    )  # fmt: skip
    return version, tracks


@pytest.mark.django_db
def test_recommendations_follow_the_served_item_item_pipeline_with_its_reasons(
    api_client, item_item_world
):
    version, tracks = item_item_world
    listener = UserFactory()
    InteractionFactory(user=listener, track=tracks[0], kind="like")
    InteractionFactory(user=listener, track=tracks[1], kind="play")
    api_client.force_authenticate(listener)

    body = api_client.get(f"/api/rec/users/{listener.pk}?n=5").json()

    assert body["model_version"] == version.pk
    returned = [item["track_id"] for item in body["items"]]
    assert returned[:3] == [tracks[5].pk, tracks[7].pk, tracks[6].pk]
    assert not {tracks[0].pk, tracks[1].pk} & set(returned)
    reasons = {item["track_id"]: item["reason"] for item in body["items"]}
    assert reasons[tracks[5].pk] == f"Because you liked “{tracks[0].title}”"
    assert reasons[tracks[7].pk] == f"Because you listened to “{tracks[1].title}”"


@pytest.mark.django_db
def test_continuation_follows_the_served_markov_pipeline(api_client, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    tracks = [TrackFactory() for _ in range(6)]
    track_ids = [t.pk for t in tracks]
    neural = planted_continuation(directory=tmp_path, track_ids=track_ids, activate=False)
    # After track 2 come 4 (0.7), then 1 (0.3); popularity ranks the rest.
    transitions = sp.csr_matrix(([0.7, 0.3], ([2, 2], [4, 1])), shape=(6, 6), dtype=np.float32)
    markov = MarkovScorer(transitions=transitions, fallback=np.arange(6)[::-1] * 1e-3)
    directory = Path(neural.artifact_path)
    save_scorer(markov, directory / SERVED_PIPELINE_FOLDER)
    model_version_activate(version=neural)
    api_client.force_authenticate(UserFactory())

    body = api_client.post(
        "/api/continue",
        {"tracks": [track_ids[0], track_ids[2]], "k": 3, "max_per_artist": None},
        format="json",
    ).json()

    assert [item["track_id"] for item in body["items"]] == [
        track_ids[4],
        track_ids[1],
        track_ids[3],
    ]
