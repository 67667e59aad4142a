"""Soak + faults benchmark: the real stack under steady mixed load while Redis and a training
worker are killed, then pass/fail checks on what clients were told and what was stored.

    .venv/bin/python bench/soak.py                    # 600 s
    .venv/bin/python bench/soak.py --duration 60      # smoke run (about 2 minutes in all)

What it does:
1. Database `tunedin_soak` on the embedded PostgreSQL (its own ARTIFACTS_DIR), migrated, the
   demo world seeded at --scale when empty, and the models trained once (short budget) when
   none is active; a redis-server of its own on a free loopback port (the shared embedded
   Redis is never touched); gunicorn (tunedin/gunicorn.conf.py, --workers) and a Celery worker
   (prefork, concurrency 1) on them. Loopback only.
2. After a warm-up, --clients threads send about --rate requests/s in total for --duration s:
   GET /api/rec/users/{id}, /api/rec/users/{id}/similar, /api/tracks/{id}/similar, /healthz,
   POST /api/continue (the read routes) and POST /api/feedback with idempotency keys: a share
   of them repeats a key already acknowledged (same user, same body), and a key whose request
   failed is retried, as a client would.
3. Faults, at fractions of --duration: at 20 % Redis gets SIGKILL and is started again (empty)
   --redis-outage s later; at 45 % mltasks.tasks.train_<--train-kind> is queued and the
   worker's process group gets SIGKILL once that training has run --kill-after s, then a new
   worker is started.
4. Checks (exit 1 when one fails): no 5xx and no transport error on the read routes during the
   Redis outage; every acknowledged (2xx) feedback key is stored exactly once, as the event the
   answers named; the training was killed mid-run, its lock released, the worker came back; the
   active model versions are the ones from before; the web server's RSS (master + workers) grew
   less than 10 % from the end of the warm-up. Prints the checks and per-route counts per
   phase (before / during / after the outage) and writes bench/results/soak-<UTC time>.json.
   Latencies are recorded, not judged: the CPU is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import requests
from kombu import exceptions as kombu_errors
from redis import exceptions as redis_errors

if __package__ in (None, ""):  # run as a script: bench/soak.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack  # noqa: E402
from devstack import services  # noqa: E402

SOAK_DATABASE = "tunedin_soak"
READ_ROUTES = ("rec_user", "similar_users", "similar_tracks", "continue", "healthz")
ROUTE_WEIGHTS = {
    "rec_user": 0.30,
    "similar_users": 0.08,
    "similar_tracks": 0.20,
    "continue": 0.14,
    "healthz": 0.03,
    "feedback": 0.25,
}
MAX_REQUESTS = 500_000  # a hard stop for the client loops, whatever the rate
RSS_GROWTH_LIMIT = 0.10
REQUEST_TIMEOUT_S = 15
TRAINING_LOCK_KEYS = {"recommender": 7_301, "continuation": 7_302}  # mltasks.services


@dataclass
class Timeline:
    started_at: float = 0.0  # monotonic time of the soak's t = 0
    events: list[dict] = field(default_factory=list)
    redis_down: float | None = None
    redis_up: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.started_at

    def note(self, event: str, **detail) -> None:
        self.events.append({"t": round(self.now(), 2), "event": event, **detail})
        print(f"  t={self.now():6.1f}s  {event} {detail or ''}", file=sys.stderr, flush=True)

    def phase(self, t: float) -> str:
        if self.redis_down is None or t < self.redis_down:
            return "before"
        if self.redis_up is None or t < self.redis_up:
            return "outage"
        return "after"


@dataclass
class Targets:
    """Who asks and about what: users by activity (with tokens), tracks by popularity."""

    user_ids: list[int]
    tokens: dict[int, str]
    recent_tracks: dict[int, list[int]]
    track_ids: list[int]


class FeedbackLedger:
    """What the clients were told about each idempotency key, to compare with Postgres."""

    def __init__(self, run_id: str, repeat_share: float):
        self.run_id = run_id
        self.repeat_share = repeat_share
        self.lock = threading.Lock()
        self.bodies: dict[tuple[int, str], dict] = {}
        self.acknowledged: dict[tuple[int, str], set[int]] = defaultdict(set)
        self.unacknowledged: set[tuple[int, str]] = set()
        self.rejected: Counter = Counter()
        self.counter = 0
        self.repeats = 0
        self.retries = 0

    def next_event(self, rng: random.Random, user_id: int, track_id: int) -> tuple[int, dict]:
        """(user, body): a retry of a failed key, a repeat of an acknowledged one, or new."""
        with self.lock:
            if self.unacknowledged and rng.random() < 0.5:
                key = rng.choice(sorted(self.unacknowledged))
                self.retries += 1
                return key[0], self.bodies[key]
            if self.acknowledged and rng.random() < self.repeat_share:
                key = rng.choice(list(self.acknowledged))
                self.repeats += 1
                return key[0], self.bodies[key]
            self.counter += 1
            body = {
                "track_id": track_id,
                "event": rng.choice(["play", "play", "like", "skip"]),
                "idempotency_key": f"soak-{self.run_id}-{self.counter}",
            }
            self.bodies[(user_id, body["idempotency_key"])] = body
            return user_id, body

    def answered(self, user_id: int, body: dict, status: int, event_id: int | None) -> None:
        key = (user_id, body["idempotency_key"])
        with self.lock:
            if 200 <= status < 300:
                self.acknowledged[key].add(event_id)
                self.unacknowledged.discard(key)
            elif 400 <= status < 500:
                self.rejected[status] += 1
            elif key not in self.acknowledged:
                self.unacknowledged.add(key)


class LoadClients:
    """--clients threads, each paced to its share of --rate, recording every request."""

    def __init__(self, *, base_url, targets, ledger, timeline, clients, rate, zipf, seed):
        self.base_url = base_url
        self.targets = targets
        self.ledger = ledger
        self.timeline = timeline
        self.clients = clients
        self.interval_s = clients / rate
        self.zipf = zipf
        self.seed = seed
        self.records: list[tuple[float, str, int, float]] = []  # (t, route, status, ms)
        self.records_lock = threading.Lock()
        self.stop = threading.Event()
        self.recording = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sent = 0

    def start(self) -> None:
        for index in range(self.clients):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)

    def _request(self, rng: random.Random, np_rng: np.random.Generator):
        targets = self.targets
        user_id = targets.user_ids[
            stack.zipf_choice(np_rng, len(targets.user_ids), 1, self.zipf)[0]
        ]
        track_id = targets.track_ids[
            stack.zipf_choice(np_rng, len(targets.track_ids), 1, self.zipf)[0]
        ]
        route = rng.choices(list(ROUTE_WEIGHTS), list(ROUTE_WEIGHTS.values()))[0]
        body = None
        if route == "rec_user":
            method, path = "GET", f"/api/rec/users/{user_id}?n=20"
        elif route == "similar_users":
            method, path = "GET", f"/api/rec/users/{user_id}/similar?n=10"
        elif route == "similar_tracks":
            method, path = "GET", f"/api/tracks/{track_id}/similar?n=10"
        elif route == "continue":
            method, path = "POST", "/api/continue"
            body = {"tracks": targets.recent_tracks[user_id], "k": 10}
        elif route == "healthz":
            method, path = "GET", "/healthz"
        else:
            method, path = "POST", "/api/feedback"
            user_id, body = self.ledger.next_event(rng, user_id, track_id)
        return route, user_id, method, path, body

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed + index)
        np_rng = np.random.default_rng(self.seed + index)
        session = requests.Session()
        next_at = time.monotonic() + rng.random() * self.interval_s
        while not self.stop.is_set() and self.sent < MAX_REQUESTS:
            route, user_id, method, path, body = self._request(rng, np_rng)
            headers = {"Authorization": f"Token {self.targets.tokens[user_id]}"}
            started = time.monotonic()
            event_id = None
            try:
                response = session.request(
                    method, self.base_url + path, json=body, headers=headers,
                    timeout=REQUEST_TIMEOUT_S,
                )  # fmt: skip
                status = response.status_code
                if route == "feedback" and 200 <= status < 300:
                    event_id = response.json()["id"]
            except (requests.RequestException, ValueError, KeyError):
                status = 0  # no usable answer: connection error, timeout, bad body
            elapsed_ms = (time.monotonic() - started) * 1000
            if route == "feedback":
                self.ledger.answered(user_id, body, status, event_id)
            if self.recording.is_set():
                with self.records_lock:
                    self.records.append(
                        (started - self.timeline.started_at, route, status, elapsed_ms)
                    )
            self.sent += 1  # approximate across threads: a bound, not a count
            next_at = max(next_at + self.interval_s, time.monotonic() - self.interval_s)
            self.stop.wait(max(0.0, next_at - time.monotonic()))


class RssSampler:
    """The web server's resident memory (master + workers) every few seconds."""

    def __init__(self, server: subprocess.Popen, timeline: Timeline, every_s: float = 5):
        self.server = server
        self.timeline = timeline
        self.every_s = every_s
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def measure(self) -> dict:
        master = psutil.Process(self.server.pid)
        processes = [master, *master.children(recursive=True)]
        rss = 0
        for process in processes:
            try:
                rss += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return {
            "t": round(self.timeline.now(), 1),
            "rss_mb": round(rss / 2**20, 1),
            "pids": sorted(p.pid for p in processes),
        }

    def _run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.samples.append(self.measure())


