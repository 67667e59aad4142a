"""Data drift: recent listening compared with what the serving model was trained on.

`drift_report_create()` compares the positive interactions (plays and likes) of the last
`window_days` with a reference window and stores a DriftReport:

- reference: the training window of the active recommender ModelVersion, from its `params`:
  "trained_until" (ISO datetime; else its trained_at / created_at) and "data_window" (days
  before trained_until, or {"start": …, "end": …}); without "data_window", the `window_days`
  before trained_until, so both sides cover the same span. Without an active model, the window
  before the recent one (the report says so in `notes`).
- features: `item_popularity` (how concentrated listening is on the head of the catalogue:
  share of events per popularity bucket, see mltasks.ml.eval.drift), `hour_of_day` (24
  categories), `session_length` (events per session, gap settings.SESSION_GAP_MIN minutes)
  and `served_score` (scores served by the active recommender, when serving records them with
  mltasks.served_scores; skipped with a note otherwise).

Each feature's PSI and KS p-value go to the `tunedin_drift_psi` / `tunedin_drift_ks_pvalue`
gauges; a PSI above `psi_threshold` (settings.DRIFT_PSI_THRESHOLD) is logged as a warning.
Memory: 32 bytes per event of the two windows (user, track, time, hour).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Track
from feedback.models import POSITIVE_KINDS, Interaction
from mltasks.ml.eval import drift
from mltasks.models import DriftReport, ModelVersion
from mltasks.served_scores import SERVED_SCORES_KEPT, served_scores_read
from tunedin import metrics

logger = logging.getLogger(__name__)

MIN_SAMPLES = 50  # fewer events (or sessions, or scores) on a side: the feature is skipped
SESSION_LENGTH_BINS = 10
FETCH_BATCH = 50_000

Window = tuple[datetime, datetime]


@dataclass
class WindowEvents:
    """The positive events of one window as parallel arrays."""

    user_ids: np.ndarray
    track_ids: np.ndarray
    timestamps: np.ndarray  # epoch seconds
    hours: np.ndarray  # 0–23 in settings.TIME_ZONE (Interaction.hour)

    def session_lengths(self) -> np.ndarray:
        return drift.session_lengths(
            self.user_ids, self.timestamps, session_gap_min=settings.SESSION_GAP_MIN
        )


def _window_events(window: Window) -> WindowEvents:
    """The window's plays and likes, fetched in batches (32 bytes per event)."""
    start, end = window
    batches: list[np.ndarray] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, track_id, EXTRACT(EPOCH FROM occurred_at)::float8, hour "
            f"FROM {Interaction._meta.db_table} "
            "WHERE occurred_at > %s AND occurred_at <= %s AND kind = ANY(%s)",
            [start, end, list(POSITIVE_KINDS)],
        )
        while rows := cursor.fetchmany(FETCH_BATCH):
            batches.append(np.array(rows, dtype=np.float64))
    events = np.concatenate(batches) if batches else np.zeros((0, 4))
    return WindowEvents(
        user_ids=events[:, 0].astype(np.int64),
        track_ids=events[:, 1].astype(np.int64),
        timestamps=events[:, 2],
        hours=events[:, 3].astype(np.int64),
    )


def _popularity_drift(
    reference: WindowEvents, recent: WindowEvents, *, ks_max_samples: int
) -> drift.FeatureDrift:
    # The head's share depends on the number of events: compare equal numbers.
    n_events = min(reference.track_ids.size, recent.track_ids.size)
    reference_items = drift.subsample(reference.track_ids, max_samples=n_events, seed=3)
    recent_items = drift.subsample(recent.track_ids, max_samples=n_events, seed=4)
    catalog_size = max(Track.objects.count(), len(np.union1d(reference_items, recent_items)), 1)
    return drift.feature_drift_categorical(
        "item_popularity",
        drift.popularity_concentration_buckets(reference_items, catalog_size=catalog_size),
        drift.popularity_concentration_buckets(recent_items, catalog_size=catalog_size),
        n_categories=len(drift.POPULARITY_BUCKET_NAMES),
        min_samples=MIN_SAMPLES,
        ks_max_samples=ks_max_samples,
    )


def _served_score_drift(version: ModelVersion | None) -> drift.FeatureDrift:
    if version is None:
        return drift.skipped("served_score", "no active recommender model")
    try:
        scores = served_scores_read(version.pk)
    except Exception:
        logger.warning("served scores unavailable", exc_info=True)
        return drift.skipped("served_score", "served scores unavailable (cache unreachable)")
    if scores is None:
        return drift.skipped(
            "served_score",
            f"fewer than {2 * SERVED_SCORES_KEPT} served scores recorded "
            f"for model version {version.pk}",
        )
    reference, recent = scores
    return drift.feature_drift_continuous(
        "served_score", reference, recent, min_samples=MIN_SAMPLES
    )


