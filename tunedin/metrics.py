"""TunedIn's application metrics (Prometheus), on top of the ones django-prometheus exports.

Names follow Prometheus conventions: a `tunedin_` prefix, base units (seconds), `_total` on
counters, and a few low-cardinality labels (never a user or track id).

What django-prometheus already gives (middlewares + DB/cache backends in settings):
- `django_http_requests_latency_seconds_by_view_method{view, method}`: the per-route latency
  histogram (`view` is the URL name, e.g. `healthz`); buckets from PROMETHEUS_LATENCY_BUCKETS.
- `django_http_responses_total_by_status_view_method{status, view, method}`: request rate and
  5xx ratio; `django_db_*` (query counts, errors), `django_cache_get_{hits,misses}_total`.

Defined here (the serving and training code calls them; `tunedin.middleware` and the Celery
signals in `tunedin.celery` record the HTTP error and task ones by themselves):

    from tunedin import metrics

    # Serving: time the model's forward pass and the nearest-neighbour search.
    with metrics.MODEL_FORWARD_SECONDS.labels(kind="recommender", algorithm="lightgcn").time():
        user_vector = model.user_vector(user_index)
    with metrics.ANN_SEARCH_SECONDS.labels(kind="recommender", backend="faiss").time():
        scores, item_indices = index.search(user_vector, n)
    metrics.recommendation_cache_lookup(list_name="user", hit=cached is not None)

    # Training (in the Celery task or service that trains a model version):
    metrics.training_finished(kind="recommender", algorithm="lightgcn",
                              duration_seconds=elapsed, succeeded=True)

    # Drift (mltasks.drift_services does it): one gauge pair per monitored feature.
    metrics.drift_feature_set(feature="hour_of_day", psi=0.04, ks_pvalue=0.31)

| name                                             | type      | labels                     |
|--------------------------------------------------|-----------|----------------------------|
| tunedin_model_forward_seconds                    | histogram | kind, algorithm            |
| tunedin_ann_search_seconds                       | histogram | kind, backend              |
| tunedin_recommendation_cache_lookups_total       | counter   | list, result (hit / miss)  |
| tunedin_http_errors_total                        | counter   | route, method, error_type  |
| tunedin_training_duration_seconds                | histogram | kind, algorithm            |
| tunedin_training_runs_total                      | counter   | kind, outcome              |
| tunedin_training_last_success_timestamp_seconds  | gauge     | kind                       |
| tunedin_model_active_info                        | gauge=1   | kind, version, algorithm   |
| tunedin_model_active_version                     | gauge     | kind                       |
| tunedin_drift_psi                                | gauge     | feature                    |
| tunedin_drift_ks_pvalue                          | gauge     | feature                    |
| tunedin_drift_check_timestamp_seconds            | gauge     |                            |
| tunedin_celery_task_duration_seconds             | histogram | task                       |
| tunedin_celery_tasks_total                       | counter   | task, outcome              |

`tunedin_model_active_*` are read from the database when /metrics is scraped (one query), so
every web process reports the same truth whoever activated the version.

Several processes: under gunicorn (tunedin/gunicorn.conf.py) and in Celery workers, set
PROMETHEUS_MULTIPROC_DIR to an empty directory per service; each process then writes its values
to files there and `metrics_exposition()` aggregates them (gauges by their multiprocess_mode).
Celery workers serve their metrics on WORKER_METRICS_PORT (see tunedin.celery).
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

if os.environ.get(MULTIPROC_DIR_VARIABLE):
    # In multiprocess mode a metric writes to this directory as soon as it is defined.
    os.makedirs(os.environ[MULTIPROC_DIR_VARIABLE], exist_ok=True)

# Inference steps take from a fraction of a millisecond to a second.
FAST_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
TRAINING_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)

MODEL_FORWARD_SECONDS = Histogram(
    "tunedin_model_forward_seconds",
    "Time of one forward pass of the active model (user or sequence vector, or scores).",
    ["kind", "algorithm"],
    buckets=FAST_BUCKETS,
)
ANN_SEARCH_SECONDS = Histogram(
    "tunedin_ann_search_seconds",
    "Time of one nearest-neighbour search (exact, FAISS or pgvector HNSW).",
    ["kind", "backend"],
    buckets=FAST_BUCKETS,
)
RECOMMENDATION_CACHE_LOOKUPS = Counter(
    "tunedin_recommendation_cache_lookups",
    "Cache lookups of recommendation lists, by list and result (hit or miss).",
    ["list", "result"],
)
HTTP_ERRORS = Counter(
    "tunedin_http_errors",
    "Responses with status >= 400 by route; error_type is the exception class or http_<status>.",
    ["route", "method", "error_type"],
)
TRAINING_DURATION_SECONDS = Histogram(
    "tunedin_training_duration_seconds",
    "Wall time of one model training run.",
    ["kind", "algorithm"],
    buckets=TRAINING_BUCKETS,
)
TRAINING_RUNS = Counter(
    "tunedin_training_runs",
    "Finished training runs by outcome (succeeded or failed).",
    ["kind", "outcome"],
)
TRAINING_LAST_SUCCESS = Gauge(
    "tunedin_training_last_success_timestamp_seconds",
    "Unix time of the last successful training run.",
    ["kind"],
    multiprocess_mode="max",
)
DRIFT_PSI = Gauge(
    "tunedin_drift_psi",
    "Population stability index of a monitored feature, recent window vs reference.",
    ["feature"],
    multiprocess_mode="mostrecent",
)
DRIFT_KS_PVALUE = Gauge(
    "tunedin_drift_ks_pvalue",
    "Two-sample Kolmogorov-Smirnov p-value of a monitored feature, recent window vs reference.",
    ["feature"],
    multiprocess_mode="mostrecent",
)
DRIFT_CHECK_TIMESTAMP = Gauge(
    "tunedin_drift_check_timestamp_seconds",
    "Unix time of the last drift check.",
    multiprocess_mode="max",
)
CELERY_TASK_DURATION_SECONDS = Histogram(
    "tunedin_celery_task_duration_seconds",
    "Run time of Celery tasks.",
    ["task"],
    buckets=TASK_BUCKETS,
)
CELERY_TASKS = Counter(
    "tunedin_celery_tasks",
    "Finished Celery tasks by outcome (SUCCESS, FAILURE, RETRY…).",
    ["task", "outcome"],
)


def recommendation_cache_lookup(*, list_name: str, hit: bool) -> None:
    """Count one cache lookup of a recommendation list ("user", "continuation", "similar")."""
    RECOMMENDATION_CACHE_LOOKUPS.labels(list=list_name, result="hit" if hit else "miss").inc()


def training_finished(
    *, kind: str, algorithm: str, duration_seconds: float, succeeded: bool
) -> None:
    """Record one finished training run (its duration, outcome and, on success, its time)."""
    TRAINING_DURATION_SECONDS.labels(kind=kind, algorithm=algorithm).observe(duration_seconds)
    TRAINING_RUNS.labels(kind=kind, outcome="succeeded" if succeeded else "failed").inc()
    if succeeded:
        TRAINING_LAST_SUCCESS.labels(kind=kind).set(time.time())


def drift_feature_set(*, feature: str, psi: float | None, ks_pvalue: float | None) -> None:
    """Export one monitored feature's drift statistics (None leaves a gauge unchanged)."""
    if psi is not None:
        DRIFT_PSI.labels(feature=feature).set(psi)
    if ks_pvalue is not None:
        DRIFT_KS_PVALUE.labels(feature=feature).set(ks_pvalue)


