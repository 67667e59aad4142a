"""The scale bench's pure parts (bench/scale.py, bench/report.py's scale section): scales, the
linear fit, the targets, the table, and the peak RSS of a child process. No stack is started."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from bench import report, scale

GB = 1e9


def entry(
    scale_value: float,
    *,
    interactions: int,
    seconds: tuple[float, float] = (100.0, 50.0),
    rss: tuple[float, float] = (1 * GB, 0.5 * GB),
    returncodes: tuple[int, int] = (0, 0),
    p99: tuple[float, float] = (20.0, 20.0),
) -> dict:
    """A scale's entry as bench/scale.py records it (only the fields the pure parts read)."""
    return {
        "scale": scale_value,
        "world": {"users": 2000, "tracks": 10000, "interactions": interactions},
        "seed": {"seconds": 12.0},
        "training": {
            kind: {
                "seconds": seconds[index],
                "peak_rss_bytes": int(rss[index]),
                "returncode": returncodes[index],
                "served": "TunedIn-ranker",
                "validation_metric": "nDCG@20",
                "validation": 0.1234,
            }
            for index, kind in enumerate(scale.KINDS)
        },
        "latency": {
            "rec_user": {"latency_ms": {"p50": 5.0, "p99": p99[0]}},
            "rec_user_cold": {"latency_ms": {"p50": 9.0, "p99": 40.0}},
            "continue": {"latency_ms": {"p50": 6.0, "p99": p99[1]}},
        },
        "artifact_bytes": {"recommender": 3_000_000, "continuation": 2_000_000},
        "postgres": {"interactions_table_bytes": 40_000_000},
        "recall": {"recall_at_100": 0.9871, "users": 1000},
        "errors": [],
    }


def by_target(rows: list[dict]) -> dict[str, dict]:
    return {row["target"]: row for row in rows}


def test_parse_scales_keeps_order_drops_repeats_and_guards_huge_ones():
    assert scale.parse_scales("1, 3,10,3", allow_huge=False) == [1.0, 3.0, 10.0]
    assert scale.parse_scales("100", allow_huge=True) == [100.0]
    with pytest.raises(ValueError, match="--allow-huge"):
        scale.parse_scales("1,100", allow_huge=False)
    for bad in ("0", "-1", "ten", "nan", ""):
        with pytest.raises(ValueError, match="--scales"):
            scale.parse_scales(bad, allow_huge=True)


def test_each_scale_has_a_database_name_postgres_accepts_unquoted():
    assert scale.scale_database(1.0) == "tunedin_scale_1"
    assert scale.scale_database(30.0) == "tunedin_scale_30"
    assert scale.scale_database(0.3) == "tunedin_scale_0_3"


def test_linear_fit_of_a_line_and_of_a_quadratic():
    xs = [3e5, 9e5, 3e6, 9e6]
    line = scale.linear_fit(xs, [4e8 + 300 * x for x in xs])
    assert line["slope"] == pytest.approx(300)
    assert line["intercept"] == pytest.approx(4e8)
    assert line["r2"] == pytest.approx(1.0)
    assert line["exponent"] < 1
    quadratic = scale.linear_fit(xs, [x * x for x in xs])
    assert quadratic["r2"] < 0.98
    assert quadratic["exponent"] == pytest.approx(2.0)
    assert scale.linear_fit([1e6], [1e9]) is None
    assert scale.linear_fit([1e6, 1e6], [1e9, 2e9]) is None


def test_targets_pass_when_met_and_say_not_measured_for_missing_scales():
    scales = [
        entry(1.0, interactions=300_000, rss=(0.8 * GB, 0.6 * GB)),
        entry(3.0, interactions=900_000, rss=(1.2 * GB, 0.8 * GB)),
        entry(10.0, interactions=3_000_000, seconds=(500, 300), rss=(2.6 * GB, 1.5 * GB)),
    ]
    rows = by_target(scale.evaluate_targets(scales, scale.memory_fits(scales)))
    assert rows["scale 10: both kinds trained"]["result"] == "PASS"
    assert rows["scale 10: both kinds trained"]["measured"] == "13.3 min"
    assert rows["scale 10: peak RSS"]["result"] == "PASS"
    assert rows["scale 10: peak RSS"]["measured"] == "2.60 GB"
    assert rows["scale 30: both kinds trained"]["result"] == "not measured"
    assert rows["scale 30: peak RSS"]["passed"] is None
    assert rows["recommender peak RSS linear in interactions"]["result"] == "PASS"
    assert rows["/api/rec warm p99 at scale 30 / scale 1"]["result"] == "not measured"


def test_the_peak_of_an_unfinished_run_under_the_limit_is_no_pass():
    scales = [
        entry(1.0, interactions=300_000),
        entry(10.0, interactions=3_000_000, seconds=(1774, 2178), rss=(2.36 * GB, 3.72 * GB),
              returncodes=(1, -15)),
    ]  # fmt: skip
    rows = by_target(scale.evaluate_targets(scales, scale.memory_fits(scales)))
    peak = rows["scale 10: peak RSS"]
    assert peak["result"] == "not measured"
    assert peak["measured"] == "3.72 GB so far (a run did not finish)"
    assert rows["scale 10: both kinds trained"]["result"] == "FAIL"


