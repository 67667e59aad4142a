"""One HNSW index per model version instead of one over every version's rows (see
mltasks.vector_indexes): the global indexes go, and the versions that already have rows get
their own index here, so serving keeps an index across the upgrade."""

from django.db import migrations

TABLES = ("mltasks_trackvector", "mltasks_uservector")


def index_existing_versions(apps, schema_editor):
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT DISTINCT model_version_id FROM {quote(table)}")
            for (version_id,) in cursor.fetchall():
                name = f"{table}_hnsw_v{int(version_id)}"
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} "
                    "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
                    f"WHERE model_version_id = {int(version_id)}"
                )


def drop_version_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
                [table, f"{table}\\_hnsw\\_v%"],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


class Migration(migrations.Migration):
    dependencies = [
        ("mltasks", "0005_interleaving_test"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="trackvector",
            name="track_vector_hnsw_cosine",
        ),
        migrations.RemoveIndex(
            model_name="uservector",
            name="user_vector_hnsw_cosine",
        ),
        migrations.RunPython(index_existing_versions, drop_version_indexes),
    ]
