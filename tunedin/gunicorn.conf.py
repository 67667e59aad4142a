"""gunicorn settings: `gunicorn -c tunedin/gunicorn.conf.py tunedin.wsgi`.

Prometheus multiprocess mode: every worker writes its metrics to files in
PROMETHEUS_MULTIPROC_DIR and /metrics (tunedin.views.metrics) adds them up, so a scrape sees
the whole server whichever worker answers it. The directory is emptied when the server starts
(stale files would add old counts) and a dead worker's live gauges are dropped (child_exit).
Without PROMETHEUS_MULTIPROC_DIR a private directory under the system temp dir is used.

Each worker loads the active model versions whole before its first request and follows
activations with a watcher thread that reads the active version ids every SERVING_POLL_SECONDS
(recommendations.serving), so that every worker serves, and /healthz reports, the same version.

Environment: GUNICORN_BIND (default 127.0.0.1:8000; command-line --bind wins), WEB_WORKERS
(2 per core), GUNICORN_TIMEOUT (60 s), WEB_COMPUTE_THREADS (1), SERVING_POLL_SECONDS (2),
LOG_FORMAT (json makes gunicorn's own log lines JSON too).
"""

import gc
import os
import shutil
import tempfile

_own_multiproc_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_multiproc_dir:
    # Must be set before any worker imports prometheus_client.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(
        tempfile.gettempdir(), f"tunedin-prometheus-web-{os.getpid()}"
    )

# One compute thread per worker (OpenMP/BLAS under numpy and torch): a request is one thread,
# the parallelism comes from the workers, and several threads per worker on a small machine
# spin against each other (a 2-core run had continuation p99 ~4x its median). Must be set
# before a worker imports numpy or torch; WEB_COMPUTE_THREADS overrides.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, os.environ.get("WEB_COMPUTE_THREADS", "1"))

wsgi_app = "tunedin.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
# Two sync workers a core: with one a core, one worker's pause (a slow query, a cache miss
# running a model) stalls half the machine's requests; two halve that tail (bench/load.py).
workers = int(os.environ.get("WEB_WORKERS", 2 * (os.cpu_count() or 1)))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
serving_poll_seconds = float(os.environ.get("SERVING_POLL_SECONDS", "2"))
graceful_timeout = 30
keepalive = 5
# The per-request log line comes from tunedin.middleware (with request id and user).
accesslog = None
errorlog = "-"
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files off a possibly slow container filesystem

if os.environ.get("LOG_FORMAT", "json") == "json":
    logconfig_dict = {
        "formatters": {
            "generic": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        }
    }


def on_starting(server):
    # Project imports stay in the hooks: reading this file loads neither Django nor Celery.
    from tunedin.metrics import multiprocess_directory_reset

    multiprocess_directory_reset()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    # In the exiting worker: the lists it served in its last quarter of a second go to Redis
    # now (feedback.impression_buffer pushes every 250 ms).
    try:
        from feedback.services import impressions_push

        impressions_push()
    except Exception:
        worker.log.warning("pending impressions not pushed at exit", exc_info=True)


def on_exit(server):
    if _own_multiproc_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_worker_init(worker):
    # Load the active models whole before the first request (vectors, FAISS indexes, the
    # sequence model), then follow activations: no request pays for a load, and /healthz reports
    # the same version from every worker.
    try:
        from recommendations.serving import serving_watch_start
        from recommendations.track_cards import track_cards

        serving_watch_start(interval_s=serving_poll_seconds)
        track_cards(())  # the snapshot that renders lists
    except Exception:
        worker.log.warning("serving models not preloaded", exc_info=True)
    finally:
        from django.db import connections

        connections.close_all()
    # Everything loaded so far (Django, torch, the models) lives as long as the worker: out of
    # the collector's sight, a full collection no longer walks it, which was a tail-latency
    # hiccup of several milliseconds in the middle of requests.
    gc.collect()
    gc.freeze()
