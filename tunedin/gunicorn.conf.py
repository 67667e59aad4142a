"""gunicorn settings: `gunicorn -c tunedin/gunicorn.conf.py tunedin.wsgi`.

Prometheus multiprocess mode: every worker writes its metrics to files in
PROMETHEUS_MULTIPROC_DIR and /metrics (tunedin.views.metrics) adds them up, so a scrape sees
the whole server whichever worker answers it. The directory is emptied when the server starts
(stale files would add old counts) and a dead worker's live gauges are dropped (child_exit).
Without PROMETHEUS_MULTIPROC_DIR a private directory under the system temp dir is used.

Environment: GUNICORN_BIND (default 127.0.0.1:8000; command-line --bind wins), WEB_WORKERS (2),
GUNICORN_TIMEOUT (60 s), LOG_FORMAT (json makes gunicorn's own log lines JSON too).
"""

import os
import shutil
import tempfile

_own_multiproc_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_multiproc_dir:
    # Must be set before any worker imports prometheus_client.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(
        tempfile.gettempdir(), f"tunedin-prometheus-web-{os.getpid()}"
    )

wsgi_app = "tunedin.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_WORKERS", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
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
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_multiproc_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_worker_init(worker):
    # Load the active models before the first request: it would otherwise pay for the load,
    # and /healthz would report them as not loaded in this worker until then.
    try:
        from mltasks.models import ModelVersion
        from recommendations.serving import active_state

        for kind in ModelVersion.Kind.values:
            active_state(kind)
    except Exception:
        worker.log.warning("serving models not preloaded", exc_info=True)
    finally:
        from django.db import connections

        connections.close_all()
