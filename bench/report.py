"""Write the README's benchmark tables from the JSON files under bench/results/.

    .venv/bin/python bench/report.py          # rewrites the block between the markers

Every number comes from a JSON file a benchmark wrote; nothing here is typed by hand. A table
whose file is missing says so and names the command that makes it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: bench/report.py
    sys.path.insert(0, str(ROOT))

from bench.targets import target_value  # noqa: E402

RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
START, END = "<!-- BENCHMARKS:START -->", "<!-- BENCHMARKS:END -->"

CF_METRICS = ("Recall@20", "nDCG@20", "nDCG@10", "HR@10", "Coverage@100")
SEQ_METRICS = ("Recall@20", "nDCG@10", "Coverage@100", "Repetition@20", "ArtistRepeat@20")


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _seconds(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _milliseconds(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def _machine(report: dict) -> str:
    machine = report.get("machine") or {}
    cores = machine.get("cpu_count")
    return f"{machine.get('processor', 'CPU')}, {cores} cores" if cores else "2 cores"


def cf_section(report: dict | None, title: str, command: str) -> str:
    if report is None:
        return f"### {title}\n\nNot measured yet: `{command}`.\n"
    served = report.get("served_model")
    rows = []
    for model in report["models"]:
        name = model["name"] + (" (served)" if model["name"] == served else "")
        rows.append(
            [name]
            + [model["test"].get(metric) for metric in CF_METRICS]
            + [
                model["valid"].get("nDCG@20"),
                (model.get("selection") or {}).get("nDCG@20"),
                _seconds(model.get("train_seconds")),
            ]
        )
    header = ["model", *(f"test {m}" for m in CF_METRICS), "valid nDCG@20", "selection nDCG@20",
              "train s"]  # fmt: skip
    gain = report.get("served_test_nDCG@20_gain_over_EASE")
    lines = [f"### {title}", "", f"`{command}` (seed {report.get('seed')}, {_machine(report)})", ""]
    lines.append(_table(header, rows))
    if gain is not None:
        lines += ["", f"Served pipeline vs EASE, test nDCG@20: {gain:+.1%}."]
    selection = report.get("selection")
    if isinstance(selection, dict) and selection.get("reason"):
        lines += ["", f"Why: {selection['reason']}."]
    lines += served_slates_lines(report.get("served_slates"))
    return "\n".join(lines) + "\n"


def served_slates_lines(served_slates: dict | None) -> list[str]:
    """The served lists' accuracy next to their diversity under each slate (empty when the
    benchmark had no artists or tags)."""
    if not served_slates or not served_slates.get("slates"):
        return []
    k = served_slates.get("k", 20)
    metrics = [f"nDCG@{k}", f"Recall@{k}", f"ArtistRepeat@{k}", f"ILD@{k}"]
    rows = [
        [name] + [values.get(metric) for metric in metrics]
        for name, values in served_slates["slates"].items()
    ]
    return [
        "",
        f"The served lists ({served_slates.get('model')}, test cases) as slates: the model's "
        f"order, the default cap of 2 tracks per artist, and an MMR re-rank on tags "
        f"before the cap (ArtistRepeat@{k}: share of a list whose artist came higher up; "
        f"ILD@{k}: mean tag-cosine distance of its pairs).",
        "",
        _table(["slate", *(f"test {m}" for m in metrics)], rows),
    ]


def seq_section(report: dict | None, title: str, command: str) -> str:
    if report is None:
        return f"### {title}\n\nNot measured yet: `{command}`.\n"
    served = report.get("served_model")
    rows = []
    for name, splits in report["metrics"].items():
        timing = report.get("timings", {}).get(name, {})
        rows.append(
            [name + (" (served)" if name == served else "")]
            + [splits["test"].get(metric) for metric in SEQ_METRICS]
            + [
                splits["valid"].get("Recall@20"),
                (splits.get("selection") or {}).get("Recall@20"),
                _seconds(timing.get("train_seconds")),
                _milliseconds(timing.get("inference_ms_per_request")),
            ]  # fmt: skip
        )
    header = ["model", *(f"test {m}" for m in SEQ_METRICS), "valid Recall@20",
              "selection Recall@20", "train s", "ms / request"]  # fmt: skip
    lines = [f"### {title}", "", f"`{command}` (seed {report.get('seed')}, {_machine(report)})", ""]
    lines.append(_table(header, rows))
    selection = report.get("selection")
    if isinstance(selection, dict) and selection.get("reason"):
        lines += ["", f"Why: {selection['reason']}."]
    latency = report.get("serving_latency_sasrec_10k_items")
    if latency:
        lines += ["", "One SASRec request (50 input tracks, k = 20, exact scoring over 10,000 "
                  f"items, one thread): mean {latency.get('mean_ms', 0):.2f} ms, "
                  f"p99 {latency.get('p99_ms', 0):.2f} ms."]  # fmt: skip
    lines += served_slates_lines(report.get("served_slates"))
    return "\n".join(lines) + "\n"


_COMPARISONS = {"<=": "≤", ">=": "≥"}


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _world(config: dict) -> str:
    world = config.get("world")
    if not world:
        return f"scale {config.get('scale')}"
    return (
        f"({world['users']:,} users, {world['tracks']:,} tracks, "
        f"{world['interactions']:,} interactions)"
    )


def load_section(report: dict, name: str) -> list[str]:
    """The load table (and the targets, when the file has them) of one load-*.json; fields an
    older file lacks show as "–"."""
    config = report.get("config", {})
    results = report.get("results", [])
    floor = report.get("floor_requests_per_second") or next(
        (r["requests_per_second"] for r in results if r["scenario"] == "noop"), None
    )
    cold = [r["scenario"] for r in results if r.get("cold_cache")]
    cache = f"warm cache except {', '.join(cold)} ({config.get('cache')})" if cold else "warm cache"
    lines = [
        f"Latest `make bench-load` ({name}): {config.get('server')}, "
        f"{config.get('workers')} workers, {config.get('connections')} connections, "
        f"{config.get('duration')} s per scenario, demo world {_world(config)}, "
        f"{cache}:",
        "",
    ]
    rows = []
    for r in results:
        ratio = r.get("floor_ratio")
        if ratio is None and "floor_ratio" not in r and floor:
            ratio = r["requests_per_second"] / floor
        latency = r["latency_ms"]
        rows.append(
            [r["scenario"], r["endpoint"], f"{r['requests_per_second']:.0f}",
             "–" if ratio is None else f"{ratio:.2f}",
             _milliseconds(latency.get("p50")), _milliseconds(latency.get("p95")),
             _milliseconds(latency.get("p99")), _percent((r.get("cache") or {}).get("hit_ratio")),
             r.get("status_5xx"), sum(r.get("errors", {}).values())]
        )  # fmt: skip
    lines.append(_table(["scenario", "endpoint", "req/s", "× floor", "p50 ms", "p95 ms",
                         "p99 ms", "cache hit", "5xx", "errors"], rows))  # fmt: skip
    lines += [
        "",
        "× floor: req/s over the no-op's; cache hit: recommendation cache lookups (every list) "
        "during the measured run; errors: 4xx, 5xx and transport errors.",
    ]
    lines += impression_rounds_section(report)
    targets = report.get("targets")
    if targets:
        lines += ["", f"Targets (at {config.get('connections')} connections, "
                  f"{report.get('host', {}).get('cpus', '?')} cores):", ""]  # fmt: skip
        rows = []
        for t in targets:
            metric, comparison = t.get("metric", ""), t.get("comparison", "")
            threshold = target_value(metric, t.get("threshold"), missing="–")
            rows.append([
                t.get("target"),
                f"{_COMPARISONS.get(comparison, comparison)} {threshold}",
                target_value(metric, t.get("measured"), missing="–"),
                "–" if t.get("passed") is None else "PASS" if t["passed"] else "FAIL",
            ])  # fmt: skip
        lines.append(_table(["target", "required", "measured", "result"], rows))
    return lines


def _impression_rounds_table(rounds: list[dict], cost: dict, *, title: str) -> list[str]:
    """One set of paired impression rounds: a row a round, then the medians."""
    conditions = ("off", "logged", "unflushed")
    rows = []
    for number, entry in enumerate(rounds, start=1):
        runs = entry["runs"]
        cells = [
            f"{_milliseconds(runs[c]['latency_ms']['p99'])} ({runs[c]['requests_per_second']:.0f})"
            if c in runs else "–"
            for c in conditions
        ]  # fmt: skip
        rows.append([number, " → ".join(entry["order"]), *cells,
                     f"{cost['added_p99_ms_per_round'][number - 1]:+.2f}"])  # fmt: skip
    lines = [
        "",
        title,
        "",
        _table(["round", "order", "off", "logged", "unflushed", "logged − off"], rows),
        "",
        f"Median logged − off: {cost['added_p99_ms']:+.2f} ms"
        + (f"; median unflushed − off: {cost['request_path_added_p99_ms']:+.2f} ms"
           if "request_path_added_p99_ms" in cost else "")
        + f"; the off runs' p99s spread over {cost['off_p99_spread_ms']:.2f} ms.",
    ]  # fmt: skip
    if added := cost.get("cpu_added_ms_per_request_by_group"):
        lines.append(
            "CPU that logging adds per request, by process (median of logged − off, ms): "
            + ", ".join(f"{group} {value:+.3f}" for group, value in added.items())
            + "."
        )
    return lines


def impression_rounds_section(report: dict) -> list[str]:
    """The paired rounds of the impression-cost comparison, at the bench's connections and at
    a light load (files from before them: none)."""
    impressions = report.get("impressions") or {}
    rounds, cost = impressions.get("rounds"), impressions.get("cost") or {}
    if not rounds or "added_p99_ms" not in cost:
        return []
    connections = (report.get("config") or {}).get("connections", 32)
    lines = _impression_rounds_table(
        rounds,
        cost,
        title=f"Impression logging, warm rec_user p99 in ms (req/s) over {cost['rounds']} "
        f"paired rounds at {connections} connections, each run on a fresh server: logged "
        "(flushed on the same cores), unflushed (flusher paused: the append alone), off "
        "(IMPRESSIONS_ENABLED=false):",
    )
    light = impressions.get("light") or {}
    light_cost = light.get("cost") or {}
    if light.get("rounds") and "added_p99_ms" in light_cost:
        lines += _impression_rounds_table(
            light["rounds"],
            light_cost,
            title=f"The same servers right after, at a light load of {light['connections']} "
            "connections (each sends its next request when the last is answered: no queue):",
        )
    return lines


def ops_section() -> str:
    lines = ["### Serving under load and faults", ""]
    loads = sorted(RESULTS.glob("load-*.json"))
    if loads:
        report = json.loads(loads[-1].read_text())
        lines += load_section(report, loads[-1].name)
    else:
        lines.append("Load: not measured yet (`make bench-load`).")
    soaks = sorted(RESULTS.glob("soak-*.json"))
    if soaks:
        report = json.loads(soaks[-1].read_text())
        lines += ["", f"Latest `bench/soak.py` ({soaks[-1].name}, "
                  f"{report.get('config', {}).get('duration', '?')} s of load):", ""]  # fmt: skip
        checks = report.get("checks", [])
        rows = [[c.get("check"), "pass" if c.get("passed") else "FAIL", c.get("detail", "")]
                for c in checks]  # fmt: skip
        lines.append(_table(["check", "result", "detail"], rows))
    return "\n".join(lines) + "\n"


def _gigabytes(value) -> str:
    return "–" if value is None else f"{value / 1e9:.2f}"


def _megabytes(value) -> str:
    return "–" if value is None else f"{value / 1e6:.1f}"


def _scale_training(entry: dict, kind: str) -> list[str]:
    training = (entry.get("training") or {}).get(kind) or {}
    if not training:
        return ["–", "–", "–"]
    seconds = _seconds(training.get("seconds"))
    if training.get("cpu_seconds") is not None:
        seconds += f" (CPU {training['cpu_seconds']:.0f})"
    if training.get("returncode") not in (0, None):
        seconds += f" (failed, exit {training['returncode']})"
    served, value = training.get("served"), training.get("validation")
    metric = training.get("validation_metric") or ""
    model = "–" if not served else f"{served} ({metric} {_number(value)})" if metric else served
    return [seconds, _gigabytes(training.get("peak_rss_bytes")), model]


# The kind of model each latency scenario of the scale bench serves.
_SCENARIO_KIND = {"rec_user": "recommender", "rec_user_cold": "recommender",
                  "continue": "continuation"}  # fmt: skip


def _scale_latency(entry: dict, scenario: str) -> str:
    latency = ((entry.get("latency") or {}).get(scenario) or {}).get("latency_ms") or {}
    if not latency:
        return "–"
    cell = f"{latency.get('p50', 0):.1f} / {latency.get('p99', 0):.1f}"
    training = (entry.get("training") or {}).get(_SCENARIO_KIND[scenario]) or {}
    if training.get("returncode") not in (0, None) or training.get("status") == "failed":
        cell += " *fallback*"
    return cell


def _load_average(entry: dict, when: str) -> str:
    """The 1-minute load average the scale bench recorded before / after serving."""
    values = entry.get(f"load_average_{when}_serving")
    return "–" if not values else f"{values[0]:.1f}"


SCALE_COMMAND = "make bench-scale"


def scale_section(report: dict | None) -> str:
    """The scale bench (bench/scale.py, bench/results/scale-latest.json): training and serving
    per DEMO_WORLD_SCALE, the issue's targets and the plot."""
    title = "### Scale — the demo world by DEMO_WORLD_SCALE (`bench/scale.py`)"
    if report is None:
        return (
            f"{title}\n\nNot measured yet: `{SCALE_COMMAND}` (or `{SCALE_COMMAND} SCALES=1,3`).\n"
        )
    entries = sorted(report.get("scales", []), key=lambda entry: float(entry["scale"]))
    config, host = report.get("config", {}), report.get("host", {})
    memory = host.get("memory_bytes")
    budget = config.get("training_budget_seconds", "default")
    budget = "not set: the default" if budget == "default" else budget
    lines = [
        title,
        "",
        f"`{SCALE_COMMAND} SCALES={','.join(config.get('scales', []))}` "
        f"({report.get('finished_at', '?')[:10]}, commit {report.get('git_commit')}; "
        "each scale's own date and commit are in the JSON; "
        f"{host.get('cpus', '?')} cores"
        + (f", {memory / 2**30:.0f} GiB" if memory else "")
        + f", TRAINING_BUDGET_SECONDS {budget}). "
        "Each kind trains in its own `manage.py train` process; peak RSS is that process's.",
        "",
    ]
    rows = []
    for entry in entries:
        world = entry.get("world") or {}
        seed = entry.get("seed") or {}
        rows.append(
            [f"{float(entry['scale']):g}", f"{world.get('users', 0):,}",
             f"{world.get('tracks', 0):,}", f"{world.get('interactions', 0):,}",
             _seconds(seed.get("seconds")),
             *_scale_training(entry, "recommender"), *_scale_training(entry, "continuation")]
        )  # fmt: skip
    header = ["scale", "users", "tracks", "interactions", "seed s",
              "recommender train s", "peak RSS GB", "served (validation)",
              "continuation train s", "peak RSS GB", "served (validation)"]  # fmt: skip
    lines.append(_table(header, rows))
    recall_users = next(
        (entry["recall"]["users"] for entry in entries if (entry.get("recall") or {}).get("users")),
        "?",
    )
    rows = []
    for entry in entries:
        recall = (entry.get("recall") or {}).get("recall_at_100")
        artifacts = entry.get("artifact_bytes") or {}
        postgres = entry.get("postgres") or {}
        rows.append(
            [f"{float(entry['scale']):g}", _scale_latency(entry, "rec_user"),
             _scale_latency(entry, "rec_user_cold"), _scale_latency(entry, "continue"),
             _megabytes(artifacts.get("recommender")), _megabytes(artifacts.get("continuation")),
             _megabytes(postgres.get("interactions_table_bytes")), _number(recall),
             " / ".join(_load_average(entry, when) for when in ("before", "after"))]
        )  # fmt: skip
    lines += [
        "",
        f"Serving at {config.get('connections')} connections, {config.get('duration')} s per "
        f"run, {config.get('workers')} gunicorn workers (p50 / p99 ms; cold: cached rankings "
        "dropped first, as by a new model version); artifacts of the active versions; HNSW "
        "recall@100 of the recommender's vectors (efSearch 256, as served) against exact search "
        f"over {recall_users} sampled users; the host's 1-minute load average before and after "
        "the serving runs (the CPU is shared: compare runs made under the same load). "
        "*fallback*: no version of that kind was active (its training failed), so the lists "
        "came from the popularity and tag fallbacks, not from a model:",
        "",
        _table(["scale", "/api/rec warm", "/api/rec cold", "/api/continue warm",
                "recommender artifacts MB", "continuation artifacts MB",
                "interactions table MB", "HNSW recall@100", "load before / after"], rows),
    ]  # fmt: skip
    targets = report.get("targets") or []
    if targets:
        rows = [[t.get("target"), t.get("required"), t.get("measured") or "–", t.get("result")]
                for t in targets]  # fmt: skip
        lines += ["", "Targets (issue 11, on 2 cores / 24 GB):", "",
                  _table(["target", "required", "measured", "result"], rows)]  # fmt: skip
    plot = report.get("plot")
    if plot and (ROOT / plot).exists():
        lines += ["", f"![Training time and peak RSS against interactions]({plot})"]
    return "\n".join(lines) + "\n"


