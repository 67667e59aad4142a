from django.conf import settings
from django.db import migrations

SCHEDULES = {
    "Retrain user recommendations": ("mltasks.tasks.train_recommender", "0"),
    "Retrain playlist continuation": ("mltasks.tasks.train_continuation", "30"),
}


def create_schedules(apps, schema_editor):
    """Nightly retraining at RETRAIN_CRON_HOUR (default 3:00 and 3:30); edit it in the admin."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, (task, minute) in SCHEDULES.items():
        nightly, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=str(settings.RETRAIN_CRON_HOUR), day_of_week="*",
            day_of_month="*", month_of_year="*",
        )  # fmt: skip
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": nightly})


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("mltasks", "0003_drift_check_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