def soak_targets(*, max_users: int = 300) -> Targets:
    """Users with history (most active first), their tokens and last tracks (needs Django)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Count
    from rest_framework.authtoken.models import Token

    from catalog.models import Track
    from feedback.models import Interaction

    user_ids = list(
        get_user_model()
        .objects.annotate(n_interactions=Count("interactions"))
        .filter(n_interactions__gt=0)
        .order_by("-n_interactions", "pk")
        .values_list("pk", flat=True)[:max_users]
    )
    track_ids = list(Track.objects.order_by("-popularity", "pk").values_list("pk", flat=True))
    if not user_ids or not track_ids:
        raise SystemExit("the soak database has no listeners or tracks")
    tokens = {u: Token.objects.get_or_create(user_id=u)[0].key for u in user_ids}
    recent = {
        u: list(
            Interaction.objects.filter(user_id=u, kind__in=("play", "like"))
            .order_by("-occurred_at")
            .values_list("track_id", flat=True)[:5]
        )[::-1]
        or track_ids[:1]
        for u in user_ids
    }
    return Targets(user_ids=user_ids, tokens=tokens, recent_tracks=recent, track_ids=track_ids)


def active_versions() -> dict[str, int]:
    from mltasks.models import ModelVersion

    return dict(
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("kind", "pk")
    )


class Worker:
    """The Celery worker, restartable; each one gets its own node name."""

    def __init__(self, environment: dict[str, str], log_dir: Path):
        self.environment = {**environment, "LOG_FORMAT": "text", "OMP_NUM_THREADS": "1"}
        self.log_dir = log_dir
        self.generation = 0
        self.process: subprocess.Popen | None = None
        self.hostname = ""

    def start(self, timeout_s: float = 120) -> float:
        """Start a worker and wait for its ping answer; returns the seconds it took."""
        from tunedin.celery import app

        self.generation += 1
        self.hostname = f"soak{self.generation}@{os.uname().nodename}"
        started = time.monotonic()
        with open(self.log_dir / f"worker-{self.generation}.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tunedin", "worker", "--concurrency", "1",
                 "--loglevel", "WARNING", "--hostname", self.hostname],
                cwd=stack.ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise SystemExit(f"celery worker exited with {self.process.returncode}")
            # A fresh connection per ping: pooled ones may predate a Redis restart.
            try:
                with app.connection_for_write() as connection:
                    if app.control.ping([self.hostname], timeout=1, connection=connection):
                        return time.monotonic() - started
            except (OSError, redis_errors.ConnectionError, kombu_errors.OperationalError):
                time.sleep(1)
        raise SystemExit(f"celery worker did not answer a ping within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool process."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        stack.stop_process_group(self.process)


def _wait_until(timeline: Timeline, t: float) -> None:
    while timeline.now() < t:
        time.sleep(min(0.5, t - timeline.now()))


def _advisory_lock_held(kind: str) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [TRAINING_LOCK_KEYS[kind]],
        )
        return cursor.fetchone()[0] > 0


def kill_training(*, kind: str, worker: Worker, timeline: Timeline, deadline: float,
                  kill_after_s: float) -> dict:  # fmt: skip
    """Queue a training, SIGKILL the worker once it has run kill_after_s, start a new worker."""
    from mltasks import tasks
    from mltasks.models import ModelVersion

    outcome = {"version": None, "killed_mid_training": False, "lock_released": False,
               "worker_back": False}  # fmt: skip
    known = set(ModelVersion.objects.values_list("pk", flat=True))
    task = getattr(tasks, f"train_{kind}").delay()
    timeline.note("training queued", task=f"train_{kind}", task_id=task.id)
    version = None
    while timeline.now() < deadline and version is None:
        version = (
            ModelVersion.objects.filter(kind=kind).exclude(pk__in=known).order_by("pk").first()
        )
        time.sleep(0.25)
    if version is None:
        timeline.note("training did not start in time")
        return outcome
    outcome["version"] = version.pk
    timeline.note("training started", version=version.pk)
    time.sleep(kill_after_s)
    version.refresh_from_db()
    outcome["status_at_kill"] = version.status
    outcome["killed_mid_training"] = version.status == ModelVersion.Status.TRAINING
    worker.kill()
    timeline.note("worker killed (SIGKILL)", version_status=version.status)
    lock_deadline = time.monotonic() + 15
    while _advisory_lock_held(kind) and time.monotonic() < lock_deadline:
        time.sleep(0.2)
    outcome["lock_released"] = not _advisory_lock_held(kind)
    try:
        startup_s = worker.start()
    except SystemExit as failure:
        timeline.note("worker did not come back", reason=str(failure))
        return outcome
    outcome["worker_back"] = True
    outcome["worker_startup_s"] = round(startup_s, 1)
    timeline.note("worker restarted", startup_s=round(startup_s, 1))
    version.refresh_from_db()
    outcome["status_after"] = version.status
    return outcome


def route_stats(records, timeline: Timeline) -> list[dict]:
    groups: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for t, route, status, elapsed_ms in records:
        groups[(route, timeline.phase(t))].append((status, elapsed_ms))
    rows = []
    for (route, phase), answers in sorted(groups.items()):
        statuses = [status for status, _ in answers]
        latencies = np.array([ms for _, ms in answers])
        rows.append({
            "route": route,
            "phase": phase,
            "requests": len(answers),
            "2xx": sum(200 <= s < 300 for s in statuses),
            "4xx": sum(400 <= s < 500 for s in statuses),
            "5xx": sum(s >= 500 for s in statuses),
            "errors": statuses.count(0),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        })  # fmt: skip
    return rows


def feedback_check(ledger: FeedbackLedger) -> dict:
    from feedback.models import Interaction

    rows = Interaction.objects.filter(
        idempotency_key__startswith=f"soak-{ledger.run_id}-"
    ).values_list("user_id", "idempotency_key", "pk")
    stored = Counter((user_id, key) for user_id, key, _ in rows)
    stored_id = {(user_id, key): pk for user_id, key, pk in rows}
    missing = [key for key in ledger.acknowledged if stored[key] == 0]
    duplicated = [key for key, count in stored.items() if count > 1]
    other_event = [
        key for key, event_ids in ledger.acknowledged.items()
        if key in stored_id and event_ids != {stored_id[key]}
    ]  # fmt: skip
    return {
        "acknowledged_keys": len(ledger.acknowledged),
        "stored_keys": len(stored),
        "missing": [list(key) for key in missing[:20]],
        "n_missing": len(missing),
        "duplicated": [list(key) for key in duplicated[:20]],
        "n_duplicated": len(duplicated),
        "answered_with_another_event": len(other_event),
        "stored_never_acknowledged": sum(1 for key in stored if key not in ledger.acknowledged),
        "repeats_sent": ledger.repeats,
        "retries_sent": ledger.retries,
        "still_unacknowledged": len(ledger.unacknowledged),
        "rejected_4xx": dict(ledger.rejected),
    }


def build_checks(*, stats, feedback, training, versions_before, versions_after, rss_before,
                 rss_after) -> list[dict]:  # fmt: skip
    outage = [row for row in stats if row["phase"] == "outage" and row["route"] in READ_ROUTES]
    outage_requests = sum(row["requests"] for row in outage)
    outage_5xx = sum(row["5xx"] for row in outage)
    outage_errors = sum(row["errors"] for row in outage)
    growth = (rss_after["rss_mb"] - rss_before["rss_mb"]) / rss_before["rss_mb"]
    workers = "unchanged" if rss_before["pids"] == rss_after["pids"] else "REPLACED"
    return [
        {
            "check": "read routes: no 5xx during the Redis outage",
            "passed": outage_requests > 0 and outage_5xx == 0 and outage_errors == 0,
            "detail": f"{outage_5xx} 5xx, {outage_errors} transport errors "
            f"in {outage_requests} requests",
        },
        {
            "check": "feedback: every acknowledged key stored exactly once",
            "passed": feedback["acknowledged_keys"] > 0
            and feedback["n_missing"] == 0
            and feedback["n_duplicated"] == 0
            and feedback["answered_with_another_event"] == 0,
            "detail": f"{feedback['acknowledged_keys']} keys acknowledged, "
            f"{feedback['n_missing']} missing, {feedback['n_duplicated']} duplicated, "
            f"{feedback['answered_with_another_event']} answered with another event; "
            f"{feedback['repeats_sent']} repeats, {feedback['retries_sent']} retries sent",
        },
        {
            "check": "training: killed mid-run, lock released, worker back",
            "passed": training["killed_mid_training"]
            and training["lock_released"]
            and training["worker_back"],
            "detail": f"version {training['version']} was "
            f"{training.get('status_at_kill', 'never started')} at the kill, "
            f"lock {'released' if training['lock_released'] else 'HELD'}, "
            f"worker {'back' if training['worker_back'] else 'NOT back'}; the version "
            f"stays '{training.get('status_after', '-')}'",
        },
        {
            "check": "models: active versions unchanged by the killed training",
            "passed": versions_after == versions_before,
            "detail": f"before {versions_before or 'none active'}, after {versions_after}",
        },
        {
            "check": f"web RSS grew < {RSS_GROWTH_LIMIT:.0%}",
            "passed": growth < RSS_GROWTH_LIMIT,
            "detail": f"{rss_before['rss_mb']} MB -> {rss_after['rss_mb']} MB "
            f"({growth:+.1%}); web processes {workers}",
        },
    ]


def print_report(checks: list[dict], stats: list[dict]) -> None:
    print(f"\n{'route':<15} {'phase':<7} {'requests':>8} {'2xx':>6} {'4xx':>5} {'5xx':>5} "
          f"{'errors':>6} {'p50 ms':>8} {'p99 ms':>8}")  # fmt: skip
    for row in stats:
        print(f"{row['route']:<15} {row['phase']:<7} {row['requests']:>8} {row['2xx']:>6} "
              f"{row['4xx']:>5} {row['5xx']:>5} {row['errors']:>6} {row['p50_ms']:>8.1f} "
              f"{row['p99_ms']:>8.1f}")  # fmt: skip
    width = max(len(check["check"]) for check in checks)
    print(f"\n{'check':<{width}}  result  detail")
    print("-" * (width + 50))
    for check in checks:
        verdict = "PASS" if check["passed"] else "FAIL"
        print(f"{check['check']:<{width}}  {verdict:<6}  {check['detail']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of load (>= 45)")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of load before t = 0")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--rate", type=float, default=25, help="requests/s, all clients")
    parser.add_argument(
        "--repeat-share",
        type=float,
        default=0.3,
        help="share of feedback requests that repeat an acknowledged key",
    )
    parser.add_argument(
        "--redis-outage",
        type=float,
        help="seconds Redis stays down (default: 15 %% of --duration, 5..60)",
    )
    parser.add_argument(
        "--train-kind", choices=["recommender", "continuation"], default="continuation"
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        default=1,
        help="seconds the training runs before the worker is killed",
    )
    parser.add_argument("--scale", default="0.05", help="demo world scale when seeding")
    parser.add_argument(
        "--training-budget",
        default="10",
        help="TRAINING_BUDGET_SECONDS of the first training, when none is active",
    )
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--log-level", default="WARNING", help="app LOG_LEVEL of gunicorn")
    arguments = parser.parse_args(argv)  # fmt: skip
    if arguments.duration < 45:
        parser.error("--duration must be at least 45 s (room for the two faults)")
    duration = arguments.duration
    redis_outage = arguments.redis_outage or max(5.0, min(60.0, 0.15 * duration))

    work_dir = Path(tempfile.mkdtemp(prefix="tunedin-soak-"))
    redis = stack.OwnRedis(work_dir / "redis")
    redis.start()
    os.environ["REDIS_URL"] = redis.url  # so that ensure_services leaves the shared one alone
    environment, started = stack.bench_environment(database=SOAK_DATABASE, scale=arguments.scale)
    server = worker = clients = sampler = None
    timeline = Timeline()
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    try:
        stack.prepare_database(environment=environment)
        if not active_versions():
            print("training the models once (no active version)", file=sys.stderr)
            stack.manage("train", "--kind", "all", environment={
                **environment, "TRAINING_BUDGET_SECONDS": arguments.training_budget})  # fmt: skip
        versions_before = active_versions()
        targets = soak_targets()
        from django.db import connections

        connections.close_all()
        server, base_url = stack.start_gunicorn(
            environment=environment, workers=arguments.workers, log_level=arguments.log_level
        )
        worker = Worker(environment, work_dir)
        worker.start()
        ledger = FeedbackLedger(run_id, arguments.repeat_share)
        clients = LoadClients(
            base_url=base_url, targets=targets, ledger=ledger, timeline=timeline,
            clients=arguments.clients, rate=arguments.rate, zipf=arguments.zipf,
            seed=arguments.seed,
        )  # fmt: skip
        timeline.started_at = time.monotonic() + arguments.warmup
        clients.start()
        print(f"warm-up {arguments.warmup} s, then {duration} s of load "
              f"(logs: {work_dir})", file=sys.stderr)  # fmt: skip
        _wait_until(timeline, 0)
        clients.recording.set()
        sampler = RssSampler(server, timeline)
        rss_before = sampler.measure()
        sampler.thread.start()
        timeline.note("load started", rss_mb=rss_before["rss_mb"])

        _wait_until(timeline, 0.20 * duration)
        redis.kill()
        timeline.redis_down = timeline.now()
        timeline.note("redis killed (SIGKILL)")
        _wait_until(timeline, timeline.redis_down + redis_outage)
        redis.start()
        timeline.redis_up = timeline.now()
        timeline.note("redis restarted (empty)")

        _wait_until(timeline, max(0.45 * duration, timeline.redis_up + 3))
        training = kill_training(
            kind=arguments.train_kind, worker=worker, timeline=timeline,
            deadline=0.85 * duration, kill_after_s=arguments.kill_after,
        )  # fmt: skip

        _wait_until(timeline, duration)
        clients.finish()
        sampler.stop.set()
        rss_after = sampler.measure()
        timeline.note("load stopped", rss_mb=rss_after["rss_mb"])
        versions_after = active_versions()
        stats = route_stats(clients.records, timeline)
        feedback = feedback_check(ledger)
    finally:
        if clients is not None:
            clients.finish()
        if sampler is not None:
            sampler.stop.set()
        stack.stop_process_group(server)
        if worker is not None:
            worker.stop()
        redis.stop()
        services.stop_services(started)

    checks = build_checks(
        stats=stats, feedback=feedback, training=training, versions_before=versions_before,
        versions_after=versions_after, rss_before=rss_before, rss_after=rss_after,
    )  # fmt: skip
    print_report(checks, stats)
    output, now = stack.results_path("soak")
    output.write_text(
        json.dumps(
            {
                "benchmark": "soak",
                "finished_at": now.isoformat(),
                "git_commit": stack.git_commit(),
                "host": stack.host_info(),
                "config": {**vars(arguments), "redis_outage": redis_outage, "run_id": run_id},
                "passed": all(check["passed"] for check in checks),
                "checks": checks,
                "timeline": timeline.events,
                "routes": stats,
                "feedback": feedback,
                "training": training,
                "active_versions": {"before": versions_before, "after": versions_after},
                "rss": {"before": rss_before, "after": rss_after, "samples": sampler.samples},
                "requests": len(clients.records),
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"\nwrote {output.relative_to(stack.ROOT)}")
    if all(check["passed"] for check in checks):
        shutil.rmtree(work_dir, ignore_errors=True)
        return 0
    print(f"worker and redis logs kept in {work_dir}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
