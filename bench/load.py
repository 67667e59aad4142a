"""Load benchmark: the real stack (gunicorn + embedded PostgreSQL/Redis + demo world) under wrk.

    .venv/bin/python bench/load.py                       # 2 workers a core, 32 connections, 20 s
    .venv/bin/python bench/load.py --workers 4 --connections 64 --duration 60 --no-train

What it does:
1. Starts (or reuses) the embedded services; unless DATABASE_URL is set, it uses its own
   database `tunedin_bench` on the embedded server (so feedback writes stay out of the dev DB),
   migrates it and seeds the demo world (DEMO_WORLD_SCALE, --scale, default 1: the app's own)
   if empty, and trains the models when no version is active (--no-train: the endpoints serve
   their fallbacks). The JSON records the world's size (users, tracks, interactions).
2. Starts gunicorn with tunedin/gunicorn.conf.py and N workers, with bench.settings (the real
   settings plus GET /bench/noop, a DRF no-op behind the same token authentication: the
   framework floor every API request pays). The server's cache is a Redis database of the
   bench's own (CACHE_REDIS_URL = REDIS_URL with db --cache-db, 3 by default), which the bench
   empties; the developer's cache and Celery queues are not touched.
3. For each scenario, writes a request file and replays it with wrk (bench/wrk_requests.lua):
   users are drawn from a Zipf law over users ranked by activity (exponent --zipf), tracks from
   a Zipf law over tracks ranked by popularity. Scenarios: each endpoint that exists among
   GET /api/rec/users/{id}, POST /api/continue (the user's last 5 tracks), GET
   /api/tracks/{id}/similar, POST /api/feedback; the no-op; and a weighted mix of them. Each
   runs after a 2 s warm-up. Two cold runs of the rec_user requests come first, their warm-up
   the no-op (connections only): rec_user_cold_all right after emptying the whole cache, and
   rec_user_cold (the target's "cold") right after dropping the cached rankings only, as a new
   model version does in production: rankings are keyed by version, token lookups stay cached.
   Before the read scenarios (rec_user, similar_tracks, continue), each of their distinct
   requests is sent once: "warm" means every list the run asks for is cached when it starts.
   /metrics is scraped before and after each measured run: the recommendation cache hit ratio
   comes from the difference of tunedin_recommendation_cache_lookups_total.
   Impression logging (IMPRESSIONS_ENABLED) is on, as in production: each served list appends
   its impressions to the bench's Redis database, and a thread of this process flushes them
   into the bench database every IMPRESSIONS_FLUSH_SECONDS, as the beat task does (the flush
   competes for the same CPU as the server).
   Its cost is measured after the scenarios, in --impression-rounds paired rounds (default 3)
   of the warm rec_user requests under three conditions: `logged` (logging on, flushed as
   above), `unflushed` (logging on, flusher paused: the request path's append alone; the
   backlog is written after the run) and `off` (IMPRESSIONS_ENABLED=false). Every run starts a
   fresh gunicorn, and the order of the conditions rotates from round to round (a Latin
   square: with a multiple of 3 rounds each condition runs equally often first, second and
   third), so neither a server's age nor the machine's drift favours one condition. The
   targets (≤ 2 ms) are the medians over the rounds of the paired p99 differences, logged −
   off and unflushed − off; the JSON keeps every run, and the spread of the `off` runs' p99s
   is the noise a single 20 s p99 carries on the machine.
   At 32 connections both cores are always busy, so a p99 there is mostly time spent queued
   and spreads over tens of ms from one run to the next. So each condition's server also
   answers a light load right after (--impression-light-connections, default 2: each
   connection sends its next request when the last is answered, so no queue builds up), and
   the median of those runs' logged − off p99 differences is a third target. (Pacing 32
   connections with a think time would not do: gunicorn's sync workers would sit blocked on
   the idle connections.)
4. Prints a table (requests/s, ratio to the floor, latency percentiles, cache hit ratio, 5xx,
   errors) and the issue's targets with PASS/FAIL, and writes
   bench/results/load-<UTC time>.json with them, the configuration and the host's load average
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
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: bench/load.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack  # noqa: E402
from bench.targets import target_value  # noqa: E402
from devstack import services  # noqa: E402

ROOT = stack.ROOT
LUA_SCRIPT = ROOT / "bench" / "wrk_requests.lua"
BENCH_DATABASE = "tunedin_bench"
REQUESTS_PER_SCENARIO = 20_000
MIX_WEIGHTS = {"rec_user": 0.45, "similar_tracks": 0.25, "continue": 0.15, "feedback": 0.15}
FLOOR_SCENARIO = "noop"
# Cold runs of the rec_user requests: COLD_SCENARIO drops the cached rankings only, as a new
# model version does in production (every ranking is keyed by version; token lookups stay);
# COLD_ALL_SCENARIO empties the whole cache, token lookups included.
COLD_SCENARIO = "rec_user_cold"
COLD_ALL_SCENARIO = "rec_user_cold_all"
COLD_SCENARIOS = (COLD_ALL_SCENARIO, COLD_SCENARIO)
# The impression-cost comparison: the warm rec_user requests under each condition, in paired
# rounds after the scenarios (see the module's docstring).
IMPRESSIONS_LOGGED = "logged"  # logging on, flushed while the server runs
IMPRESSIONS_UNFLUSHED = "unflushed"  # logging on, flusher paused: the append alone
IMPRESSIONS_OFF = "off"  # IMPRESSIONS_ENABLED=false
IMPRESSION_CONDITIONS = (IMPRESSIONS_OFF, IMPRESSIONS_LOGGED, IMPRESSIONS_UNFLUSHED)
IMPRESSION_SCENARIO = "rec_user"
# Read scenarios whose distinct requests are each sent once before the run (a warm cache).
WARMED_SCENARIOS = ("rec_user", "similar_tracks", "continue")
CACHE_LOOKUPS_SAMPLE = "tunedin_recommendation_cache_lookups_total"
# The targets (at 32 connections on 2 cores): (name, scenario, metric, comparison,
# threshold). Metrics: a latency percentile in ms, the cache hit ratio, the 5xx count of
# every scenario together (scenario None), or what impression logging adds to the warm
# rec_user p99: the median over the paired rounds of logged − off (IMPRESSION_COST_METRIC) and
# of unflushed − off (IMPRESSION_REQUEST_COST_METRIC, the request path's share).
IMPRESSION_COST_METRIC = "impression_added_p99_ms"
IMPRESSION_REQUEST_COST_METRIC = "impression_request_path_added_p99_ms"
# The same logged − off median, from the light-load runs: each round's servers also answer
# --impression-light-connections connections (2), where a p99 is a request's latency and not
# the length of a saturated queue; at 32 connections flat out, the off runs alone spread over
# tens of ms, so a 2 ms target cannot be read there.
IMPRESSION_LIGHT_COST_METRIC = "impression_added_p99_ms_light"
TARGETS = (
    ("rec_user warm p99", "rec_user", "p99_ms", "<=", 25.0),
    ("rec_user cold p99", COLD_SCENARIO, "p99_ms", "<=", 50.0),
    ("continue p99", "continue", "p99_ms", "<=", 50.0),
    ("mix cache hit ratio", "mix", "cache_hit_ratio", ">=", 0.90),
    ("5xx, all scenarios", None, "status_5xx", "<=", 0),
    ("impression logging adds p99", IMPRESSION_SCENARIO, IMPRESSION_COST_METRIC, "<=", 2.0),
    ("impressions: request path", IMPRESSION_SCENARIO, IMPRESSION_REQUEST_COST_METRIC, "<=",
     2.0),
    ("impression logging, light", IMPRESSION_SCENARIO, IMPRESSION_LIGHT_COST_METRIC, "<=", 2.0),
)  # fmt: skip


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
    status_5xx: int = 0
    cold_cache: bool = False
    # hit_ratio over every list (None: no lookup) and {list: {hit, miss, hit_ratio}}.
    cache: dict = field(default_factory=dict)
    floor_ratio: float | None = None
    # Busy CPU of the whole host during the run (server, PostgreSQL, Redis, the flusher and
    # wrk itself) per request served.
    host_cpu_ms_per_request: float | None = None
    # The same split by process group (stack.CPU_GROUPS; "other": the rest of the host).
    cpu_ms_per_request_by_group: dict[str, float] = field(default_factory=dict)


def cpu_ms_per_request_by_group(
    *, spent: dict[str, float], host_seconds: float, requests: int
) -> dict[str, float]:
    """Each process group's CPU per request in ms, and "other": the host's busy time that no
    group accounts for (the kernel's own work, processes that ended during the run)."""
    by_group = {group: round(1000 * seconds / requests, 3) for group, seconds in spent.items()}
    by_group["other"] = round(1000 * (host_seconds - sum(spent.values())) / requests, 3)
    return by_group


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
    if "rec_user" in scenarios:
        endpoint, requests = scenarios["rec_user"]
        scenarios[COLD_ALL_SCENARIO] = (f"{endpoint}, whole cache emptied first", requests)
        scenarios[COLD_SCENARIO] = (
            f"{endpoint}, cached rankings dropped first (as by a new model version)",
            requests,
        )
    scenarios[FLOOR_SCENARIO] = (
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
    # The cold scenarios first: nothing before them has filled the cache (they empty it anyway).
    order = {name: rank for rank, name in enumerate(COLD_SCENARIOS)}
    return dict(sorted(scenarios.items(), key=lambda item: order.get(item[0], len(order))))


def world_size() -> dict[str, int]:
    """What the bench database holds (needs django.setup())."""
    from django.contrib.auth import get_user_model

    from catalog.models import Track
    from feedback.models import Interaction

    return {
        "users": get_user_model().objects.count(),
        "tracks": Track.objects.count(),
        "interactions": Interaction.objects.count(),
    }


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


def warm_cache(*, base_url: str, requests: list[Request], threads: int = 4) -> int:
    """Send each distinct request of a read scenario once, so that the measured run starts with
    every list it will ask for in the cache ("warm"). Returns how many were sent."""
    distinct = {(r.method, r.path, r.body): r for r in requests}.values()

    def send(request: Request) -> None:
        http_request = urllib.request.Request(
            base_url + request.path,
            method=request.method,
            data=request.body.encode() or None,
            headers={"Authorization": f"Token {request.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(http_request, timeout=30) as response:
            response.read()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(send, distinct))
    return len(distinct)


class ImpressionFlusher:
    """Writes the served lists' impressions to the bench database every `interval_s` seconds
    while the server logs them, as the `impressions_flush` beat task does in production (a
    thread of this process: the bench runs no Celery). Needs django.setup()."""

    def __init__(self, *, interval_s: float):
        self.interval_s = interval_s
        self.totals = {
            "runs": 0, "lists": 0, "written": 0, "impressions": 0, "linked": 0, "seconds": 0.0
        }  # fmt: skip
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="impression-flusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after a last flush (what the server logged until now is in the database)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    def flush_once(self) -> None:
        from feedback.services import impressions_flush

        started = time.monotonic()
        try:
            flushed = impressions_flush()
        except Exception as error:  # reported in the JSON; the measurement goes on
            self.errors.append(f"{type(error).__name__}: {error}"[:300])
            return
        self.totals["runs"] += 1
        self.totals["lists"] += flushed.lists
        self.totals["written"] += flushed.written
        self.totals["impressions"] += flushed.impressions
        self.totals["linked"] += flushed.linked
        self.totals["seconds"] = round(self.totals["seconds"] + time.monotonic() - started, 3)

    def drain(self) -> None:
        """Flush in this thread until the buffer is empty (between measured runs)."""
        while True:
            lists = self.totals["lists"]
            self.flush_once()
            if self.totals["lists"] == lists:
                return

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(self.interval_s):
                self.flush_once()
            self.flush_once()
        finally:
            connection.close()


def bench_cache_url(redis_url: str, db: int) -> str:
    """`redis_url` with database number `db` (the bench's own cache, emptied by the bench)."""
    parts = urllib.parse.urlsplit(redis_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{db}"))


def empty_bench_cache(url: str, *, rankings_only: bool) -> None:
    """FLUSHDB the bench's cache database, or delete only its cached rankings (rec:* keys)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        if not rankings_only:
            client.flushdb()
            return
        keys = list(client.scan_iter(match="*:rec:v*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def scrape_cache_lookups(base_url: str) -> dict[tuple[str, str], float] | None:
    """{(list, result): count} of tunedin_recommendation_cache_lookups_total from /metrics
    (every gunicorn worker's, in multiprocess mode); None when /metrics does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[tuple[str, str], float] = {}
    try:  # an HTTPError (e.g. /metrics restricted) is an OSError too
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == CACHE_LOOKUPS_SAMPLE:
                    key = (sample.labels.get("list", ""), sample.labels.get("result", ""))
                    counts[key] = counts.get(key, 0.0) + sample.value
    except (OSError, ValueError) as error:
        print(f"  /metrics unavailable: {error}", file=sys.stderr)
        return None
    return counts


def _ratio(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None


def cache_summary(
    before: dict[tuple[str, str], float] | None, after: dict[tuple[str, str], float] | None
) -> dict:
    """{"hit_ratio": all lists together, "lists": {list: {hit, miss, hit_ratio}}} over a run;
    ratios are None when there was no lookup (or no /metrics)."""
    if before is None or after is None:
        return {"hit_ratio": None, "lists": {}}
    lists: dict[str, dict] = {}
    for (list_name, result), count in after.items():
        if result not in ("hit", "miss"):
            continue
        delta = int(round(count - before.get((list_name, result), 0.0)))
        if delta > 0:
            entry = lists.setdefault(list_name, {"hit": 0, "miss": 0})
            entry[result] += delta
    for entry in lists.values():
        entry["hit_ratio"] = _ratio(entry["hit"], entry["miss"])
    hits = sum(entry["hit"] for entry in lists.values())
    misses = sum(entry["miss"] for entry in lists.values())
    return {"hit_ratio": _ratio(hits, misses), "lists": dict(sorted(lists.items()))}


def _result(
    scenario: str, endpoint: str, summary: dict, *, cache: dict, cold_cache: bool = False
) -> ScenarioResult:
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
        status_5xx=summary.get("status_5xx", 0),
        cold_cache=cold_cache,
        cache=cache,
    )


def set_floor_ratios(results: list[ScenarioResult]) -> float | None:
    """Each scenario's requests/s over the no-op's; returns the floor's requests/s."""
    floor = next((r.requests_per_second for r in results if r.scenario == FLOOR_SCENARIO), None)
    for result in results:
        result.floor_ratio = round(result.requests_per_second / floor, 3) if floor else None
    return floor


def impression_round_orders(rounds: int) -> list[tuple[str, ...]]:
    """The order of the conditions in each round: rotations of IMPRESSION_CONDITIONS, so that
    over 3 rounds each condition runs once first, once second and once last."""
    n = len(IMPRESSION_CONDITIONS)
    return [tuple(IMPRESSION_CONDITIONS[(r + i) % n] for i in range(n)) for r in range(rounds)]


def impression_logging_cost(rounds: list[dict[str, ScenarioResult]]) -> dict | None:
    """What impression logging adds to the warm rec_user p99, from paired rounds ({condition:
    result}, one dict a round): per round, the p99s and requests/s of each condition and the
    differences logged − off and unflushed − off; over the rounds, the median of each
    difference (the targets) and the spread of the `off` p99s (the noise of one run). None
    unless a round ran both `logged` and `off`."""
    paired = [r for r in rounds if IMPRESSIONS_LOGGED in r and IMPRESSIONS_OFF in r]
    if not paired:
        return None

    def p99(run: ScenarioResult) -> float:
        return run.latency_ms["p99"]

    added = [round(p99(r[IMPRESSIONS_LOGGED]) - p99(r[IMPRESSIONS_OFF]), 2) for r in paired]
    off = [p99(r[IMPRESSIONS_OFF]) for r in paired]
    cost = {
        "rounds": len(paired),
        "p99_ms": {c: [p99(r[c]) for r in paired if c in r] for c in IMPRESSION_CONDITIONS},
        "requests_per_second": {
            c: [r[c].requests_per_second for r in paired if c in r] for c in IMPRESSION_CONDITIONS
        },
        "added_p99_ms_per_round": added,
        "added_p99_ms": round(float(np.median(added)), 2),
        "off_p99_spread_ms": round(max(off) - min(off), 2),
    }
    cpu = [r for r in paired if all(run.host_cpu_ms_per_request for run in r.values())]
    if cpu:
        # Less noisy than a p99: what logging costs the host per request, in percent.
        cost["host_cpu_ms_per_request"] = {
            c: [r[c].host_cpu_ms_per_request for r in cpu if c in r] for c in IMPRESSION_CONDITIONS
        }
        cost["host_cpu_added_percent"] = round(float(np.median([
            100 * (r[IMPRESSIONS_LOGGED].host_cpu_ms_per_request
                   / r[IMPRESSIONS_OFF].host_cpu_ms_per_request - 1)
            for r in cpu
        ])), 2)  # fmt: skip
    by_group = [
        r for r in paired
        if r[IMPRESSIONS_LOGGED].cpu_ms_per_request_by_group
        and r[IMPRESSIONS_OFF].cpu_ms_per_request_by_group
    ]  # fmt: skip
    if by_group:
        # Where the added CPU goes: median of logged - off per process group, ms per request.
        groups = by_group[0][IMPRESSIONS_LOGGED].cpu_ms_per_request_by_group
        cost["cpu_added_ms_per_request_by_group"] = {
            group: round(float(np.median([
                r[IMPRESSIONS_LOGGED].cpu_ms_per_request_by_group[group]
                - r[IMPRESSIONS_OFF].cpu_ms_per_request_by_group[group]
                for r in by_group
            ])), 3)
            for group in groups
        }  # fmt: skip
    with_unflushed = [r for r in paired if IMPRESSIONS_UNFLUSHED in r]
    if with_unflushed:
        request_path = [
            round(p99(r[IMPRESSIONS_UNFLUSHED]) - p99(r[IMPRESSIONS_OFF]), 2)
            for r in with_unflushed
        ]
        cost |= {"request_path_added_p99_ms_per_round": request_path,
                 "request_path_added_p99_ms": round(float(np.median(request_path)), 2)}  # fmt: skip
    return cost


def evaluate_targets(
    results: list[ScenarioResult],
    impression_rounds: list[dict[str, ScenarioResult]] = (),
    impression_rounds_light: list[dict[str, ScenarioResult]] = (),
) -> list[dict]:
    """The issue's targets: measured value and passed (None when the scenario did not run)."""
    by_name = {result.scenario: result for result in results}
    cost = impression_logging_cost(list(impression_rounds)) or {}
    light_cost = impression_logging_cost(list(impression_rounds_light)) or {}
    rounds_5xx = [
        run.status_5xx
        for runs in [*impression_rounds, *impression_rounds_light]
        for run in runs.values()
    ]
    rows = []
    for name, scenario, metric, comparison, threshold in TARGETS:
        if scenario is None:
            every = [result.status_5xx for result in results] + rounds_5xx
            measured = sum(every) if every else None
        elif metric == IMPRESSION_COST_METRIC:
            measured = cost.get("added_p99_ms")
        elif metric == IMPRESSION_REQUEST_COST_METRIC:
            measured = cost.get("request_path_added_p99_ms")
        elif metric == IMPRESSION_LIGHT_COST_METRIC:
            measured = light_cost.get("added_p99_ms")
        elif scenario not in by_name:
            measured = None
        elif metric == "cache_hit_ratio":
            measured = by_name[scenario].cache.get("hit_ratio")
        else:
            measured = by_name[scenario].latency_ms[metric.removesuffix("_ms")]
        if measured is None:
            passed = None
        else:
            passed = measured <= threshold if comparison == "<=" else measured >= threshold
        rows.append({
            "target": name,
            "scenario": scenario or "all",
            "metric": metric,
            "comparison": comparison,
            "threshold": threshold,
            "measured": measured,
            "passed": passed,
        })  # fmt: skip
    return rows


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else "PASS" if passed else "FAIL"


def print_table(results: list[ScenarioResult]) -> None:
    header = (
        f"{'scenario':<23} {'req/s':>8} {'x floor':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'requests':>9} {'cache hit':>9} {'5xx':>5}  errors"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        latency = result.latency_ms
        errors = ", ".join(f"{k}={v}" for k, v in result.errors.items()) or "-"
        ratio = "-" if result.floor_ratio is None else f"{result.floor_ratio:.2f}"
        hit_ratio = target_value("cache_hit_ratio", result.cache.get("hit_ratio"))
        print(
            f"{result.scenario:<23} {result.requests_per_second:>8.1f} {ratio:>7} "
            f"{latency['p50']:>8.2f} {latency['p95']:>8.2f} {latency['p99']:>8.2f} "
            f"{latency['max']:>8.1f} {result.requests:>9} {hit_ratio:>9} "
            f"{result.status_5xx:>5}  {errors}"
        )
    for result in results:
        lists = result.cache.get("lists") or {}
        lookups = "; ".join(
            f"{name} {entry['hit']} hit / {entry['miss']} miss" for name, entry in lists.items()
        )
        print(f"  {result.scenario}: {result.endpoint}" + (f" [{lookups}]" if lookups else ""))


def print_targets(targets: list[dict], *, connections: int) -> None:
    print(f"\ntargets (issue: 32 connections, 2 cores; this run: {connections} connections)")
    header = f"{'target':<28} {'required':>12} {'measured':>12}  result"
    print(header)
    print("-" * len(header))
    for row in targets:
        required = f"{row['comparison']} {target_value(row['metric'], row['threshold'])}"
        measured = target_value(row["metric"], row["measured"])
        print(f"{row['target']:<28} {required:>12} {measured:>12}  {_verdict(row['passed'])}")


def impression_rounds_record(rounds: list[dict[str, ScenarioResult]]) -> dict:
    """The JSON of paired impression rounds: their cost and every run, in its order."""
    return {
        "cost": impression_logging_cost(rounds),
        "rounds": [
            {"order": list(runs), "runs": {c: asdict(run) for c, run in runs.items()}}
            for runs in rounds
        ],
    }


def print_impression_cost(cost: dict, *, load: str) -> None:
    """Print impression_logging_cost's summary of paired rounds run under `load`."""
    print(f"\nimpression logging, warm rec_user p99 {load} over {cost['rounds']} paired "
          "rounds (ms):")  # fmt: skip
    for condition, values in cost["p99_ms"].items():
        print(f"  {condition:<10} " + "  ".join(f"{value:8.2f}" for value in values))
    print(f"  logged - off: median {cost['added_p99_ms']:+.2f} "
          f"(rounds: {', '.join(f'{v:+.2f}' for v in cost['added_p99_ms_per_round'])}); "
          f"spread of the off runs {cost['off_p99_spread_ms']:.2f}")  # fmt: skip
    if "request_path_added_p99_ms" in cost:
        print(f"  unflushed - off (the append alone): median "
              f"{cost['request_path_added_p99_ms']:+.2f}")  # fmt: skip
    for condition, values in cost.get("host_cpu_ms_per_request", {}).items():
        print(f"  host CPU ms/request, {condition:<10} "
              + "  ".join(f"{value:6.3f}" for value in values))  # fmt: skip
    if "host_cpu_added_percent" in cost:
        print(f"  logged / off host CPU per request: median "
              f"{cost['host_cpu_added_percent']:+.2f} %")  # fmt: skip
    if added := cost.get("cpu_added_ms_per_request_by_group"):
        print(
            "  logged - off CPU ms/request by process: median "
            + ", ".join(f"{group} {value:+.3f}" for group, value in added.items())
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="gunicorn workers (default: 2 a core)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=int, default=20, help="seconds per scenario")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of users/tracks")
    parser.add_argument("--scale", default=os.environ.get("DEMO_WORLD_SCALE", "1"),
                        help="demo world scale when seeding an empty database")  # fmt: skip
    parser.add_argument("--no-train", dest="train", action="store_false",
                        help="no training when no model is active: fallbacks")  # fmt: skip
    parser.add_argument("--scenarios", help="comma-separated subset, e.g. noop,rec_user")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--log-level", default="INFO", help="app LOG_LEVEL during the run")
    parser.add_argument("--cache-db", type=int, default=3,
                        help="Redis db of the bench cache (the bench empties it)")  # fmt: skip
    parser.add_argument("--impression-rounds", type=int, default=3,
                        help="paired rounds of the impression-cost comparison (0: none; it "
                        "also needs the rec_user scenario)")  # fmt: skip
    parser.add_argument("--impression-light-connections", type=int, default=2,
                        help="connections of the light-load run after each run of the "
                        "impression rounds, on the same server (0: none)")  # fmt: skip
    arguments = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    environment, started = stack.bench_environment(database=BENCH_DATABASE, scale=arguments.scale)
    cache_url = bench_cache_url(environment["REDIS_URL"], arguments.cache_db)
    shared = {environment["REDIS_URL"], os.environ.get("CACHE_REDIS_URL") or ""}
    if cache_url in shared or arguments.cache_db in (0, 1):
        services.stop_services(started)
        print(f"--cache-db {arguments.cache_db}: {cache_url} is the broker's or the "
              "developer's cache, which the bench would empty", file=sys.stderr)  # fmt: skip
        return 2
    environment["CACHE_REDIS_URL"] = cache_url
    # Impressions are buffered in the bench's own Redis database and flushed by this process.
    environment["IMPRESSIONS_REDIS_URL"] = cache_url
    server: subprocess.Popen | None = None
    flusher: ImpressionFlusher | None = None
    work_dir = Path(tempfile.mkdtemp(prefix="tunedin-load-"))
    try:
        stack.prepare_database(environment=environment)
        from mltasks.models import ModelVersion

        if arguments.train and not ModelVersion.objects.filter(status="active").exists():
            stack.manage("train", "--kind", "all", environment=environment)
        every_scenario = build_scenarios(exponent=arguments.zipf, seed=arguments.seed)
        world = world_size()
        scenarios = every_scenario
        if arguments.scenarios:
            wanted = arguments.scenarios.split(",")
            scenarios = {name: every_scenario[name] for name in every_scenario if name in wanted}
        active_models = list(
            ModelVersion.objects.filter(status="active").values_list("kind", "algorithm", "pk")
        )
        from django.db import connections

        connections.close_all()

        from django.conf import settings

        flusher = ImpressionFlusher(interval_s=settings.IMPRESSIONS_FLUSH_SECONDS)

        def serve(*, impressions: bool) -> tuple[subprocess.Popen, str]:
            """gunicorn with impression logging on or off."""
            return stack.start_gunicorn(
                environment={**environment, "IMPRESSIONS_ENABLED": str(impressions).lower()},
                workers=arguments.workers,
                log_level=arguments.log_level,
            )

        files = {}  # the cold scenario's warm-up replays the no-op's requests
        needs_floor = any(name in scenarios for name in COLD_SCENARIOS)
        for name in {*scenarios, *([FLOOR_SCENARIO] if needs_floor else [])}:
            files[name] = work_dir / f"{name}.tsv"
            lines = [request.line() for request in every_scenario[name][1]]
            files[name].write_text("\n".join(lines) + "\n")

        def measure(
            name: str, *, label: str, base_url: str, connections: int | None = None
        ) -> ScenarioResult:
            """One measured wrk run of `name`'s requests, after its warm-up, over
            `connections` connections (default: --connections)."""
            connections = connections or arguments.connections
            cold = name in COLD_SCENARIOS
            if name in WARMED_SCENARIOS:
                warm_cache(base_url=base_url, requests=every_scenario[name][1])
            if name == COLD_SCENARIO:  # every token lookup cached, as before a model release
                warm_cache(base_url=base_url, requests=every_scenario[FLOOR_SCENARIO][1])
            run_wrk(  # warm-up: models, caches, connections (cold: connections only)
                base_url=base_url,
                requests_file=files[FLOOR_SCENARIO if cold else name],
                threads=1,
                connections=2,
                duration_s=2,
            )
            if cold:
                empty_bench_cache(cache_url, rankings_only=name == COLD_SCENARIO)
            before = scrape_cache_lookups(base_url)
            cpu_before = stack.busy_cpu_seconds()
            processes_before = stack.cpu_seconds_by_process()
            summary = run_wrk(
                base_url=base_url,
                requests_file=files[name],
                threads=min(arguments.threads, connections),
                connections=connections,
                duration_s=arguments.duration,
            )
            processes_after = stack.cpu_seconds_by_process()
            cpu_after = stack.busy_cpu_seconds()
            cache = cache_summary(before, scrape_cache_lookups(base_url))
            endpoint = every_scenario[name][0]
            measured = _result(label, endpoint, summary, cache=cache, cold_cache=cold)
            if cpu_before is not None and cpu_after is not None and measured.requests:
                measured.host_cpu_ms_per_request = round(
                    1000 * (cpu_after - cpu_before) / measured.requests, 3
                )
                measured.cpu_ms_per_request_by_group = cpu_ms_per_request_by_group(
                    spent=stack.cpu_spent_by_group(processes_before, processes_after),
                    host_seconds=cpu_after - cpu_before,
                    requests=measured.requests,
                )
            return measured

        server, base_url = serve(impressions=True)
        flusher.start()
        stack.require_active_versions_served(
            base_url, active={kind: pk for kind, _, pk in active_models}
        )
        results = []
        for name in scenarios:
            results.append(measure(name, label=name, base_url=base_url))
            print(f"  {name}: {results[-1].requests_per_second} req/s", file=sys.stderr)
        stack.stop_process_group(server)
        server = None
        flusher.stop()
        flusher.drain()

        impression_rounds: list[dict[str, ScenarioResult]] = []
        impression_rounds_light: list[dict[str, ScenarioResult]] = []
        light_connections = arguments.impression_light_connections
        if IMPRESSION_SCENARIO in scenarios:
            for number, order in enumerate(impression_round_orders(arguments.impression_rounds)):
                runs, light_runs = {}, {}
                for condition in order:
                    server, base_url = serve(impressions=condition != IMPRESSIONS_OFF)
                    if condition == IMPRESSIONS_LOGGED:
                        flusher.start()
                    runs[condition] = measure(
                        IMPRESSION_SCENARIO,
                        label=f"{IMPRESSION_SCENARIO} impressions {condition}",
                        base_url=base_url,
                    )
                    if light_connections > 0:  # the same server, now under a light load
                        light_runs[condition] = measure(
                            IMPRESSION_SCENARIO,
                            label=f"{IMPRESSION_SCENARIO} impressions {condition} light",
                            base_url=base_url,
                            connections=light_connections,
                        )
                    stack.stop_process_group(server)  # its workers push what they hold
                    server = None
                    flusher.stop()
                    flusher.drain()  # the paused run's backlog: written before the next run
                    p99 = runs[condition].latency_ms["p99"]
                    light = light_runs[condition].latency_ms["p99"] if light_runs else None
                    print(f"  round {number + 1}, impressions {condition}: p99 {p99} ms "
                          f"(light: {light} ms)", file=sys.stderr)  # fmt: skip
                impression_rounds.append(runs)
                if light_runs:
                    impression_rounds_light.append(light_runs)
    finally:
        if flusher is not None:
            flusher.stop()
        stack.stop_process_group(server)
        shutil.rmtree(work_dir, ignore_errors=True)
        services.stop_services(started)

    floor = set_floor_ratios(results)
    targets = evaluate_targets(results, impression_rounds, impression_rounds_light)
    impressions = {
        **impression_rounds_record(impression_rounds),
        "light": {
            "connections": arguments.impression_light_connections,
            **impression_rounds_record(impression_rounds_light),
        },
        "flushed": flusher.totals if flusher else None,
        "flush_errors": flusher.errors if flusher else [],
    }
    if impressions["cost"]:
        print_impression_cost(impressions["cost"], load=f"at {arguments.connections} connections")
    if impressions["light"]["cost"]:
        print_impression_cost(
            impressions["light"]["cost"],
            load=f"at {arguments.impression_light_connections} connections",
        )
    print()
    print_table(results)
    print_targets(targets, connections=arguments.connections)
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
                    "cache": f"Redis db {arguments.cache_db}; {COLD_ALL_SCENARIO}: emptied "
                    f"first; {COLD_SCENARIO}: cached rankings dropped first",
                    "active_models": active_models,
                    "world": world,
                    "impressions": "logged (IMPRESSIONS_ENABLED) and flushed every "
                    "IMPRESSIONS_FLUSH_SECONDS by a thread of the bench process, except in the "
                    "impression rounds' unflushed and off runs",
                },
                "floor_requests_per_second": floor,
                "results": [asdict(result) for result in results],
                "targets": targets,
                "impressions": impressions,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