def _as_datetime(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def _training_window(version: ModelVersion, window_days: int) -> tuple[Window, list[str]]:
    """The window the version was trained on, read from its params (see the module doc)."""
    notes: list[str] = []
    params = version.params or {}
    trained_until = _as_datetime(params.get("trained_until"))
    if trained_until is None:
        trained_until = version.trained_at or version.created_at
        notes.append(
            f"model version {version.pk} has no params.trained_until: "
            f"using {trained_until:%Y-%m-%d %H:%M}"
        )
    data_window = params.get("data_window")
    if isinstance(data_window, dict):
        start, end = _as_datetime(data_window.get("start")), _as_datetime(data_window.get("end"))
        if start is not None:
            return (start, end or trained_until), notes
    if isinstance(data_window, list | tuple) and len(data_window) == 2:
        start, end = _as_datetime(data_window[0]), _as_datetime(data_window[1])
        if start is not None:
            return (start, end or trained_until), notes
    if isinstance(data_window, int | float) and data_window > 0:
        return (trained_until - timedelta(days=data_window), trained_until), notes
    notes.append(
        f"model version {version.pk} has no params.data_window: "
        f"using the {window_days} days before trained_until"
    )
    return (trained_until - timedelta(days=window_days), trained_until), notes


def drift_report_create(
    *,
    window_days: int | None = None,
    psi_threshold: float | None = None,
    window_end: datetime | None = None,
) -> DriftReport:
    """Compare the last `window_days` (default settings.DRIFT_WINDOW_DAYS) with the reference.

    `window_end` (default now) lets a check look at past data, e.g. a demo world's last week.
    """
    window_days = window_days or settings.DRIFT_WINDOW_DAYS
    if psi_threshold is None:
        psi_threshold = settings.DRIFT_PSI_THRESHOLD
    window_end = window_end or timezone.now()
    recent_window = (window_end - timedelta(days=window_days), window_end)
    version = ModelVersion.objects.filter(
        kind=ModelVersion.Kind.RECOMMENDER, status=ModelVersion.Status.ACTIVE
    ).first()
    if version is not None:
        reference_window, notes = _training_window(version, window_days)
        source = DriftReport.ReferenceSource.TRAINING_WINDOW
        if reference_window[1] > recent_window[0]:
            notes.append("the reference window overlaps the recent one: drift is understated")
    else:
        reference_window = (recent_window[0] - timedelta(days=window_days), recent_window[0])
        source = DriftReport.ReferenceSource.PRECEDING_WINDOW
        notes = ["no active recommender model: compared with the preceding window"]

    reference_events = _window_events(reference_window)
    recent_events = _window_events(recent_window)
    reference_sessions = reference_events.session_lengths()
    recent_sessions = recent_events.session_lengths()
    # Events of one session are not independent: sessions are the independent observations.
    n_sessions = int(min(reference_sessions.size, recent_sessions.size))

    def too_few_sessions(feature: str, n_bins: int, n_reference: int, n_current: int):
        needed = drift.min_samples_for_psi(n_bins)
        if n_sessions >= needed:
            return None
        return drift.skipped(
            feature,
            f"{n_sessions} sessions in a window, PSI over {n_bins} bins needs {needed} "
            "to tell drift from noise",
            n_reference=n_reference,
            n_current=n_current,
        )

    n_reference_events, n_recent_events = reference_events.hours.size, recent_events.hours.size
    features = [
        too_few_sessions(
            "item_popularity",
            len(drift.POPULARITY_BUCKET_NAMES),
            n_reference_events,
            n_recent_events,
        )
        or _popularity_drift(reference_events, recent_events, ks_max_samples=n_sessions),
        too_few_sessions("hour_of_day", drift.HOURS_OF_DAY, n_reference_events, n_recent_events)
        or drift.feature_drift_categorical(
            "hour_of_day",
            reference_events.hours,
            recent_events.hours,
            n_categories=drift.HOURS_OF_DAY,
            min_samples=MIN_SAMPLES,
            ks_max_samples=n_sessions,
        ),
        too_few_sessions(
            "session_length", SESSION_LENGTH_BINS, reference_sessions.size, recent_sessions.size
        )
        or drift.feature_drift_continuous(
            "session_length",
            reference_sessions,
            recent_sessions,
            n_bins=SESSION_LENGTH_BINS,
            min_samples=MIN_SAMPLES,
        ),
        _served_score_drift(version),
    ]

    drifted = [feature for feature in features if feature.drifted(psi_threshold)]
    report = DriftReport.objects.create(
        window_start=recent_window[0],
        window_end=recent_window[1],
        reference_source=source,
        reference_start=reference_window[0],
        reference_end=reference_window[1],
        reference_version=version,
        psi_threshold=psi_threshold,
        features={
            feature.feature: {**feature.as_dict(), "drifted": feature.drifted(psi_threshold)}
            for feature in features
        },
        drifted=bool(drifted),
        notes=notes,
    )
    for feature in features:
        metrics.drift_feature_set(
            feature=feature.feature, psi=feature.psi, ks_pvalue=feature.ks_pvalue
        )
    metrics.DRIFT_CHECK_TIMESTAMP.set_to_current_time()
    for feature in drifted:
        logger.warning(
            "data drift: %s PSI %.3f above %.3f",
            feature.feature,
            feature.psi,
            psi_threshold,
            extra={
                "feature": feature.feature,
                "psi": feature.psi,
                "ks_pvalue": feature.ks_pvalue,
                "psi_threshold": psi_threshold,
                "drift_report": report.pk,
            },
        )
    logger.info(
        "drift report %s: %d of %d features drifted",
        report.pk,
        len(drifted),
        len(features),
        extra={"drift_report": report.pk, "reference_source": source},
    )
    return report
