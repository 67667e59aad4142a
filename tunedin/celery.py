"""The Celery app: broker, result backend and beat scheduler come from Django settings."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tunedin.settings")

app = Celery("tunedin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
