"""One HNSW index per model version instead of one over every version's rows (see
mltasks.vector_indexes): the versions that already have rows get their own index first, then
the global indexes go, so serving keeps an index across the upgrade.

The migration is not atomic: outside a transaction the indexes are built and dropped
CONCURRENTLY, so a live site keeps writing vectors (a like folds in the user's vector) while
they are built (about two minutes for 100,000 vectors on 2 cores). Inside one (a test database
migrated in a transaction) they are built and dropped in place.
"""

from django.conf import settings
from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations

TABLES = ("mltasks_trackvector", "mltasks_uservector")


def _how(connection) -> str:
    return "" if connection.in_atomic_block else "CONCURRENTLY "


def index_existing_versions(apps, schema_editor):
    connection, quote = schema_editor.connection, schema_editor.quote_name
    memory = getattr(settings, "VECTOR_INDEX_BUILD_MEMORY", "512MB")
    with connection.cursor() as cursor:
        local = "LOCAL " if connection.in_atomic_block else ""
        cursor.execute(f"SET {local}maintenance_work_mem = %s", [memory])
        for table in TABLES:
            cursor.execute(f"SELECT DISTINCT model_version_id FROM {quote(table)}")
            for (version_id,) in sorted(cursor.fetchall()):
                name = f"{table}_hnsw_v{int(version_id)}"
                # A concurrent build that failed (an earlier try of this migration) leaves an
                # invalid index that IF NOT EXISTS would keep: drop it first.
                cursor.execute(
                    "SELECT NOT i.indisvalid FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
                    [name],
                )
                invalid = cursor.fetchone()
                if invalid and invalid[0]:
                    cursor.execute(f"DROP INDEX {_how(connection)}IF EXISTS {quote(name)}")
                cursor.execute(
                    f"CREATE INDEX {_how(connection)}IF NOT EXISTS {quote(name)} "
                    f"ON {quote(table)} USING hnsw (embedding vector_cosine_ops) "
                    "WITH (m = 16, ef_construction = 64) "
                    f"WHERE model_version_id = {int(version_id)}"
                )
        if not connection.in_atomic_block:
            cursor.execute("RESET maintenance_work_mem")


def drop_version_indexes(apps, schema_editor):
    connection, quote = schema_editor.connection, schema_editor.quote_name
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
                [table, f"{table}\\_hnsw\\_v%"],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX {_how(connection)}IF EXISTS {quote(name)}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("mltasks", "0005_interleaving_test"),
    ]

    operations = [
        migrations.RunPython(index_existing_versions, drop_version_indexes),
        RemoveIndexConcurrently(
            model_name="trackvector",
            name="track_vector_hnsw_cosine",
        ),
        RemoveIndexConcurrently(
            model_name="uservector",
            name="user_vector_hnsw_cosine",
        ),
    ]
