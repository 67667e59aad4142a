"""pgvector searches read the served version's own HNSW index, so another version's rows (the
other kind serves at the same time) can neither crowd out nor shorten the results."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.tests.factories import TrackFactory
from mltasks.ml.artifacts import ServingVectors
from mltasks.models import ModelVersion, TrackVector
from mltasks.training.publish import vectors_store
from mltasks.vector_indexes import version_index_name
from recommendations.selectors import tracks_similar_to


@pytest.mark.django_db
def test_similar_tracks_search_the_served_versions_index_only(planted_world):
    tracks, served = planted_world["tracks"], planted_world["version"]
    # A continuation version whose 150 vectors sit around the query track's, nearer to it than
    # any other track of the served version (and distinct: HNSW keeps equal vectors as one
    # node): in one graph over both versions, they would take every place of the search's
    # ef_search (100), and filtering on the version afterwards would leave nothing.
    query = np.asarray(
        TrackVector.objects.get(model_version=served, track=tracks[0]).embedding[:16]
    )
    crowd = TrackFactory.create_batch(150)
    continuation = ModelVersion.objects.create(kind="continuation", algorithm="x", status="ready")
    around = query + 0.003 * np.random.default_rng(1).standard_normal((150, 16))
    vectors_store(
        version=continuation,
        vectors=ServingVectors(track_ids=np.array([t.pk for t in crowd]), item_vectors=around),
    )
    with connection.cursor() as cursor:
        # Make the planner use an ordering index even on a table this small (the test's transaction
        # ends the setting).
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
    with CaptureQueriesContext(connection) as queries:
        similar = tracks_similar_to(track=tracks[0], n=10)
    assert len(similar) == 10
    assert {item.track.pk for item in similar} <= {t.pk for t in tracks[1:20]}  # genre A
    search = next(q["sql"] for q in queries.captured_queries if "<=>" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + search)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert version_index_name(model=TrackVector, version_id=served.pk) in plan
