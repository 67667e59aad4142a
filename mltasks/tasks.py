from celery import shared_task
from django.db import OperationalError

# The daily drift check lives beside the drift service; importing it registers the task.
from mltasks.drift_tasks import drift_check  # noqa: F401
from mltasks.models import ModelVersion
from mltasks.services import TRAINING_TASKS, TrainingAlreadyRunning, model_version_train


def _train(kind: str) -> dict:
    try:
        version = model_version_train(kind=kind)
    except TrainingAlreadyRunning as busy:
        return {"skipped": str(busy)}
    return {"model_version": version.pk, "status": version.status}


@shared_task(
    name=TRAINING_TASKS[ModelVersion.Kind.RECOMMENDER],
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def train_recommender() -> dict:
    """Train user recommendations (LightGCN and baselines); see mltasks.services."""
    return _train(ModelVersion.Kind.RECOMMENDER)


@shared_task(
    name=TRAINING_TASKS[ModelVersion.Kind.CONTINUATION],
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def train_continuation() -> dict:
    """Train playlist continuation (SASRec, GRU4Rec and baselines); see mltasks.services."""
    return _train(ModelVersion.Kind.CONTINUATION)
