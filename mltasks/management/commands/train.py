from django.core.management.base import BaseCommand, CommandError

from mltasks.models import ModelVersion
from mltasks.services import (
    KIND_ALIASES,
    TrainingAlreadyRunning,
    model_version_train,
    training_enqueue,
)


class Command(BaseCommand):
    help = "Train a model version in the foreground (what the Celery training tasks run)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--kind", default="all", choices=[*KIND_ALIASES, "all"],
            help="recommender (lightgcn), continuation (sasrec) or all",
        )  # fmt: skip
        parser.add_argument(
            "--if-missing", action="store_true", help="only kinds without an active version"
        )
        parser.add_argument(
            "--enqueue", action="store_true", help="queue the runs on a Celery worker instead"
        )

    def handle(self, *args, kind: str, if_missing: bool, enqueue: bool, **options):
        kinds = ModelVersion.Kind.values if kind == "all" else [KIND_ALIASES[kind]]
        for each in kinds:
            active = ModelVersion.objects.filter(kind=each, status=ModelVersion.Status.ACTIVE)
            if if_missing and active.exists():
                self.stdout.write(f"{each}: version {active.get().pk} is active; not training.")
                continue
            if enqueue:
                task_id = training_enqueue(kind=each)
                self.stdout.write(f"{each}: training queued on a Celery worker (task {task_id}).")
                continue
            self.stdout.write(f"Training {each}…")
            try:
                version = model_version_train(kind=each)
            except TrainingAlreadyRunning as busy:
                raise CommandError(str(busy)) from None
            served = version.metrics.get("served")
            rows = version.metrics.get("models", {})
            self.stdout.write(f"{each}: version {version.pk} {version.status} (serves {served})")
            for model, splits in rows.items():
                valid = ", ".join(f"{m} {v:.4f}" for m, v in splits.get("valid", {}).items())
                self.stdout.write(f"  {model:<12} valid: {valid}")
            if reason := version.metrics.get("activation", {}).get("reason"):
                self.stdout.write(f"  activation: {reason}")
