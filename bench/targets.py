"""How the benchmarks print a target's value (bench/load.py's table, bench/report.py's README)."""

from __future__ import annotations


def target_value(metric: str, value, *, missing: str = "-") -> str:
    """A ratio as a percentage, a metric in milliseconds (named `…_ms`, or `…_ms_…` as
    impression_added_p99_ms_light) with its unit, anything else as it is; `missing` for None."""
    if value is None:
        return missing
    if metric == "cache_hit_ratio":
        return f"{100 * value:.1f}%"
    if metric.endswith("_ms") or "_ms_" in metric:
        return f"{value:.2f} ms"
    return str(value)
