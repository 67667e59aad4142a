"""Reads for interleaved A/B tests of recommender versions: the running test, the recent ones,
the versions that may challenge the active one, and a test's live result.

A test's live result is read from what was shown and what listeners did with it: each shown
list (one `feedback.Impression.request_id`) of the test is one comparison, its positive events
(likes and plays linked to its impressions) credited to the team, "A" the control or "B" the
challenger, that contributed each track (mltasks.ml.eval.interleaving says how the outcomes
are summarised).
"""

from __future__ import annotations

from django.db.models import Func, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from feedback.models import Impression, Interaction
from mltasks.ml.eval.interleaving import (
    TEAM_A,
    TEAM_B,
    InterleavingSummary,
    list_outcome,
    summarize_outcomes,
)
from mltasks.models import InterleavingTest, ModelVersion
from mltasks.selectors import ACTIVATABLE

POSITIVE_KINDS = (Interaction.Kind.LIKE, Interaction.Kind.PLAY)


def interleaving_test_running() -> InterleavingTest | None:
    """The test that runs now (at most one does), with both versions loaded."""
    return (
        InterleavingTest.objects.filter(status=InterleavingTest.Status.RUNNING)
        .select_related("control", "challenger", "started_by")
        .first()
    )


def interleaving_tests_recent(*, n: int) -> list[InterleavingTest]:
    """The `n` most recently started tests, newest first."""
    return list(InterleavingTest.objects.select_related("control", "challenger", "started_by")[:n])


def interleaving_challengers() -> QuerySet[ModelVersion]:
    """Recommender versions that may challenge the active one: trained (ready or retired),
    with artifacts to serve from; newest first."""
    return (
        ModelVersion.objects.filter(kind=ModelVersion.Kind.RECOMMENDER, status__in=ACTIVATABLE)
        .exclude(artifact_path="")
        .order_by("-created_at", "-id")
    )


def interleaving_challenger_refusal(*, challenger: ModelVersion, control: ModelVersion) -> str:
    """Why `challenger` cannot be tested against `control` ("" when it can)."""
    if challenger.kind != ModelVersion.Kind.RECOMMENDER:
        return (
            f"Version #{challenger.pk} is a {challenger.kind} model; only recommenders are tested."
        )
    if challenger.pk == control.pk:
        return f"Version #{challenger.pk} is the active version; choose another one to test."
    if challenger.status not in ACTIVATABLE:
        return (
            f"Version #{challenger.pk} is {challenger.status}; only trained versions (ready or "
            "retired) can be tested."
        )
    if not challenger.artifact_path:
        return f"Version #{challenger.pk} has no artifacts to serve from."
    return ""


def _positive_events_per_impression():
    """A subquery: the likes and plays linked to the outer impression, by its foreign key or,
    until the impression is linked, by the same list, listener and track."""
    linked = Interaction.objects.filter(kind__in=POSITIVE_KINDS).filter(
        Q(impression_id=OuterRef("pk"))
        | Q(
            impression__isnull=True,
            request_id=OuterRef("request_id"),
            user_id=OuterRef("user_id"),
            track_id=OuterRef("track_id"),
        )
    )
    return Subquery(
        linked.order_by().annotate(n=Func("id", function="COUNT")).values("n"),
        output_field=IntegerField(),
    )


def interleaving_team_counts(*, test: InterleavingTest) -> dict[str, dict[str, int]]:
    """{request id: {"A": positive events on the control's tracks, "B": on the challenger's}}
    for every list the test showed (one query)."""
    rows = (
        Impression.objects.filter(interleaving_test_id=test.pk, team__in=(TEAM_A, TEAM_B))
        .annotate(events=Coalesce(_positive_events_per_impression(), 0))
        .values("request_id", "team")
        .annotate(positives=Sum("events"))
        .order_by()
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(str(row["request_id"]), {TEAM_A: 0, TEAM_B: 0})[row["team"]] = int(
            row["positives"] or 0
        )
    return counts


def interleaving_results(*, test: InterleavingTest) -> InterleavingSummary:
    """The test's live result: wins of the control (A), losses (lists the challenger won),
    ties, the preference Δ (> 0 favours the control) with its 95% interval and the sign
    test's p-value. Lists nobody liked or played anything from carry no outcome."""
    outcomes = [
        list_outcome(positives_a=teams[TEAM_A], positives_b=teams[TEAM_B])
        for teams in interleaving_team_counts(test=test).values()
    ]
    return summarize_outcomes(outcomes)
