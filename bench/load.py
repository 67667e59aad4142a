"""Load benchmark: the real stack (gunicorn + embedded PostgreSQL/Redis + demo world) under wrk.

    .venv/bin/python bench/load.py                       # 2 workers, 20 s per scenario
    .venv/bin/python bench/load.py --workers 4 --connections 32 --duration 60 --train

What it does:
1. Starts (or reuses) the embedded services; unless DATABASE_URL is set, it uses its own
   database `tunedin_bench` on the embedded server (so feedback writes stay out of the dev DB),
   migrates it and seeds the demo world (DEMO_WORLD_SCALE, --scale) if empty; --train trains
   the models when no version is active (otherwise the endpoints serve their fallbacks).
2. Starts gunicorn with tunedin/gunicorn.conf.py and N workers, with bench.settings (the real
   settings plus GET /bench/noop, a DRF no-op behind the same token authentication: the
   framework floor every API request pays).
3. For each scenario, writes a request file and replays it with wrk (bench/wrk_requests.lua):
   users are drawn from a Zipf law over users ranked by activity (exponent --zipf), tracks from
   a Zipf law over tracks ranked by popularity. Scenarios: each endpoint that exists among
   GET /api/rec/users/{id}, POST /api/continue (the user's last 5 tracks), GET
   /api/tracks/{id}/similar, POST /api/feedback; the no-op; and a weighted mix of them.
4. Prints a table (requests/s, latency percentiles, errors) and writes
   bench/results/load-<UTC time>.json with the configuration and the host's load average
   (the CPU is shared: compare runs made under the same conditions).

wrk comes from Debian (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: bench/load.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack  # noqa: E402
from devstack import services  # noqa: E402

ROOT = stack.ROOT
LUA_SCRIPT = ROOT / "bench" / "wrk_requests.lua"
BENCH_DATABASE = "tunedin_bench"
REQUESTS_PER_SCENARIO = 20_000
MIX_WEIGHTS = {"rec_user": 0.45, "similar_tracks": 0.25, "continue": 0.15, "feedback": 0.15}


@dataclass
class Request:
    method: str
    path: str
    token: str
    body: str = ""

    def line(self) -> str:
        return f"{self.method}\t{self.path}\t{self.token}\t{self.body}"


@dataclass
class ScenarioResult:
    scenario: str
    endpoint: str
    requests: int
    requests_per_second: float
    latency_ms: dict[str, float]
    errors: dict[str, int] = field(default_factory=dict)


def build_scenarios(*, exponent: float, seed: int) -> dict[str, tuple[str, list[Request]]]:
    """Request lists per scenario, from the database (needs django.setup())."""
    from django.contrib.auth import get_user_model
    from django.db.models import Count
    from django.urls import NoReverseMatch, reverse
    from rest_framework.authtoken.models import Token

    from catalog.models import Track
    from feedback.models import Interaction

    rng = np.random.default_rng(seed)
    users = list(
        get_user_model()
        .objects.annotate(n_interactions=Count("interactions"))
        .filter(n_interactions__gt=0)
        .order_by("-n_interactions", "pk")
        .values_list("pk", flat=True)
    )
    track_ids = list(Track.objects.order_by("-popularity", "pk").values_list("pk", flat=True))
    if not users or not track_ids:
        raise SystemExit("the benchmark database has no listeners or tracks: seed it first")

    def url(name: str, **kwargs) -> str | None:
        try:
            return reverse(name, kwargs=kwargs or None)
        except NoReverseMatch:
            return None

    sampled_users = [
        users[i] for i in stack.zipf_choice(rng, len(users), REQUESTS_PER_SCENARIO, exponent)
    ]
    sampled_tracks = [
        track_ids[i]
        for i in stack.zipf_choice(rng, len(track_ids), REQUESTS_PER_SCENARIO, exponent)
    ]
    tokens = {}
    for user_id in set(sampled_users):
        tokens[user_id] = Token.objects.get_or_create(user_id=user_id)[0].key
    scenarios: dict[str, tuple[str, list[Request]]] = {}

    if url("api-rec-user", user_id=1):
        scenarios["rec_user"] = (
            "GET /api/rec/users/{id}",
            [Request("GET", url("api-rec-user", user_id=u), tokens[u]) for u in sampled_users],
        )
    if url("api-similar-tracks", track_id=1):
        scenarios["similar_tracks"] = (
            "GET /api/tracks/{id}/similar",
            [
                Request("GET", url("api-similar-tracks", track_id=t), tokens[u])
                for u, t in zip(sampled_users, sampled_tracks, strict=True)
            ],
        )
    if url("api-continue"):
        recent: dict[int, list[int]] = {}
        for user_id in set(sampled_users):
            recent[user_id] = list(
                Interaction.objects.filter(user_id=user_id, kind__in=("play", "like"))
                .order_by("-occurred_at")
                .values_list("track_id", flat=True)[:5]
            )[::-1] or [track_ids[0]]
        scenarios["continue"] = (
            "POST /api/continue",
            [
                Request("POST", url("api-continue"), tokens[u], json.dumps({"tracks": recent[u]}))
                for u in sampled_users
            ],
        )
    if url("api-feedback"):
        scenarios["feedback"] = (
            "POST /api/feedback",
            [
                Request(
                    "POST",
                    url("api-feedback"),
                    tokens[u],
                    json.dumps({"track_id": t, "event": "play"}),
                )
                for u, t in zip(sampled_users, sampled_tracks, strict=True)
            ],
        )
    scenarios["noop"] = (
        "GET /bench/noop (framework floor)",
        [Request("GET", url("bench-noop"), tokens[u]) for u in sampled_users],
    )
    present = {name: weight for name, weight in MIX_WEIGHTS.items() if name in scenarios}
    if present:
        total = sum(present.values())
        picker = random.Random(seed)
        names, weights = list(present), [weight / total for weight in present.values()]
        mix = []
        for index in range(REQUESTS_PER_SCENARIO):
            name = picker.choices(names, weights)[0]
            mix.append(scenarios[name][1][index])
        label = " + ".join(f"{round(100 * w)}% {n}" for n, w in zip(names, weights, strict=True))
        scenarios["mix"] = (f"mix: {label}", mix)
    return scenarios


def run_wrk(
    *, base_url: str, requests_file: Path, threads: int, connections: int, duration_s: int
) -> dict:
    completed = subprocess.run(
        ["wrk", "--threads", str(threads), "--connections", str(connections),
         "--duration", f"{duration_s}s", "--timeout", "10s", "--script", str(LUA_SCRIPT),
         base_url],
        env={**os.environ, "WRK_REQUESTS_FILE": str(requests_file)},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    for line in completed.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line.removeprefix("WRK_JSON "))
    raise RuntimeError(f"no summary from wrk:\n{completed.stdout}\n{completed.stderr}")


def _result(scenario: str, endpoint: str, summary: dict) -> ScenarioResult:
    seconds = summary["duration_us"] / 1e6
    latency = summary["latency_us"]
    errors = {kind: count for kind, count in summary["errors"].items() if count}
    if "status" in errors:
        errors["non_2xx_3xx"] = errors.pop("status")
    return ScenarioResult(
        scenario=scenario,
        endpoint=endpoint,
        requests=summary["requests"],
        requests_per_second=round(summary["requests"] / seconds, 1),
        latency_ms={key: round(value / 1000, 2) for key, value in latency.items()},
        errors=errors,
    )


def print_table(results: list[ScenarioResult]) -> None:
    header = (
        f"{'scenario':<16} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'requests':>9}  errors"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        latency = result.latency_ms
        errors = ", ".join(f"{k}={v}" for k, v in result.errors.items()) or "-"
        print(
            f"{result.scenario:<16} {result.requests_per_second:>8.1f} {latency['p50']:>8.2f} "
            f"{latency['p90']:>8.2f} {latency['p99']:>8.2f} {latency['max']:>8.1f} "
            f"{result.requests:>9}  {errors}"
        )
    for result in results:
        print(f"  {result.scenario}: {result.endpoint}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--duration", type=int, default=20, help="seconds per scenario")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of users/tracks")
    parser.add_argument("--scale", default=os.environ.get("DEMO_WORLD_SCALE", "0.1"),
                        help="demo world scale when seeding an empty database")  # fmt: skip
    parser.add_argument("--train", action="store_true", help="train models if none is active")
    parser.add_argument("--scenarios", help="comma-separated subset, e.g. noop,rec_user")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--log-level", default="INFO", help="app LOG_LEVEL during the run")
    arguments = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    environment, started = stack.bench_environment(database=BENCH_DATABASE, scale=arguments.scale)
    server: subprocess.Popen | None = None
    work_dir = Path(tempfile.mkdtemp(prefix="tunedin-load-"))
    try:
        stack.prepare_database(environment=environment)
        from mltasks.models import ModelVersion

        if arguments.train and not ModelVersion.objects.filter(status="active").exists():
            stack.manage("train", "--kind", "all", environment=environment)
        scenarios = build_scenarios(exponent=arguments.zipf, seed=arguments.seed)
        if arguments.scenarios:
            wanted = arguments.scenarios.split(",")
            scenarios = {name: scenarios[name] for name in wanted if name in scenarios}
        active_models = list(
            ModelVersion.objects.filter(status="active").values_list("kind", "algorithm", "pk")
        )
        from django.db import connections

        connections.close_all()

        server, base_url = stack.start_gunicorn(
            environment=environment, workers=arguments.workers, log_level=arguments.log_level
        )

        results = []
        for name, (endpoint, requests) in scenarios.items():
            requests_file = work_dir / f"{name}.tsv"
            requests_file.write_text("\n".join(request.line() for request in requests) + "\n")
            run_wrk(  # warm-up: models, caches, connections
                base_url=base_url,
                requests_file=requests_file,
                threads=1,
                connections=2,
                duration_s=2,
            )
            summary = run_wrk(
                base_url=base_url,
                requests_file=requests_file,
                threads=arguments.threads,
                connections=arguments.connections,
                duration_s=arguments.duration,
            )
            results.append(_result(name, endpoint, summary))
            print(f"  {name}: {results[-1].requests_per_second} req/s", file=sys.stderr)
    finally:
        stack.stop_process_group(server)
        shutil.rmtree(work_dir, ignore_errors=True)
        services.stop_services(started)

    print()
    print_table(results)
    output, now = stack.results_path("load")
    output.write_text(
        json.dumps(
            {
                "benchmark": "load",
                "finished_at": now.isoformat(),
                "git_commit": stack.git_commit(),
                "host": stack.host_info(),
                "config": {
                    **{key: value for key, value in vars(arguments).items()},
                    "requests_per_scenario_file": REQUESTS_PER_SCENARIO,
                    "server": "gunicorn sync workers, tunedin/gunicorn.conf.py",
                    "load_generator": "wrk (bench/wrk_requests.lua)",
                    "active_models": active_models,
                },
                "results": [asdict(result) for result in results],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
