import json

from django.db import migrations

TASK = "recommendations.tasks.generated_playlists_build"
# name: (kinds built, minute, hour, day of week); after the nightly retraining and drift check.
SCHEDULES = {
    "Build Daily Jams": (["daily-jams"], "0", "5", "*"),
    "Build Weekly Exploration": (["weekly-exploration"], "15", "5", "1"),
}


def create_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, (kinds, minute, hour, day_of_week) in SCHEDULES.items():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week=day_of_week, day_of_month="*",
            month_of_year="*",
        )  # fmt: skip
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": TASK, "crontab": crontab, "kwargs": json.dumps({"kinds": kinds})},
        )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("playlists", "0002_generated_playlists"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
