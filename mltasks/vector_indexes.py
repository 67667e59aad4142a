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
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from mltasks.models import TrackVector, UserVector

VECTOR_MODELS = (TrackVector, UserVector)
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def _deferred_checks_run() -> None:
    """Run the foreign-key checks that Django defers to the commit now: PostgreSQL refuses to
    create or drop an index on a table with pending checks in the same transaction (rows copied
    or deleted just before)."""
    if connection.in_atomic_block:
        connection.check_constraints()


def version_index_name(*, model, version_id: int) -> str:
    return f"{model._meta.db_table}_hnsw_v{int(version_id)}"


def version_indexes_build(*, version_id: int) -> list[str]:
    """Build the HNSW index of the version in each vector table that holds rows of it (with
    `VECTOR_INDEX_BUILD_MEMORY` as maintenance_work_mem); returns the names of the indexes."""
    quote = connection.ops.quote_name
    built = []
    with transaction.atomic(), connection.cursor() as cursor:
        _deferred_checks_run()
        cursor.execute("SET LOCAL maintenance_work_mem = %s", [settings.VECTOR_INDEX_BUILD_MEMORY])
        for model in VECTOR_MODELS:
            if not model.objects.filter(model_version_id=version_id).exists():
                continue
            name = version_index_name(model=model, version_id=version_id)
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(model._meta.db_table)} "
                "USING hnsw (embedding vector_cosine_ops) "
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
    quote = connection.ops.quote_name
    dropped = []
    for model in VECTOR_MODELS:
        for name, version_id in version_indexes(model=model).items():
            if model.objects.filter(model_version_id=version_id).exists():
                continue
            _deferred_checks_run()
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
            dropped.append(name)
    return dropped
