"""What the staff model dashboard shows: recent versions of each kind, ready to draw, with what
the activation rule decided for each, and the online metrics of what each version served."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from feedback.selectors import ImpressionDayStats, impression_daily_stats
from mltasks.models import ModelVersion
from mltasks.selectors import model_version_activation_check, model_versions_recent
from web.charts import BarChart, Chart, MetricsTable, bar_chart, history_charts, metrics_table


@dataclass(frozen=True)
class ActivationDecision:
    """What the activation rule decided when the version finished training, and why
    (mltasks.training.activation; `ModelVersion.metrics["activation"]`)."""

    activated: bool
    reason: str
    metric: str
    new_metric: float | None
    active_version: int | None
    active_metric: float | None  # the then active version's, on the same held-out data
    held_out: str  # which held-out data they were compared on ("" when not compared)
    leak_note: str

    @classmethod
    def of(cls, metrics: dict) -> ActivationDecision | None:
        """None for versions trained before the rule recorded its decisions."""
        record = metrics.get("activation") if isinstance(metrics, dict) else None
        if not isinstance(record, dict) or "activated" not in record:
            return None
        comparison = record.get("comparison") or {}
        return cls(
            activated=bool(record["activated"]),
            reason=str(record.get("reason", "")),
            metric=str(record.get("metric", "")),
            new_metric=record.get("new_metric"),
            active_version=record.get("active_version"),
            active_metric=record.get("active_metric_on_new_split"),
            held_out=str(record.get("held_out") or ""),
            leak_note=str((comparison.get("leak") or {}).get("note", "")),
        )


@dataclass(frozen=True)
class PipelineChoice:
    """Which pipeline serves and why (`ModelVersion.metrics["selection"]`), with the served
    form's test metrics and the learned ranker's feature importances."""

    served: str
    reason: str
    protocol: str
    ranker: str  # "trained", or why not
    vectors_model: str  # whose vectors serve similar tracks and approximate search
    served_test: dict
    importances: BarChart | None

    @classmethod
    def of(cls, metrics: dict) -> PipelineChoice | None:
        """None for versions trained before pipelines were selected."""
        selection = metrics.get("selection") if isinstance(metrics, dict) else None
        if not isinstance(selection, dict) or "served" not in selection:
            return None
        ranker = metrics.get("ranker") or {}
        return cls(
            served=str(selection["served"]),
            reason=str(selection.get("reason", "")),
            protocol=str(selection.get("protocol", "")),
            ranker=str(selection.get("ranker", "")),
            vectors_model=str(metrics.get("vectors_model", "")),
            served_test=metrics.get("served_test") or {},
            importances=bar_chart(
                ranker.get("feature_importances") or {}, title="Ranker feature importance (gain)"
            ),
        )


@dataclass(frozen=True)
class VersionRow:
    version: ModelVersion
    charts: list[Chart]
    metrics: MetricsTable
    can_activate: bool
    activation: ActivationDecision | None
    pipeline: PipelineChoice | None


@dataclass(frozen=True)
class KindSection:
    kind: str
    label: str
    active: VersionRow | None
    versions: list[VersionRow]


def dashboard_sections(*, per_kind: int = 10) -> list[KindSection]:
    sections = []
    for kind, label in ModelVersion.Kind.choices:
        rows = [
            VersionRow(
                version=version,
                charts=history_charts(version.history),
                metrics=metrics_table(version.metrics),
                can_activate=model_version_activation_check(version=version).allowed,
                activation=ActivationDecision.of(version.metrics),
                pipeline=PipelineChoice.of(version.metrics),
            )
            for version in model_versions_recent(kind=kind, n=per_kind)
        ]
        active = next((r for r in rows if r.version.status == ModelVersion.Status.ACTIVE), None)
        sections.append(KindSection(kind=kind, label=label, active=active, versions=rows))
    return sections


ONLINE_METRICS_DAYS = 14


@dataclass(frozen=True)
class OnlineMetricsRow:
    stats: ImpressionDayStats
    version: ModelVersion | None  # None: a fallback's lists, or a version deleted since


@dataclass(frozen=True)
class OnlineMetrics:
    days: int
    retention_days: int
    enabled: bool
    rows: list[OnlineMetricsRow]


def online_metrics(*, days: int = ONLINE_METRICS_DAYS) -> OnlineMetrics:
    """Per version and per day, from impressions and the feedback linked to them. Three
    queries."""
    days = min(days, settings.IMPRESSIONS_RETENTION_DAYS)
    stats = impression_daily_stats(days=days)
    version_ids = {row.model_version_id for row in stats if row.model_version_id is not None}
    versions = ModelVersion.objects.only("pk", "kind", "algorithm", "status").in_bulk(version_ids)
    return OnlineMetrics(
        days=days,
        retention_days=settings.IMPRESSIONS_RETENTION_DAYS,
        enabled=settings.IMPRESSIONS_ENABLED,
        rows=[
            OnlineMetricsRow(stats=row, version=versions.get(row.model_version_id)) for row in stats
        ],
    )
