"""A real serving version built from known vectors (no training), for fast API tests."""

import numpy as np
import pytest

from catalog.tests.factories import ArtistFactory, TrackFactory, UserFactory
from mltasks.ml.artifacts import ServingVectors
from recommendations.serving import active_states
from recommendations.tests.planted import planted_recommender


@pytest.fixture(autouse=True)
def _fresh_serving_state():
    active_states.reset()
    yield
    active_states.reset()


@pytest.fixture
def planted_world(db, settings, tmp_path):
    """Two "genres" of 20 tracks each, in orthogonal directions; a user who likes genre A."""
    settings.ARTIFACTS_DIR = tmp_path
    rng = np.random.default_rng(0)
    artists = ArtistFactory.create_batch(4)
    tracks = [TrackFactory(artist=artists[i // 10]) for i in range(40)]
    users = UserFactory.create_batch(3)
    direction = np.zeros((40, 16), dtype=np.float32)
    direction[:20, 0] = 1.0  # genre A
    direction[20:, 1] = 1.0  # genre B
    item_vectors = direction + 0.005 * rng.standard_normal((40, 16)).astype(np.float32)
    # popularity inside a genre: earlier tracks score higher
    item_vectors[:, 0] *= np.r_[np.linspace(2, 1, 20), np.ones(20)]
    item_vectors[:, 1] *= np.r_[np.ones(20), np.linspace(2, 1, 20)]
    user_vectors = np.zeros((3, 16), dtype=np.float32)
    user_vectors[0, 0] = 1.0  # likes genre A
    user_vectors[1, 1] = 1.0  # likes genre B
    user_vectors[2, 0] = 0.9  # a genre-A neighbour of user 0
    vectors = ServingVectors(
        track_ids=np.array([t.pk for t in tracks]),
        item_vectors=item_vectors,
        user_ids=np.array([u.pk for u in users]),
        user_vectors=user_vectors,
    )
    version = planted_recommender(directory=tmp_path, vectors=vectors)
    return {"version": version, "tracks": tracks, "users": users}