class ActiveModelCollector:
    """`tunedin_model_active_*` from the database at scrape time (one small query)."""

    def collect(self):
        from mltasks.models import ModelVersion

        info = GaugeMetricFamily(
            "tunedin_model_active_info",
            "The model version serving each kind (value 1).",
            labels=["kind", "version", "algorithm"],
        )
        version = GaugeMetricFamily(
            "tunedin_model_active_version",
            "Id of the model version serving each kind.",
            labels=["kind"],
        )
        try:
            active = list(
                ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list(
                    "kind", "pk", "algorithm"
                )
            )
        except Exception:  # a scrape must work while the database is down
            logger.warning("active model versions unavailable for /metrics", exc_info=True)
            active = []
        for kind, pk, algorithm in active:
            info.add_metric([kind, str(pk), algorithm], 1)
            version.add_metric([kind], pk)
        yield info
        yield version


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR_VARIABLE))


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every process's when PROMETHEUS_MULTIPROC_DIR is set."""
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def metrics_exposition(*, include_database: bool = True) -> bytes:
    """The Prometheus text exposition for a scrape of /metrics."""
    page = generate_latest(process_registry())
    if include_database:
        database_registry = CollectorRegistry(auto_describe=False)
        database_registry.register(ActiveModelCollector())
        page += generate_latest(database_registry)
    return page


def multiprocess_directory_reset() -> None:
    """Delete other processes' files from PROMETHEUS_MULTIPROC_DIR before a service starts.

    This process's own files stay: its metrics were created when this module was imported.
    """
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return
    own_suffix = f"_{os.getpid()}.db"
    for name in os.listdir(directory):
        if name.endswith(".db") and not name.endswith(own_suffix):
            os.remove(os.path.join(directory, name))
