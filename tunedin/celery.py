"""The Celery app: broker, result backend and beat scheduler come from Django settings.

Also wired here: the request id travels from the web request into the tasks it starts
(tunedin.request_id), task durations and outcomes are counted, and each worker serves its
Prometheus metrics on WORKER_METRICS_PORT (0 = off). With the prefork pool set
PROMETHEUS_MULTIPROC_DIR too, so the main process can aggregate its pool processes' metrics.
"""

import logging
import os
import time

from celery import Celery
from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)

from tunedin import metrics
from tunedin.request_id import (
    request_id_from_task,
    request_id_task_finished,
    request_id_to_task_headers,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tunedin.settings")

logger = logging.getLogger(__name__)

app = Celery("tunedin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

before_task_publish.connect(request_id_to_task_headers, weak=False)
task_prerun.connect(request_id_from_task, weak=False)
task_postrun.connect(request_id_task_finished, weak=False)

_task_started_at: dict[str, float] = {}


@task_prerun.connect(weak=False)
def _task_timer_start(task_id=None, **kwargs):
    _task_started_at[task_id] = time.perf_counter()


@task_postrun.connect(weak=False)
def _task_timer_stop(task_id=None, task=None, state=None, **kwargs):
    started_at = _task_started_at.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if started_at is not None:
        metrics.CELERY_TASK_DURATION_SECONDS.labels(task=name).observe(
            time.perf_counter() - started_at
        )
    metrics.CELERY_TASKS.labels(task=name, outcome=state or "UNKNOWN").inc()


@worker_init.connect(weak=False)
def _metrics_directory_reset(**kwargs):
    # The main process starts before its pool: files left by a previous run are stale.
    metrics.multiprocess_directory_reset()


@worker_ready.connect(weak=False)
def _metrics_server_start(**kwargs):
    from django.conf import settings
    from prometheus_client import start_http_server

    port = getattr(settings, "WORKER_METRICS_PORT", 0)
    if not port:
        return
    if not metrics.multiprocess_enabled():
        logger.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: /metrics on port %s shows this process "
            "only, not the tasks run by prefork pool processes",
            port,
        )
    try:
        start_http_server(port, registry=metrics.process_registry())
    except OSError:
        logger.exception("worker metrics server could not listen on port %s", port)
        return
    logger.info("worker metrics on port %s", port)


@worker_process_shutdown.connect(weak=False)
def _metrics_process_dead(pid=None, **kwargs):
    if metrics.multiprocess_enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
