"""One HNSW index per model version over its pgvector rows.

A version's track (and user) vectors get their own partial HNSW index, `WHERE model_version_id
= N`, built in one pass after the rows are copied in, and dropped once the version's rows are
gone. Two reasons:
- Building a graph over rows already in the table is far cheaper than maintaining one while
  they are copied: 20,000 vectors of 128 dimensions took 70 s to COPY into a table with a
  global HNSW index, and 0.8 s to COPY plus 10.9 s to index afterwards (embedded PostgreSQL 16,
  pgvector 0.6, 2 cores).
- A search filtered to one version walks that version's graph only. With one graph over every
  version's rows (both kinds serve at once), pgvector 0.6 takes the `hnsw.ef_search` nearest
  rows of all versions and filters them afterwards, so a search could come back short.

The searches filter on a literal version id (Django binds parameters on the client), which is
what lets PostgreSQL match the partial index.

Outside a transaction (a training run publishing its version, an activation) indexes are built
and dropped CONCURRENTLY, so serving goes on meanwhile: a like still writes the active
version's user vector during a new version's build, and a search is not queued behind a drop.
Inside one (the tests; a rolled-back version's rows put back during its activation) they are
built and dropped in place, which holds off writes to the table until the commit.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.conf import settings
from django.db import connection

from mltasks.models import TrackVector, UserVector

VECTOR_MODELS = (TrackVector, UserVector)
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def version_index_name(*, model, version_id: int) -> str:
    return f"{model._meta.db_table}_hnsw_v{int(version_id)}"


def _concurrently() -> bool:
    """CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block."""
    return not connection.in_atomic_block


def _deferred_checks_run() -> None:
    """Run the foreign-key checks that Django defers to the commit now: PostgreSQL refuses to
    create or drop an index on a table with pending checks in the same transaction (rows copied
    or deleted just before)."""
    if connection.in_atomic_block:
        connection.check_constraints()


@contextmanager
def _build_memory(cursor):
    """`VECTOR_INDEX_BUILD_MEMORY` as maintenance_work_mem while the indexes are built."""
    if connection.in_atomic_block:
        cursor.execute("SET LOCAL maintenance_work_mem = %s", [settings.VECTOR_INDEX_BUILD_MEMORY])
        yield
        return
    cursor.execute("SET maintenance_work_mem = %s", [settings.VECTOR_INDEX_BUILD_MEMORY])
    try:
        yield
    finally:
        cursor.execute("RESET maintenance_work_mem")


def _index_drop(cursor, name: str) -> None:
    _deferred_checks_run()
    how = "CONCURRENTLY " if _concurrently() else ""
    cursor.execute(f"DROP INDEX {how}IF EXISTS {connection.ops.quote_name(name)}")


def _invalid_index_exists(cursor, name: str) -> bool:
    """A concurrent build that failed leaves an invalid index, which no search uses."""
    cursor.execute(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %s",
        [name],
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def version_indexes_build(*, version_id: int) -> list[str]:
    """Build the HNSW index of the version in each vector table that holds rows of it; returns
    the names of the indexes."""
    quote = connection.ops.quote_name
    how = "CONCURRENTLY " if _concurrently() else ""
    built = []
    with connection.cursor() as cursor, _build_memory(cursor):
        _deferred_checks_run()
        for model in VECTOR_MODELS:
            if not model.objects.filter(model_version_id=version_id).exists():
                continue
            name = version_index_name(model=model, version_id=version_id)
            if _invalid_index_exists(cursor, name):
                _index_drop(cursor, name)
            cursor.execute(
                f"CREATE INDEX {how}IF NOT EXISTS {quote(name)} "
                f"ON {quote(model._meta.db_table)} USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
                f"WHERE model_version_id = {int(version_id)}"
            )
            built.append(name)
    return built


def version_indexes(*, model) -> dict[str, int]:
    """The per-version indexes of a vector table: index name -> version id."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = %s",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    prefix = f"{table}_hnsw_v"
    return {
        name: int(name[len(prefix) :])
        for name in names
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    }


def orphan_version_indexes_drop() -> list[str]:
    """Drop the per-version indexes whose version has no rows left in their table (a retired
    version after activation, a deleted one); returns their names."""
    dropped = []
    for model in VECTOR_MODELS:
        for name, version_id in version_indexes(model=model).items():
            if model.objects.filter(model_version_id=version_id).exists():
                continue
            with connection.cursor() as cursor:
                _index_drop(cursor, name)
            dropped.append(name)
    return dropped
