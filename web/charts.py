"""Plain data for the model dashboard: per-epoch history as SVG-ready line charts and metrics as a
table. No ORM and no HTML here; the dashboard template draws the SVG from these numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Keys of a history record that are bookkeeping, not curves worth a chart.
NOT_PLOTTED = {"epoch"}
NOT_PLOTTED_SUFFIXES = ("_seconds",)


@dataclass(frozen=True)
class Chart:
    """One series scaled into a width × height box (SVG y grows downwards)."""

    name: str
    width: int
    height: int
    left: int  # the plot area inside the axes
    top: int
    right: int
    bottom: int
    points: str  # "x,y x,y …" for <polyline points=…>
    dots: list[tuple[float, float]]
    first_epoch: float
    last_epoch: float
    low: float
    high: float
    last_value: float
    best_value: float
    best_epoch: float
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def history_charts(
    history: list[dict], *, width: int = 320, height: int = 140, padding: int = 30
) -> list[Chart]:
    """One chart per numeric series of the history (loss, valid_nDCG@20, …), x = epoch.
    Records without a value for a series (e.g. epochs that were not evaluated) are skipped."""
    if not isinstance(history, list):
        return []
    records = [record for record in history if isinstance(record, dict)]
    names: list[str] = []
    for record in records:
        for key, value in record.items():
            plotted = key not in NOT_PLOTTED and not key.endswith(NOT_PLOTTED_SUFFIXES)
            if plotted and _is_number(value) and key not in names:
                names.append(key)
    charts = []
    for name in names:
        pairs = [
            (float(record.get("epoch", index + 1)), float(record[name]))
            for index, record in enumerate(records)
            if _is_number(record.get(name)) and _is_number(record.get("epoch", index + 1))
        ]
        if not pairs:
            continue
        xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
        x_low, x_high = min(xs), max(xs)
        y_low, y_high = min(ys), max(ys)
        x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0
        inner_w, inner_h = width - 2 * padding, height - 2 * padding

        def scale_x(x, x_low=x_low, x_span=x_span, inner_w=inner_w):
            return round(padding + (x - x_low) / x_span * inner_w, 1)

        def scale_y(y, y_low=y_low, y_span=y_span, inner_h=inner_h):
            return round(padding + inner_h - (y - y_low) / y_span * inner_h, 1)

        dots = [(scale_x(x), scale_y(y)) for x, y in pairs]
        lower_is_better = "loss" in name.lower()
        best_index = ys.index(min(ys) if lower_is_better else max(ys))
        charts.append(
            Chart(
                name=name,
                width=width,
                height=height,
                left=padding,
                top=padding,
                right=width - padding,
                bottom=height - padding,
                points=" ".join(f"{x},{y}" for x, y in dots),
                dots=dots,
                first_epoch=x_low,
                last_epoch=x_high,
                low=y_low,
                high=y_high,
                last_value=ys[-1],
                best_value=ys[best_index],
                best_epoch=xs[best_index],
                x_ticks=[(scale_x(x), _label(x)) for x in dict.fromkeys((x_low, x_high))],
                y_ticks=[(scale_y(y), _label(y)) for y in dict.fromkeys((y_low, y_high))],
            )
        )
    return charts


@dataclass(frozen=True)
class MetricsTable:
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    highlight: str = ""  # the row of the served model


def _format(value) -> str:
    if _is_number(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)
    return "" if value is None else str(value)


def _flatten(prefix: str, value, into: dict[str, object]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix} {key}".strip(), inner, into)
    else:
        into[prefix] = value


def metrics_table(metrics: dict) -> MetricsTable:
    """{"served": name, "models": {name: {split: {metric: value}}}} becomes one row per model and
    one column per split and metric; any other dict becomes one row per (flattened) key."""
    if not isinstance(metrics, dict) or not metrics:
        return MetricsTable(columns=[], rows=[])
    models = metrics.get("models")
    if isinstance(models, dict) and models and all(isinstance(m, dict) for m in models.values()):
        flat_rows = {}
        for model_name, results in models.items():
            flat: dict[str, object] = {}
            _flatten("", results, flat)
            flat_rows[model_name] = flat
        columns = list(dict.fromkeys(key for flat in flat_rows.values() for key in flat))
        rows = [
            (model_name, [_format(flat.get(column)) for column in columns])
            for model_name, flat in flat_rows.items()
        ]
        return MetricsTable(columns=columns, rows=rows, highlight=str(metrics.get("served", "")))
    flat = {}
    _flatten("", metrics, flat)
    return MetricsTable(columns=["value"], rows=[(k, [_format(v)]) for k, v in flat.items()])


@dataclass(frozen=True)
class Bar:
    name: str
    value: float
    share: float  # of the largest value, 0..1
    y: float  # top of the bar in the SVG
    width: float  # bar length in the SVG


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, largest first (e.g. a ranker's feature importances)."""

    title: str
    width: int
    height: int
    label_width: int
    bar_height: int
    bars: list[Bar]


def bar_chart(
    values: dict, *, title: str, limit: int = 15, width: int = 520, bar_height: int = 16
) -> BarChart | None:
    """The `limit` largest numeric values of `values` as bars (None when there is none > 0)."""
    pairs = sorted(
        ((str(name), float(value)) for name, value in (values or {}).items() if _is_number(value)),
        key=lambda pair: -pair[1],
    )
    pairs = [(name, value) for name, value in pairs if value > 0][:limit]
    if not pairs:
        return None
    label_width = 190
    top_value = pairs[0][1]
    space = width - label_width - 70
    bars = [
        Bar(
            name=name,
            value=value,
            share=value / top_value,
            y=index * (bar_height + 4),
            width=round(max(1.0, space * value / top_value), 1),
        )
        for index, (name, value) in enumerate(pairs)
    ]
    return BarChart(
        title=title,
        width=width,
        height=len(bars) * (bar_height + 4),
        label_width=label_width,
        bar_height=bar_height,
        bars=bars,
    )
