import pytest
from django.db import connection


@pytest.mark.django_db
def test_migrations_create_the_vector_extension_and_no_index_over_every_version():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() is not None
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'"
        )
        indexes = dict(cursor.fetchall())
    # Each version gets its own HNSW index when its rows are stored (test_vector_indexes); none
    # covers every version's rows.
    assert all("WHERE (model_version_id = " in definition for definition in indexes.values())


@pytest.mark.django_db
def test_only_one_model_version_per_kind_can_be_active():
    from django.db import IntegrityError

    from mltasks.models import ModelVersion

    first = ModelVersion.objects.create(kind="recommender", algorithm="lightgcn")
    second = ModelVersion.objects.create(kind="recommender", algorithm="ease")
    first.activate()
    second.activate()
    first.refresh_from_db()
    assert (first.status, second.status) == ("retired", "active")
    with pytest.raises(IntegrityError):
        ModelVersion.objects.filter(pk=first.pk).update(status="active")


@pytest.mark.django_db
def test_nightly_retraining_is_scheduled_in_the_database_for_beat():
    from django_celery_beat.models import PeriodicTask

    from tunedin.celery import app

    app.loader.import_default_modules()
    tasks = {
        task.task: task
        for task in PeriodicTask.objects.filter(task__startswith="mltasks.tasks.train_")
    }
    assert set(tasks) == {"mltasks.tasks.train_recommender", "mltasks.tasks.train_continuation"}
    for periodic in tasks.values():
        assert periodic.enabled and periodic.crontab.hour == "3"
        assert periodic.task in app.tasks  # beat names a task the workers know
