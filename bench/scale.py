"""Scale benchmark: the demo world at several sizes, seeded, trained and served on one machine.

    .venv/bin/python bench/scale.py                       # scales 1, 3, 10 and 30
    .venv/bin/python bench/scale.py --scales 1,3 --duration 10
    .venv/bin/python bench/scale.py --scales 100 --allow-huge   # for bigger machines

For each scale (DEMO_WORLD_SCALE; scale 1 is the app's own demo world, 2,000 users), in a
database of its own on the embedded PostgreSQL (`tunedin_scale_<scale>`, dropped and created
again unless --keep-database; with DATABASE_URL set, on that server), with its own artifact
directory and store under the var directory ($TUNEDIN_VAR_DIR or var/):
1. `manage.py seed_demo`: seconds and peak RSS.
2. `manage.py train --kind <kind>` for each kind, each its own process: wall seconds, CPU
   seconds and the peak RSS of that process (its resource usage from wait4, which includes
   any child process it waited for), the served pipeline's name and validation metric (the
   version's metrics["served"] and metrics["selection"]), and whether it was activated. A
   training that fails (e.g. MemoryError) is recorded with its exit status and output tail,
   and the bench goes on.
3. In a child process with Django set up on that database: the world's size, the bytes of each
   active version's artifact directory, the Postgres size of the interactions table
   (pg_total_relation_size) and database, the FAISS HNSW recall@100 of the recommender's
   vectors against exact inner-product search over a seeded sample of users (the version's
   saved `hnsw-ip` index with efSearch 256, as serving loads it), then gunicorn and wrk as in
   bench/load.py: /api/rec with the cached rankings dropped first (cold), /api/rec warm and
   /api/continue warm, at --connections (32) for --duration seconds each.

It prints a table and the issue's targets (PASS / FAIL / not measured), writes
bench/results/scale-<UTC time>.json and bench/results/scale-latest.json (with --merge-latest,
the scales of the previous scale-latest.json that this run did not measure are carried over,
each with the time and commit it was measured at), and draws docs/benchmarks/scale.png:
training seconds and peak RSS against interactions, one line per kind. `bench/report.py` puts
the table and the plot in the README.

Needs wrk (`apt-get install wrk`) and matplotlib (requirements/dev.txt).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: bench/scale.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack  # noqa: E402
from devstack import services  # noqa: E402

ROOT = stack.ROOT
DEFAULT_SCALES = "1,3,10,30"
LARGEST_DEFAULT_SCALE = 30.0  # larger scales need --allow-huge
KINDS = ("recommender", "continuation")
DATABASE_PREFIX = "tunedin_scale_"
LATEST = "scale-latest.json"
PLOT = ROOT / "docs" / "benchmarks" / "scale.png"
# The load bench's scenarios measured at each scale: /api/rec cold and warm, /api/continue warm.
SCENARIOS = ("rec_user_cold", "rec_user", "continue")
RECALL_K = 100
EF_SEARCH = 256  # what recommendations/serving.py sets on its HNSW indexes
GB = 1e9
# The issue's targets on 2 cores / 24 GB. Training: both kinds' seconds together, and the larger
# of their peak RSS. Serving (issue section 4): p99 at scale 30 within 1.25x of scale 1's.
TRAINING_TARGETS = ((10.0, 15 * 60, 6 * GB), (30.0, 45 * 60, 12 * GB))
LATENCY_GROWTH = (("rec_user", "/api/rec warm"), ("continue", "/api/continue warm"))
LATENCY_GROWTH_SCALES = (1.0, 30.0)
LATENCY_GROWTH_LIMIT = 1.25
# "Memory close to linear in interactions": a line fits peak RSS against interactions with
# R^2 >= LINEAR_MIN_R2 and the log-log slope (growth exponent) is at most LINEAR_MAX_EXPONENT;
# R^2 alone would pass a quadratic over scales 1-30 (0.96), the exponent would not (2.0).
LINEAR_MIN_R2 = 0.98
LINEAR_MAX_EXPONENT = 1.2
LINEAR_MIN_POINTS = 3


# ------------------------------------------------------------------------------ pure parts


def parse_scales(text: str, *, allow_huge: bool) -> list[float]:
    """ "1,3,10" -> [1.0, 3.0, 10.0]; ValueError with the reason for anything else."""
    scales = []
    for part in text.split(","):
        part = part.strip()
        try:
            scale = float(part)
        except ValueError:
            raise ValueError(f"--scales: {part!r} is not a number") from None
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"--scales: {part!r} must be a positive number")
        if scale > LARGEST_DEFAULT_SCALE and not allow_huge:
            raise ValueError(
                f"--scales: {part} is above {LARGEST_DEFAULT_SCALE:g}; pass --allow-huge on a "
                "machine with the memory for it"
            )
        if scale not in scales:
            scales.append(scale)
    if not scales:
        raise ValueError("--scales: no scale given")
    return scales


def scale_label(scale: float) -> str:
    return f"{scale:g}"


def scale_database(scale: float) -> str:
    """tunedin_scale_1, tunedin_scale_0_3 (a valid unquoted PostgreSQL name)."""
    return DATABASE_PREFIX + re.sub(r"[^0-9a-z]", "_", scale_label(scale))


def linear_fit(xs: list[float], ys: list[float]) -> dict | None:
    """Least-squares line y = slope x + intercept, its R^2, and the log-log slope (the growth
    exponent); None with fewer than two distinct x."""
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if len(x) < 2 or len(np.unique(x)) < 2:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (slope * x + intercept)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - residual / total if total > 0 else 1.0
    exponent = (
        float(np.polyfit(np.log(x), np.log(y), 1)[0]) if (x > 0).all() and (y > 0).all() else None
    )
    return {
        "slope": float(slope),
        "intercept": float(intercept),
        "r2": round(r2, 6),
        "exponent": None if exponent is None else round(exponent, 4),
        "points": len(x),
    }


def _trained(entry: dict, kind: str) -> dict | None:
    training = (entry.get("training") or {}).get(kind)
    return training if training and training.get("returncode") == 0 else None


def memory_fits(scales: list[dict]) -> dict[str, dict | None]:
    """Per kind: peak RSS (bytes) against interactions over the scales where it trained."""
    fits = {}
    for kind in KINDS:
        points = [
            (entry["world"]["interactions"], _trained(entry, kind)["peak_rss_bytes"])
            for entry in scales
            if (entry.get("world") or {}).get("interactions") and _trained(entry, kind)
        ]
        fits[kind] = linear_fit([p[0] for p in points], [p[1] for p in points])
    return fits


def _row(target: str, required: str, measured: str | None, passed: bool | None) -> dict:
    return {
        "target": target,
        "required": required,
        "measured": measured,
        "passed": passed,
        "result": "not measured" if passed is None else "PASS" if passed else "FAIL",
    }


def _p99(entry: dict, scenario: str) -> float | None:
    latency = ((entry.get("latency") or {}).get(scenario) or {}).get("latency_ms") or {}
    return latency.get("p99")


def evaluate_targets(scales: list[dict], fits: dict[str, dict | None]) -> list[dict]:
    """The issue's targets, each PASS / FAIL / not measured, from the scales measured."""
    by_scale = {float(entry["scale"]): entry for entry in scales}
    rows = []
    for scale, max_seconds, max_rss in TRAINING_TARGETS:
        label = f"scale {scale_label(scale)}"
        entry = by_scale.get(scale)
        training = (entry or {}).get("training") or {}
        if entry is None or any(kind not in training for kind in KINDS):
            rows.append(
                _row(f"{label}: both kinds trained", f"≤ {max_seconds / 60:g} min", None, None)
            )
            rows.append(_row(f"{label}: peak RSS", f"≤ {max_rss / GB:g} GB", None, None))
            continue
        failed = [kind for kind in KINDS if training[kind].get("returncode") != 0]
        seconds = sum(training[kind]["seconds"] for kind in KINDS)
        measured = f"{seconds / 60:.1f} min" + (f" ({', '.join(failed)} failed)" if failed else "")
        rows.append(
            _row(
                f"{label}: both kinds trained",
                f"≤ {max_seconds / 60:g} min",
                measured,
                not failed and seconds <= max_seconds,
            )
        )
        peak = max(training[kind]["peak_rss_bytes"] for kind in KINDS)
        # A run that did not finish only bounds its peak from below: over the limit it fails,
        # under it nothing is shown yet.
        rows.append(
            _row(
                f"{label}: peak RSS",
                f"≤ {max_rss / GB:g} GB",
                f"{peak / GB:.2f} GB" + (" so far (a run did not finish)" if failed else ""),
                False if peak > max_rss else None if failed else True,
            )
        )
    for kind in KINDS:
        fit = fits.get(kind)
        required = (
            f"R² ≥ {LINEAR_MIN_R2}, exponent ≤ {LINEAR_MAX_EXPONENT} (≥ {LINEAR_MIN_POINTS} scales)"
        )
        target = f"{kind} peak RSS linear in interactions"
        if not fit or fit["points"] < LINEAR_MIN_POINTS:
            points = fit["points"] if fit else 0
            rows.append(_row(target, required, f"{points} scale(s)" if points else None, None))
            continue
        exponent = fit["exponent"]
        passed = fit["r2"] >= LINEAR_MIN_R2 and exponent is not None
        passed = passed and exponent <= LINEAR_MAX_EXPONENT
        measured = f"R² {fit['r2']:.4f}, exponent {exponent if exponent is not None else '–'}"
        rows.append(_row(target, required, measured, passed))
    small, large = (by_scale.get(scale) for scale in LATENCY_GROWTH_SCALES)
    for scenario, name in LATENCY_GROWTH:
        target = (
            f"{name} p99 at scale {scale_label(LATENCY_GROWTH_SCALES[1])} / scale "
            f"{scale_label(LATENCY_GROWTH_SCALES[0])}"
        )
        before = _p99(small, scenario) if small else None
        after = _p99(large, scenario) if large else None
        if not before or after is None:
            rows.append(_row(target, f"≤ {LATENCY_GROWTH_LIMIT}×", None, None))
            continue
        ratio = after / before
        rows.append(
            _row(
                target,
                f"≤ {LATENCY_GROWTH_LIMIT}×",
                f"{ratio:.2f}× ({after:.1f} / {before:.1f} ms)",
                ratio <= LATENCY_GROWTH_LIMIT,
            )
        )
    return rows