QUALITY_TARGETS = (
    # (what, results file, ratio key, target, command)
    ("Demo world, user recommendations: served test nDCG@20 / best single model",
     "cf-demo.json", "served_over_best_single_test_nDCG@20", 1.05,
     "manage.py benchmark_cf --dataset demo"),
    ("Demo world, continuation: served test Recall@20 / Markov",
     "seq-demo.json", "served_over_Markov_test_Recall@20", 1.05,
     "manage.py benchmark_seq --dataset demo --max-epochs 10"),
    ("Demo world, continuation under `make run`'s budget: served test Recall@20 / Markov",
     "seq-demo-serving.json", "served_over_Markov_test_Recall@20", 1.05,
     "manage.py benchmark_seq --dataset demo --serving-config --out "
     "bench/results/seq-demo-serving.json"),
    ("HetRec Last.fm 2K, interactions only, refit on train+valid: served test nDCG@20 / EASE",
     "cf-hetrec-lastfm-2k-interactions.json", "served_over_EASE_test_nDCG@20", 1.08,
     "make bench-cf-interactions"),
    ("HetRec tag sequences: served test Recall@20 / session-kNN",
     "seq-hetrec-lastfm-2k-tags.json", "served_over_SKNN_test_Recall@20", 1.20,
     "make bench-seq"),
)  # fmt: skip


