"""Reads for the staff model dashboard: recent versions of each kind, ready to draw."""

from __future__ import annotations

from dataclasses import dataclass

from mltasks.charts import Chart, MetricsTable, history_charts, metrics_table
from mltasks.models import ModelVersion

# Versions an admin may switch serving to: trained ones, including the previously active.
ACTIVATABLE = (ModelVersion.Status.READY, ModelVersion.Status.RETIRED)


@dataclass(frozen=True)
class VersionRow:
    version: ModelVersion
    charts: list[Chart]
    metrics: MetricsTable
    can_activate: bool


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
                can_activate=version.status in ACTIVATABLE,
            )
            for version in ModelVersion.objects.filter(kind=kind).order_by("-created_at", "-id")[
                :per_kind
            ]
        ]
        active = next((r for r in rows if r.version.status == ModelVersion.Status.ACTIVE), None)
        sections.append(KindSection(kind=kind, label=label, active=active, versions=rows))
    return sections
