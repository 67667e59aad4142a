"""Dev/test bootstrap: `python -m devstack {run,serve,start,stop,status,env}`.

run -- CMD…   start missing services, run CMD with DATABASE_URL/REDIS_URL set, then stop
              the services this call started
serve         what `make run` does: services, migrate, seed, train, then gunicorn + a Celery
              worker per queue (the default one and `training`) + beat until Ctrl-C
start / stop  start (or reuse) / stop the embedded services
env           print `export` lines for the running services

run, serve, start and env take --s3: also an S3-compatible store (moto's server mode) for the
model artifacts, with ARTIFACT_STORAGE_URL and the ARTIFACT_S3_* settings pointing at it
(default: artifacts on the local filesystem, no store process).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from devstack import services

logger = logging.getLogger("devstack")


def _run_child(command: list[str], environment: dict[str, str]) -> int:
    child = subprocess.Popen(command, env={**os.environ, **environment})
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        return child.wait()


def command_run(arguments: argparse.Namespace) -> int:
    command = [part for part in arguments.command if part != "--"]
    if not command:
        print("usage: python -m devstack run -- COMMAND [ARGS…]", file=sys.stderr)
        return 2
    environment, started = services.ensure_services(s3=arguments.s3)
    try:
        return _run_child(command, environment)
    finally:
        if not arguments.keep:
            services.stop_services(started)


def _manage(*arguments: str, environment: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *arguments],
        env={**os.environ, **environment},
        cwd=services.ROOT,
        check=True,
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


# The queues of CELERY_TASK_QUEUES (tunedin/settings.py; devstack reads no Django settings).
DEFAULT_QUEUE, TRAINING_QUEUE = "celery", "training"


def serve_commands(*, bind: str, workers: int | None) -> list[list[str]]:
    """gunicorn, a Celery worker per queue and beat. Training has a worker of its own: a
    training at scale 10 runs for an hour, and a single worker held the impressions flush, the
    drift check and the generated playlists back until it finished."""
    worker = [sys.executable, "-m", "celery", "-A", "tunedin", "worker", "--loglevel", "INFO",
              "--concurrency", "1"]  # fmt: skip
    return [
        [sys.executable, "-m", "gunicorn", "-c", "tunedin/gunicorn.conf.py", "--bind", bind,
         *(["--workers", str(workers)] if workers else [])],
        [*worker, "--queues", DEFAULT_QUEUE, "--hostname", "worker@%h"],
        [*worker, "--queues", TRAINING_QUEUE, "--hostname", "training@%h"],
        [sys.executable, "-m", "celery", "-A", "tunedin", "beat", "--loglevel", "INFO",
         "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
    ]  # fmt: skip


def command_serve(arguments: argparse.Namespace) -> int:
    # SIGTERM (a process manager, `kill`) stops everything like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    environment, started = services.ensure_services(s3=arguments.s3)
    environment = {**environment, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "true")}
    children: list[subprocess.Popen] = []
    try:
        _manage("migrate", "--noinput", environment=environment)
        _manage("collectstatic", "--noinput", "-v", "0", environment=environment)
        _manage("seed_demo", "--if-empty", environment=environment)
        bind = f"{arguments.host}:{arguments.port}"
        for command in serve_commands(bind=bind, workers=arguments.workers):
            children.append(
                subprocess.Popen(command, env={**os.environ, **environment}, cwd=services.ROOT)
            )
        # The site serves popularity until the first models are trained by the worker.
        _manage("train", "--kind", "all", "--if-missing", "--enqueue", environment=environment)
        print(f"\n  TunedIn is serving at http://{bind}/  (Ctrl-C stops everything)\n", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        return next(child.returncode for child in children if child.poll() is not None)
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        services.stop_services(started)


def command_start(arguments: argparse.Namespace) -> int:
    environment, _ = services.ensure_services(s3=arguments.s3)
    for name, value in environment.items():
        print(f"export {name}='{value}'")
    return 0


def command_stop(arguments: argparse.Namespace) -> int:
    services.stop_services(["postgres", "redis", "s3"])
    return 0


def command_status(arguments: argparse.Namespace) -> int:
    print(services.status_json())
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="action", required=True)
    s3_help = "also the S3-compatible artifacts store (moto), unless ARTIFACT_STORAGE_URL is set"
    run = commands.add_parser("run", help="run a command with services available")
    run.add_argument("--keep", action="store_true", help="leave started services running")
    run.add_argument("--s3", action="store_true", help=s3_help)
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.set_defaults(handler=command_run)
    serve = commands.add_parser("serve", help="what `make run` does")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", default=int(os.environ.get("PORT", "8000")), type=int)
    serve.add_argument("--workers", type=int, help="default: tunedin/gunicorn.conf.py's")
    serve.add_argument("--s3", action="store_true", help=s3_help)
    serve.set_defaults(handler=command_serve)
    for name, handler in [("start", command_start), ("env", command_start)]:
        start = commands.add_parser(name)
        start.add_argument("--s3", action="store_true", help=s3_help)
        start.set_defaults(handler=handler)
    for name, handler in [("stop", command_stop), ("status", command_status)]:
        commands.add_parser(name).set_defaults(handler=handler)
    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