def targets_section() -> str:
    """The quality targets of "serve the best model", each as measured, met or not."""
    rows = []
    for what, name, key, target, command in QUALITY_TARGETS:
        report = _load(name)
        value = None if report is None else report.get(key)
        if value is None:
            rows.append([what, f"≥ {target:.2f}×", "not measured", f"`{command}`"])
            continue
        served = report.get("served_model")
        verdict = "met" if value >= target else "missed"
        rows.append([what, f"≥ {target:.2f}×", f"{value:.3f}× ({served}): {verdict}",
                     f"`{command}`"])  # fmt: skip
    lines = ["### Quality targets", "", "Ratios of test metrics from the files below, as measured.",
             "", _table(["target", "goal", "measured", "command"], rows)]  # fmt: skip
    return "\n".join(lines) + "\n"


def render() -> str:
    sections = [
        targets_section(),
        cf_section(
            _load("cf-hetrec-lastfm-2k.json"),
            "User recommendations — HetRec Last.fm 2K (CF-random, full ranking)",
            "make bench-cf",
        ),
        cf_section(
            _load("cf-hetrec-lastfm-2k-interactions.json"),
            "User recommendations — HetRec Last.fm 2K, interactions only (CF-random)",
            "make bench-cf-interactions",
        ),
        cf_section(
            _load("cf-demo.json"),
            "User recommendations — demo world (CF-random, full ranking)",
            "manage.py benchmark_cf --dataset demo",
        ),
        seq_section(
            _load("seq-hetrec-lastfm-2k-tags.json"),
            "Continuation — HetRec tag sequences (SEQ-last, full ranking)",
            "make bench-seq",
        ),
        seq_section(
            _load("seq-demo.json"),
            "Continuation — demo world sessions and playlists (SEQ-last, full ranking)",
            "manage.py benchmark_seq --dataset demo --max-epochs 10",
        ),
        seq_section(
            _load("seq-demo-serving.json"),
            "Continuation — demo world under `make run`'s training budget (SEQ-last)",
            "manage.py benchmark_seq --dataset demo --serving-config",
        ),
        scale_section(_load("scale-latest.json")),
        ops_section(),
    ]
    return "\n".join(sections)


def main() -> int:
    text = README.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        print(f"README.md has no {START} … {END} block", file=sys.stderr)
        return 1
    block = f"{START}\n<!-- generated by bench/report.py from bench/results/*.json -->\n\n"
    README.write_text(pattern.sub(lambda _: block + render() + "\n" + END, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