def _cell(value, form: str = "{}") -> str:
    return "–" if value is None else form.format(value)


def _latency(entry: dict, scenario: str) -> str:
    latency = ((entry.get("latency") or {}).get(scenario) or {}).get("latency_ms")
    if not latency:
        return "–"
    return f"{latency['p50']:.1f} / {latency['p99']:.1f}"


def _training_cells(entry: dict, kind: str) -> list[str]:
    training = (entry.get("training") or {}).get(kind)
    if not training:
        return ["–", "–", "–"]
    seconds = f"{training['seconds']:.0f}"
    if training.get("cpu_seconds") is not None:
        seconds += f" (CPU {training['cpu_seconds']:.0f})"
    if training.get("returncode") != 0:
        seconds += f" (exit {training.get('returncode')})"
    served = training.get("served")
    value = training.get("validation")
    model = "–" if not served else served + ("" if value is None else f" {value:.4f}")
    return [seconds, f"{training['peak_rss_bytes'] / GB:.2f}", model]


def _megabytes(value: int | None) -> float | None:
    return None if value is None else value / 1e6


def table_rows(scales: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The header and one row per scale (strings), for the printed table and the README."""
    header = [
        "scale",
        "users",
        "tracks",
        "interactions",
        "seed s",
        "rec train s",
        "rec peak GB",
        "rec served (valid)",
        "cont train s",
        "cont peak GB",
        "cont served (valid)",
        "rec warm p50/p99 ms",
        "rec cold p50/p99 ms",
        "continue p50/p99 ms",
        "artifacts MB",
        "interactions table MB",
        "HNSW recall@100",
    ]
    rows = []
    for entry in sorted(scales, key=lambda e: float(e["scale"])):
        world = entry.get("world") or {}
        seed = entry.get("seed") or {}
        artifacts = entry.get("artifact_bytes") or {}
        postgres = entry.get("postgres") or {}
        recall = (entry.get("recall") or {}).get("recall_at_100")
        rows.append(
            [
                scale_label(float(entry["scale"])),
                _cell(world.get("users"), "{:,}"),
                _cell(world.get("tracks"), "{:,}"),
                _cell(world.get("interactions"), "{:,}"),
                _cell(seed.get("seconds"), "{:.0f}"),
                *_training_cells(entry, "recommender"),
                *_training_cells(entry, "continuation"),
                _latency(entry, "rec_user"),
                _latency(entry, "rec_user_cold"),
                _latency(entry, "continue"),
                _cell(sum(artifacts.values()) / 1e6 if artifacts else None, "{:.1f}"),
                _cell(_megabytes(postgres.get("interactions_table_bytes")), "{:.1f}"),
                _cell(recall, "{:.4f}"),
            ]
        )
    return header, rows


def format_table(scales: list[dict], targets: list[dict]) -> str:
    """The plain-text table of the scales and the targets, as printed."""
    header, rows = table_rows(scales)
    lines = []
    # Transposed: one line per measure, one column per scale (17 measures do not fit across).
    width = max(len(name) for name in header)
    for index, name in enumerate(header):
        cells = "  ".join(f"{row[index]:>24}" for row in rows)
        lines.append(f"{name:<{width}}  {cells}")
    lines += ["", "targets (issue 11: 2 cores / 24 GB)"]
    target_width = max((len(row["target"]) for row in targets), default=10)
    required_width = max((len(row["required"]) for row in targets), default=10)
    for row in targets:
        lines.append(
            f"{row['target']:<{target_width}}  {row['required']:<{required_width}}  "
            f"{row['measured'] or '–':<28}  {row['result']}"
        )
    return "\n".join(lines)


def merge_scales(new: list[dict], previous: list[dict]) -> list[dict]:
    """`new`, plus the scales of `previous` that `new` did not measure; sorted by scale."""
    measured = {float(entry["scale"]) for entry in new}
    kept = [entry for entry in previous if float(entry["scale"]) not in measured]
    return sorted([*new, *kept], key=lambda entry: float(entry["scale"]))


# ------------------------------------------------------------------------------ processes


def timed_process(command: list[str], *, environment: dict[str, str], label: str) -> dict:
    """Run `command` to the end; its wall seconds, CPU seconds, peak RSS (bytes, from wait4:
    the process and the children it waited for), exit status and last lines of output (which
    are also echoed to stderr).

    Linux carries a process's peak RSS over exec, and the child starts as a copy of this one:
    the peak reported is never below this process's own peak ("launcher_peak_rss_bytes", tens
    of megabytes for bench/scale.py), far below what a training uses."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    tail: collections.deque[str] = collections.deque(maxlen=15)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line.rstrip())
            print(f"  [{label}] {line.rstrip()}", file=sys.stderr)
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        stop_child(process)
        raise
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, not by Popen
    return {
        "seconds": round(time.monotonic() - started, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # kilobytes on Linux
        "returncode": process.returncode,
        "launcher_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "output_tail": list(tail),
    }


def stop_child(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM a child of this run (SIGKILL when it has not exited within `timeout_s`)."""
    if process.returncode is not None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def working_tree_changed() -> bool | None:
    """Whether tracked files differ from the commit (the numbers are then the working tree's)."""
    completed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return bool(completed.stdout.strip()) if completed.returncode == 0 else None


def _exit_on_sigterm() -> None:
    """SIGTERM as SystemExit: the finally blocks stop gunicorn, the training child and the
    services this run started instead of leaving them behind."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def drop_database(server_url: str, database: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def catalog_has_tracks(database_url: str) -> bool:
    import psycopg

    with psycopg.connect(database_url) as connection:
        table = connection.execute("SELECT to_regclass('catalog_track')").fetchone()[0]
        if table is None:
            return False
        return connection.execute("SELECT EXISTS (SELECT 1 FROM catalog_track)").fetchone()[0]


def scale_environment(
    *, scale: float, service_environment: dict[str, str], cache_db: int
) -> tuple[dict[str, str], list[Path]]:
    """The environment of one scale's processes and the directories that belong to its
    database (removed with it): ARTIFACTS_DIR, the artifact store and its cache, unless set."""
    database = scale_database(scale)
    server_url = service_environment.get("DATABASE_URL") or os.environ["DATABASE_URL"]
    environment = {**os.environ, **service_environment}
    environment["DATABASE_URL"] = stack.bench_database_url(server_url, database)
    name = database.replace("_", "-")
    owned = []
    for variable, directory in (
        ("ARTIFACTS_DIR", services.var_dir() / f"artifacts-{name}"),
        ("ARTIFACT_STORAGE_URL", services.var_dir() / f"artifact-store-{name}"),
        ("ARTIFACT_CACHE_DIR", services.var_dir() / f"artifact-cache-{name}"),
    ):
        if not environment.get(variable):
            environment[variable] = (
                f"file://{directory}" if variable == "ARTIFACT_STORAGE_URL" else str(directory)
            )
            owned.append(directory)
    redis_url = environment["REDIS_URL"]
    environment |= {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEMO_WORLD_SCALE": scale_label(scale),
        "CACHE_REDIS_URL": _cache_url(redis_url, cache_db),
    }
    for name, value in stack.BENCH_DEFAULTS.items():
        environment.setdefault(name, value)
    return environment, owned


def _cache_url(redis_url: str, db: int) -> str:
    from bench.load import bench_cache_url

    return bench_cache_url(redis_url, db)


def run_scale(
    *, scale: float, arguments: argparse.Namespace, service_environment: dict[str, str]
) -> dict:
    """Seed, train and measure one scale (see the module docstring); returns its entry."""
    label = f"scale {scale_label(scale)}"
    database = scale_database(scale)
    server_url = service_environment.get("DATABASE_URL") or os.environ["DATABASE_URL"]
    if not arguments.keep_database:
        print(f"{label}: dropping and creating {database}", file=sys.stderr)
        drop_database(server_url, database)
    environment, owned = scale_environment(
        scale=scale, service_environment=service_environment, cache_db=arguments.cache_db
    )
    if not arguments.keep_database:
        for directory in owned:
            shutil.rmtree(directory, ignore_errors=True)
    started = time.monotonic()
    entry: dict = {
        "scale": scale,
        "database": database,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": stack.git_commit(),
        "working_tree_changed": working_tree_changed(),
        "errors": [],
    }
    stack.manage("migrate", "--noinput", "-v", "0", environment=environment)
    if catalog_has_tracks(environment["DATABASE_URL"]):
        entry["seed"] = {"seconds": None, "note": "already seeded (--keep-database): not timed"}
    else:
        print(f"{label}: seeding", file=sys.stderr)
        entry["seed"] = timed_process(
            [sys.executable, "manage.py", "seed_demo", "--skip-checks"],
            environment=environment,
            label=f"{label} seed",
        )
        if entry["seed"]["returncode"] != 0:
            entry["errors"].append(f"seed_demo exited with {entry['seed']['returncode']}")
            return entry
    entry["training"] = {}
    for kind in KINDS:
        print(f"{label}: training {kind}", file=sys.stderr)
        result = timed_process(
            [sys.executable, "manage.py", "train", "--kind", kind],
            environment=environment,
            label=f"{label} train {kind}",
        )
        entry["training"][kind] = result
        if result["returncode"] != 0:
            entry["errors"].append(f"train --kind {kind} exited with {result['returncode']}")
    with tempfile.TemporaryDirectory(prefix="tunedin-scale-") as work:
        output = Path(work) / "measure.json"
        measuring = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--measure-into",
                str(output),
                "--workers",
                str(arguments.workers),
                "--threads",
                str(arguments.threads),
                "--connections",
                str(arguments.connections),
                "--duration",
                str(arguments.duration),
                "--zipf",
                str(arguments.zipf),
                "--seed",
                str(arguments.seed),
                "--recall-users",
                str(arguments.recall_users),
                "--log-level",
                arguments.log_level,
            ],
            cwd=ROOT,
            env=environment,
        )
        try:
            returncode = measuring.wait()
        except BaseException:  # SIGTERM'd: its own SIGTERM stops its gunicorn
            stop_child(measuring)
            raise
        if output.exists():
            measured = json.loads(output.read_text())
            entry["errors"] += measured.pop("errors", [])
            for kind, version in measured.pop("versions", {}).items():
                entry["training"].setdefault(kind, {}).update(version)
            entry |= measured
        if returncode != 0:
            entry["errors"].append(f"the measuring process exited with {returncode}")
    entry["total_seconds"] = round(time.monotonic() - started, 1)
    if arguments.drop_after:
        drop_database(server_url, database)
        for directory in owned:
            shutil.rmtree(directory, ignore_errors=True)
    return entry


# ------------------------------------------------------------------- the measuring process


def version_summary(version) -> dict:
    """What the scale bench records of a trained version."""
    metrics = version.metrics or {}
    selection = metrics.get("selection") or {}
    served = metrics.get("served")
    scores = selection.get("scores") or {}
    return {
        "version_id": version.pk,
        "status": version.status,
        "algorithm": version.algorithm,
        "served": served,
        "validation_metric": selection.get("metric"),
        "validation": scores.get(served),
        "activation": (metrics.get("activation") or {}).get("reason"),
        "error": version.error or None,
    }


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def hnsw_recall(*, directory: Path, sample_users: int, seed: int, k: int = RECALL_K) -> dict:
    """Recall@k of the version's HNSW inner-product index (efSearch as served) against exact
    search, over a seeded sample of its users' vectors."""
    from mltasks.indexes import build_faiss_index
    from mltasks.ml.artifacts import faiss_index_path, load_serving_vectors

    vectors = load_serving_vectors(directory)
    if vectors.user_vectors is None or not len(vectors.user_vectors):
        return {"recall_at_100": None, "note": "the version has no user vectors"}
    items = np.ascontiguousarray(vectors.item_vectors, dtype=np.float32)
    k = min(k, len(items))
    rng = np.random.default_rng(seed)
    users = rng.choice(
        len(vectors.user_vectors), min(sample_users, len(vectors.user_vectors)), replace=False
    )
    queries = np.ascontiguousarray(vectors.user_vectors[np.sort(users)], dtype=np.float32)
    started = time.monotonic()
    path = faiss_index_path(directory, "hnsw-ip")
    if path.exists():
        import faiss

        index, source = faiss.read_index(str(path)), "saved with the version"
    else:
        index, source = build_faiss_index(vectors=items, kind="hnsw-ip"), "built here"
    load_seconds = time.monotonic() - started
    index.hnsw.efSearch = EF_SEARCH
    started = time.monotonic()
    _, approximate = index.search(queries, k)
    search_ms = 1000 * (time.monotonic() - started) / len(queries)
    hits = 0
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ items.T
        exact = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, found in zip(exact, approximate[start : start + 256], strict=True):
            hits += len(np.intersect1d(row, found[found >= 0]))
    return {
        "recall_at_100": round(hits / (len(queries) * k), 4),
        "k": k,
        "users": len(queries),
        "items": len(items),
        "ef_search": EF_SEARCH,
        "index": f"hnsw-ip, {source}",
        "index_load_seconds": round(load_seconds, 2),
        "search_ms_per_user": round(search_ms, 3),
    }


def measure_latency(*, arguments: argparse.Namespace, work_dir: Path) -> dict:
    """The load bench's cold /api/rec, warm /api/rec and warm /api/continue runs."""
    from django.db import connections

    from bench import load

    every = load.build_scenarios(exponent=arguments.zipf, seed=arguments.seed)
    connections.close_all()
    files = {}
    for name in {*SCENARIOS, load.FLOOR_SCENARIO}:
        if name in every:
            files[name] = work_dir / f"{name}.tsv"
            files[name].write_text("\n".join(r.line() for r in every[name][1]) + "\n")
    cache_url = os.environ["CACHE_REDIS_URL"]
    server = None
    results = {}
    try:
        server, base_url = stack.start_gunicorn(
            environment=dict(os.environ), workers=arguments.workers, log_level=arguments.log_level
        )
        for name in SCENARIOS:
            if name not in every:
                continue
            endpoint, requests = every[name]
            cold = name in load.COLD_SCENARIOS
            if name in load.WARMED_SCENARIOS:
                load.warm_cache(base_url=base_url, requests=requests)
            if name == load.COLD_SCENARIO:  # token lookups cached, as before a model release
                load.warm_cache(base_url=base_url, requests=every[load.FLOOR_SCENARIO][1])
            load.run_wrk(
                base_url=base_url,
                requests_file=files[load.FLOOR_SCENARIO if cold else name],
                threads=1,
                connections=2,
                duration_s=2,
            )
            if cold:
                load.empty_bench_cache(cache_url, rankings_only=name == load.COLD_SCENARIO)
            before = load.scrape_cache_lookups(base_url)
            summary = load.run_wrk(
                base_url=base_url,
                requests_file=files[name],
                threads=arguments.threads,
                connections=arguments.connections,
                duration_s=arguments.duration,
            )
            cache = load.cache_summary(before, load.scrape_cache_lookups(base_url))
            result = load._result(name, endpoint, summary, cache=cache, cold_cache=cold)
            results[name] = asdict(result)
            print(
                f"  {name}: p50 {result.latency_ms['p50']} ms, p99 {result.latency_ms['p99']} ms",
                file=sys.stderr,
            )
    finally:
        stack.stop_process_group(server)
    return results


def measure(arguments: argparse.Namespace) -> int:
    """The measuring process: Django on the scale's database (from the environment)."""
    import django

    django.setup()
    from django.db import connection

    from bench import load
    from feedback.models import Interaction
    from mltasks.artifact_store import artifact_directory_of
    from mltasks.models import ModelVersion

    report: dict = {"errors": [], "versions": {}, "artifact_bytes": {}}
    output = Path(arguments.measure_into)

    def save() -> None:
        output.write_text(json.dumps(report, indent=1, default=str))

    report["world"] = load.world_size()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(%s::regclass), pg_database_size(current_database())",
            [Interaction._meta.db_table],
        )
        table_bytes, database_bytes = cursor.fetchone()
    report["postgres"] = {
        "interactions_table": Interaction._meta.db_table,
        "interactions_table_bytes": table_bytes,
        "database_bytes": database_bytes,
    }
    for kind in KINDS:
        version = ModelVersion.objects.filter(kind=kind).order_by("-created_at", "-pk").first()
        if version is None:
            continue
        report["versions"][kind] = version_summary(version)
        active = ModelVersion.objects.filter(kind=kind, status="active").first()
        if active is None:
            continue
        try:
            directory = artifact_directory_of(
                version_id=active.pk, artifact_path=active.artifact_path
            )
            report["artifact_bytes"][kind] = directory_bytes(directory)
            if kind == "recommender":
                report["recall"] = hnsw_recall(
                    directory=directory, sample_users=arguments.recall_users, seed=arguments.seed
                )
        except Exception as error:  # a broken artifact is a result to report, not a crash
            report["errors"].append(f"{kind} version {active.pk} artifacts: {error!r}")
    save()
    work_dir = Path(tempfile.mkdtemp(prefix="tunedin-scale-wrk-"))
    report["load_average_before_serving"] = os.getloadavg()
    try:
        report["latency"] = measure_latency(arguments=arguments, work_dir=work_dir)
        report["load_average_after_serving"] = os.getloadavg()
    except Exception as error:
        report["errors"].append(f"latency: {error!r}")
        save()
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    save()
    return 0


# ------------------------------------------------------------------------------ the plot


def _count_label(value: float) -> str:
    """300000 -> "300k", 9000000 -> "9M"."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def draw_plot(scales: list[dict], path: Path) -> Path | None:
    """Training seconds and peak RSS against interactions, one line per kind (log-log), with
    the issue's scale-10 and scale-30 limits as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    figure, (seconds_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.4))
    ticks: set[float] = set()
    for kind, marker in zip(KINDS, ("o", "s"), strict=True):
        points = sorted(
            (entry["world"]["interactions"], _trained(entry, kind), float(entry["scale"]))
            for entry in scales
            if (entry.get("world") or {}).get("interactions") and _trained(entry, kind)
        )
        for axis, value in ((seconds_axis, "seconds"), (memory_axis, "peak_rss_bytes")):
            divisor = GB if value == "peak_rss_bytes" else 1
            ys = [p[1][value] / divisor for p in points]
            axis.plot([p[0] for p in points], ys, marker=marker, label=kind)
            for (x, _, scale), y in zip(points, ys, strict=True):
                axis.annotate(f"×{scale_label(scale)}", (x, y), textcoords="offset points",
                              xytext=(5, -11), fontsize=8)  # fmt: skip
        ticks |= {p[0] for p in points}
    if not ticks:
        plt.close(figure)
        return None
    for scale, max_seconds, max_rss in TRAINING_TARGETS:
        for axis, limit, what in (
            (seconds_axis, max_seconds, " (both kinds together)"),
            (memory_axis, max_rss / GB, ""),
        ):
            axis.axhline(limit, color="grey", linestyle="--", linewidth=0.8)
            axis.annotate(f"scale {scale_label(scale)} limit{what}", (0.01, limit),
                          xycoords=("axes fraction", "data"), textcoords="offset points",
                          xytext=(0, 3), fontsize=8, color="grey")  # fmt: skip
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axis, title, unit in (
        (seconds_axis, "Training time", "seconds"),
        (memory_axis, "Peak RSS of the training process", "GB"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _count_label(value)))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("interactions (points labelled ×DEMO_WORLD_SCALE)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(loc="best")
        axis.margins(x=0.1)
    figure.suptitle("TunedIn demo world by scale (bench/scale.py)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    return path


# ------------------------------------------------------------------------------ main


def _memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scales",
        default=DEFAULT_SCALES,
        help=f"comma-separated DEMO_WORLD_SCALEs (default {DEFAULT_SCALES})",
    )
    parser.add_argument(
        "--allow-huge",
        action="store_true",
        help=f"allow scales above {LARGEST_DEFAULT_SCALE:g} (e.g. 100)",
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="reuse a scale's database when seeded (seeding is then not timed)",
    )
    parser.add_argument(
        "--drop-after",
        action="store_true",
        help="drop each scale's database and artifacts once measured",
    )
    parser.add_argument(
        "--merge-latest",
        action="store_true",
        help=f"carry over the other scales of bench/results/{LATEST}",
    )
    parser.add_argument("--no-plot", dest="plot", action="store_false")
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="gunicorn workers (default: 2 a core)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk scenario")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of users/tracks")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--recall-users", type=int, default=1000, help="users sampled for the HNSW recall@100"
    )
    parser.add_argument("--log-level", default="WARNING", help="app LOG_LEVEL of gunicorn")
    parser.add_argument(
        "--cache-db", type=int, default=4, help="Redis db of the bench cache (the bench empties it)"
    )
    parser.add_argument("--measure-into", help=argparse.SUPPRESS)  # the measuring process
    arguments = parser.parse_args(argv)
    _exit_on_sigterm()
    if arguments.measure_into:
        return measure(arguments)
    try:
        scales = parse_scales(arguments.scales, allow_huge=arguments.allow_huge)
    except ValueError as error:
        parser.error(str(error))
    if arguments.recall_users < 1 or arguments.duration < 1 or arguments.connections < 1:
        parser.error("--recall-users, --duration and --connections must be at least 1")
    if arguments.cache_db in (0, 1):
        parser.error(f"--cache-db {arguments.cache_db} is the broker's or the developer's cache")
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    service_environment, started = services.ensure_services()
    entries = []
    try:
        for scale in scales:
            entries.append(
                run_scale(scale=scale, arguments=arguments, service_environment=service_environment)
            )
    finally:
        services.stop_services(started)

    output, now = stack.results_path("scale")
    latest = stack.RESULTS_DIR / LATEST
    all_entries = entries
    if arguments.merge_latest and latest.exists():
        all_entries = merge_scales(entries, json.loads(latest.read_text()).get("scales", []))
    fits = memory_fits(all_entries)
    targets = evaluate_targets(all_entries, fits)
    print()
    print(format_table(all_entries, targets))
    plot = draw_plot(all_entries, PLOT) if arguments.plot else None
    config = {key: value for key, value in vars(arguments).items() if key != "measure_into"}
    report = {
        "benchmark": "scale",
        "finished_at": now.isoformat(),
        "git_commit": stack.git_commit(),
        "host": {**stack.host_info(), "memory_bytes": _memory_total_bytes()},
        "config": {
            **config,
            "scales": [scale_label(scale) for scale in scales],
            "scenarios": list(SCENARIOS),
            "training_budget_seconds": os.environ.get("TRAINING_BUDGET_SECONDS", "default"),
            "peak_rss": "ru_maxrss of each manage.py process (wait4)",
            "recall": f"FAISS hnsw-ip, efSearch {EF_SEARCH}, vs exact inner product, "
            f"{RECALL_K} per user",
        },
        "scales": all_entries,
        "memory_fits": fits,
        "targets": targets,
        "plot": str(plot.relative_to(ROOT)) if plot else None,
    }
    text = json.dumps(report, indent=2, default=str) + "\n"
    output.write_text(text)
    latest.write_text(text)
    print(
        f"\nwrote {output.relative_to(ROOT)} and {latest.relative_to(ROOT)}"
        + (f"; plot {plot.relative_to(ROOT)}" if plot else "")
    )
    return 1 if any(entry["errors"] for entry in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
