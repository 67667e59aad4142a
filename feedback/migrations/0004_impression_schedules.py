from django.conf import settings
from django.db import migrations

FLUSH = "Flush impressions"
PRUNE = "Prune impressions"


def create_schedules(apps, schema_editor):
    """Impressions flushed every IMPRESSIONS_FLUSH_SECONDS (a flush not started by then expires
    in the queue: the next one does its work) and pruned daily at 4:45; edit them in the
    admin."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    seconds = settings.IMPRESSIONS_FLUSH_SECONDS
    every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=FLUSH,
        defaults={
            "task": "feedback.tasks.impressions_flush",
            "interval": every,
            "expire_seconds": max(seconds, 1),
        },
    )
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="45", hour="4", day_of_week="*", day_of_month="*", month_of_year="*"
    )
    PeriodicTask.objects.get_or_create(
        name=PRUNE, defaults={"task": "feedback.tasks.impressions_prune", "crontab": daily}
    )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[FLUSH, PRUNE]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0003_impressions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
