from celery import shared_task
from django.db import OperationalError

from mltasks.drift_services import drift_report_create


# Named as if it lived in mltasks/tasks.py, which imports it: beat schedules use that name.
@shared_task(
    name="mltasks.tasks.drift_check",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def drift_check(window_days: int | None = None) -> dict:
    """Daily drift check (beat, see migration 0003): recent listening vs the training window."""
    report = drift_report_create(window_days=window_days)
    return {"drift_report": report.pk, "drifted": report.drifted}
