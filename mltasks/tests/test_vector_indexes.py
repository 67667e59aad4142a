"""Each model version's pgvector rows get their own HNSW index, built after the rows are copied
in and dropped with them."""

import numpy as np
import pytest
from django.db import connection

from catalog.tests.factories import TrackFactory, UserFactory
from mltasks.ml.artifacts import ServingVectors
from mltasks.models import ModelVersion, TrackVector, UserVector
from mltasks.services import model_version_activate
from mltasks.training.publish import vectors_store
from mltasks.vector_indexes import (
    VECTOR_MODELS,
    orphan_version_indexes_drop,
    version_index_name,
    version_indexes,
)


def _index_definitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'"
        )
        return dict(cursor.fetchall())


def _stored_version(*, kind: str, tracks, users=None, seed: int = 0) -> ModelVersion:
    rng = np.random.default_rng(seed)
    version = ModelVersion.objects.create(kind=kind, algorithm="planted", status="ready")
    vectors_store(
        version=version,
        vectors=ServingVectors(
            track_ids=np.array([t.pk for t in tracks]),
            item_vectors=rng.standard_normal((len(tracks), 8)),
            user_ids=None if users is None else np.array([u.pk for u in users]),
            user_vectors=None if users is None else rng.standard_normal((len(users), 8)),
        ),
    )
    return version


@pytest.mark.django_db
def test_storing_a_versions_vectors_builds_its_own_hnsw_indexes():
    tracks, users = TrackFactory.create_batch(6), UserFactory.create_batch(3)
    recommender = _stored_version(kind="recommender", tracks=tracks, users=users)
    continuation = _stored_version(kind="continuation", tracks=tracks[:4])
    definitions = _index_definitions()
    for model, version in (
        (TrackVector, recommender),
        (UserVector, recommender),
        (TrackVector, continuation),
    ):
        definition = definitions[version_index_name(model=model, version_id=version.pk)]
        assert "vector_cosine_ops" in definition
        assert f"WHERE (model_version_id = {version.pk})" in definition
    # No user vectors, no user index; and no index over every version's rows.
    assert version_index_name(model=UserVector, version_id=continuation.pk) not in definitions
    assert all("WHERE (model_version_id = " in definition for definition in definitions.values())


@pytest.mark.django_db
def test_activation_drops_the_retired_versions_indexes_with_their_rows():
    tracks, users = TrackFactory.create_batch(5), UserFactory.create_batch(2)
    old = _stored_version(kind="recommender", tracks=tracks, users=users)
    continuation = _stored_version(kind="continuation", tracks=tracks)
    model_version_activate(version=old)
    model_version_activate(version=continuation)
    new = _stored_version(kind="recommender", tracks=tracks, users=users, seed=1)
    model_version_activate(version=new)
    ours = {old.pk, new.pk, continuation.pk}  # other tests' committed versions may have some
    assert ours & set(version_indexes(model=TrackVector).values()) == {new.pk, continuation.pk}
    assert ours & set(version_indexes(model=UserVector).values()) == {new.pk}
    # Rolling back puts the old version's rows back, and its index with them.
    old.artifact_path = ""
    old.save(update_fields=["artifact_path"])
    vectors_store(
        version=old,
        vectors=ServingVectors(track_ids=np.array([t.pk for t in tracks]),
                               item_vectors=np.ones((5, 8))),
    )  # fmt: skip
    model_version_activate(version=old)
    assert ours & set(version_indexes(model=TrackVector).values()) == {old.pk, continuation.pk}


@pytest.mark.django_db
def test_an_index_whose_version_was_deleted_is_dropped_as_an_orphan():
    tracks = TrackFactory.create_batch(3)
    version = _stored_version(kind="continuation", tracks=tracks)
    name = version_index_name(model=TrackVector, version_id=version.pk)
    version.delete()  # the rows go by cascade; the index stays until the next clean-up
    assert name in version_indexes(model=TrackVector)
    assert name in orphan_version_indexes_drop()
    assert name not in version_indexes(model=TrackVector)
    assert orphan_version_indexes_drop() == []


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_indexes_are_built_and_dropped_concurrently_and_valid():
    tracks, users = TrackFactory.create_batch(4), UserFactory.create_batch(2)
    old = _stored_version(kind="recommender", tracks=tracks, users=users)
    model_version_activate(version=old)
    new = _stored_version(kind="recommender", tracks=tracks, users=users, seed=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE %s",
            ["%\\_hnsw\\_v%"],
        )
        validity = dict(cursor.fetchall())
    for model in (TrackVector, UserVector):
        for version in (old, new):
            assert validity[version_index_name(model=model, version_id=version.pk)] is True
    model_version_activate(version=new)
    for model in (TrackVector, UserVector):
        assert {old.pk, new.pk} & set(version_indexes(model=model).values()) == {new.pk}


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_indexes_existing_versions_concurrently_before_dropping_the_global_index():
    from django.db.migrations.executor import MigrationExecutor
    from django.test.utils import CaptureQueriesContext

    tracks, users = TrackFactory.create_batch(5), UserFactory.create_batch(2)
    version = _stored_version(kind="recommender", tracks=tracks, users=users)
    own_indexes = {version_index_name(model=m, version_id=version.pk) for m in VECTOR_MODELS}
    global_indexes = {"track_vector_hnsw_cosine", "user_vector_hnsw_cosine"}
    before, latest = (
        ("mltasks", "0005_interleaving_test"),
        ("mltasks", "0006_per_version_hnsw_indexes"),
    )

    executor = MigrationExecutor(connection)
    executor.migrate([before])  # as a site was before the upgrade: one index over every version
    assert global_indexes <= set(_index_definitions()) and not own_indexes & set(
        _index_definitions()
    )

    executor = MigrationExecutor(connection)
    with CaptureQueriesContext(connection) as queries:
        executor.migrate([latest])

    statements = [query["sql"] for query in queries.captured_queries]
    creates = [s for s in statements if s.startswith("CREATE INDEX CONCURRENTLY")]
    drops = [s for s in statements if s.startswith("DROP INDEX CONCURRENTLY")]
    assert len(creates) == 2 and all(f"model_version_id = {version.pk}" in s for s in creates)
    assert len(drops) == 2
    # Built before the global indexes were dropped: serving had an index all along.
    assert statements.index(creates[-1]) < statements.index(drops[0])
    definitions = _index_definitions()
    assert own_indexes <= set(definitions) and not global_indexes & set(definitions)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_and(i.indisvalid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = ANY(%s)",
            [sorted(own_indexes)],
        )
        assert cursor.fetchone()[0] is True