def test_targets_fail_on_time_memory_a_failed_kind_and_latency_growth():
    scales = [
        entry(1.0, interactions=300_000, p99=(20.0, 20.0)),
        entry(10.0, interactions=3_000_000, seconds=(800, 200), rss=(5 * GB, 2 * GB)),
        entry(
            30.0,
            interactions=9_000_000,
            seconds=(480, 60),
            rss=(19.3 * GB, 3 * GB),
            returncodes=(1, 0),
            p99=(26.0, 24.0),
        ),
    ]
    rows = by_target(scale.evaluate_targets(scales, scale.memory_fits(scales)))
    assert rows["scale 10: both kinds trained"]["result"] == "FAIL"  # 1000 s > 900 s
    assert rows["scale 10: peak RSS"]["result"] == "PASS"
    trained_30 = rows["scale 30: both kinds trained"]
    assert trained_30["result"] == "FAIL"  # in time, but the recommender failed
    assert "recommender failed" in trained_30["measured"]
    assert rows["scale 30: peak RSS"]["result"] == "FAIL"
    # The failed training is left out of the fit: two points are not enough.
    recommender_fit = rows["recommender peak RSS linear in interactions"]
    assert recommender_fit["result"] == "not measured"
    assert recommender_fit["measured"] == "2 scale(s)"
    assert rows["/api/rec warm p99 at scale 30 / scale 1"]["result"] == "FAIL"  # 1.30x
    assert rows["/api/continue warm p99 at scale 30 / scale 1"]["result"] == "PASS"  # 1.20x


def test_quadratic_memory_fails_the_linearity_target():
    interactions = [300_000, 900_000, 3_000_000, 9_000_000]
    scales = [
        entry(s, interactions=n, rss=(n * n / 1e4, 1e8 + 100 * n))
        for s, n in zip((1.0, 3.0, 10.0, 30.0), interactions, strict=True)
    ]
    fits = scale.memory_fits(scales)
    rows = by_target(scale.evaluate_targets(scales, fits))
    assert fits["recommender"]["points"] == 4
    assert rows["recommender peak RSS linear in interactions"]["result"] == "FAIL"
    assert rows["continuation peak RSS linear in interactions"]["result"] == "PASS"


def test_table_has_one_column_per_scale_and_the_targets():
    scales = [entry(3.0, interactions=900_000), entry(1.0, interactions=300_000)]
    scales[0]["training"]["recommender"]["returncode"] = -9
    text = scale.format_table(scales, scale.evaluate_targets(scales, scale.memory_fits(scales)))
    lines = {line.split("  ")[0].strip(): line for line in text.splitlines() if line}
    assert lines["scale"].split()[-2:] == ["1", "3"]  # sorted by scale
    assert lines["interactions"].split()[-2:] == ["300,000", "900,000"]
    assert "100 (exit -9)" in lines["rec train s"]
    assert "20.0" in lines["rec warm p50/p99 ms"]
    assert lines["HNSW recall@100"].split()[-1] == "0.9871"
    assert "scale 10: peak RSS" in text and "not measured" in text


def test_merge_keeps_the_other_scales_of_the_previous_run():
    previous = [entry(1.0, interactions=1), entry(3.0, interactions=3)]
    new = [entry(3.0, interactions=30), entry(10.0, interactions=10)]
    merged = scale.merge_scales(new, previous)
    assert [(e["scale"], e["world"]["interactions"]) for e in merged] == [
        (1.0, 1),
        (3.0, 30),
        (10.0, 10),
    ]


def test_timed_process_reports_the_peak_rss_of_that_process_only():
    environment = dict(os.environ)
    # A child's peak starts at this process's (Linux keeps it over exec): allocate beyond it.
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = own_peak + 300 * 1024 * 1024
    allocate = f"b = bytearray({size}); b[::4096] = b'x' * len(b[::4096])"
    big = scale.timed_process(
        [sys.executable, "-c", allocate], environment=environment, label="big"
    )
    small = scale.timed_process(
        [sys.executable, "-c", "print('done')"], environment=environment, label="small"
    )
    failed = scale.timed_process(
        [sys.executable, "-c", "raise SystemExit(3)"], environment=environment, label="failed"
    )
    assert big["returncode"] == 0
    assert big["peak_rss_bytes"] >= size
    assert small["peak_rss_bytes"] <= own_peak + 100 * 1024 * 1024  # not the big child's peak
    assert small["output_tail"] == ["done"]
    assert failed["returncode"] == 3


def test_report_section_renders_the_latest_file_or_says_how_to_make_it():
    assert "Not measured yet: `make bench-scale`" in report.scale_section(None)
    scales = [entry(1.0, interactions=300_000)]
    text = report.scale_section(
        {
            "finished_at": "2026-11-30T05:00:00+00:00",
            "git_commit": "abc1234",
            "host": {"cpus": 2, "memory_bytes": 24 * 2**30},
            "config": {"scales": ["1"], "connections": 32, "duration": 10, "workers": 4},
            "scales": scales,
            "targets": scale.evaluate_targets(scales, scale.memory_fits(scales)),
        }
    )
    assert "`make bench-scale SCALES=1`" in text
    assert "| 1 | 2,000 | 10,000 | 300,000 | 12.0 | 100.0 | 1.00 | TunedIn-ranker (nDCG@20 " in text
    assert (
        "| 1 | 5.0 / 20.0 | 9.0 / 40.0 | 6.0 / 20.0 | 3.0 | 2.0 | 40.0 | 0.9871 | – / – |" in text
    )
    assert "| scale 10: peak RSS | ≤ 6 GB | – | not measured |" in text


def test_a_sigterm_to_the_bench_stops_the_child_it_was_timing():
    program = (
        "from bench import scale; scale._exit_on_sigterm(); "
        "scale.timed_process(['sh', '-c', 'echo $$; exec sleep 60'], "
        "environment={'PATH': '/usr/bin:/bin'}, label='child')"
    )
    bench = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=scale.ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = bench.stderr.readline()  # "  [child] <pid>", once the child runs
    child = int(line.split("]")[1])
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{child}")
