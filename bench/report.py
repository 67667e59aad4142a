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
            + [model["valid"].get("nDCG@20"), _seconds(model.get("train_seconds"))]
        )
    header = ["model", *(f"test {m}" for m in CF_METRICS), "valid nDCG@20", "train s"]
    gain = report.get("served_test_nDCG@20_gain_over_EASE")
    lines = [f"### {title}", "", f"`{command}` (seed {report.get('seed')}, {_machine(report)})", ""]
    lines.append(_table(header, rows))
    if gain is not None:
        lines += ["", f"Served model vs EASE, test nDCG@20: {gain:+.1%}."]
    return "\n".join(lines) + "\n"


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
                _seconds(timing.get("train_seconds")),
                _milliseconds(timing.get("inference_ms_per_request")),
            ]  # fmt: skip
        )
    header = ["model", *(f"test {m}" for m in SEQ_METRICS), "valid Recall@20", "train s",
              "ms / request"]  # fmt: skip
    lines = [f"### {title}", "", f"`{command}` (seed {report.get('seed')}, {_machine(report)})", ""]
    lines.append(_table(header, rows))
    latency = report.get("serving_latency_sasrec_10k_items")
    if latency:
        lines += ["", "One SASRec request (50 input tracks, k = 20, exact scoring over 10,000 "
                  f"items, one thread): mean {latency.get('mean_ms', 0):.2f} ms, "
                  f"p99 {latency.get('p99_ms', 0):.2f} ms."]  # fmt: skip
    return "\n".join(lines) + "\n"


_COMPARISONS = {"<=": "≤", ">=": "≥"}


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _target_value(metric: str, value) -> str:
    if value is None:
        return "–"
    if metric == "cache_hit_ratio":
        return _percent(value)
    if metric.endswith("_ms"):
        return f"{value:.2f} ms"
    return str(value)


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
    targets = report.get("targets")
    if targets:
        lines += ["", f"Targets (at {config.get('connections')} connections, "
                  f"{report.get('host', {}).get('cpus', '?')} cores):", ""]  # fmt: skip
        rows = []
        for t in targets:
            metric, comparison = t.get("metric", ""), t.get("comparison", "")
            threshold = _target_value(metric, t.get("threshold"))
            rows.append([
                t.get("target"),
                f"{_COMPARISONS.get(comparison, comparison)} {threshold}",
                _target_value(metric, t.get("measured")),
                "–" if t.get("passed") is None else "PASS" if t["passed"] else "FAIL",
            ])  # fmt: skip
        lines.append(_table(["target", "required", "measured", "result"], rows))
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


def render() -> str:
    sections = [
        cf_section(
            _load("cf-hetrec-lastfm-2k.json"),
            "User recommendations — HetRec Last.fm 2K (CF-random, full ranking)",
            "make bench-cf",
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
