"""Reads for interleaved A/B tests of recommender versions: the running test, the recent ones,
the versions that may challenge the active one, and a test's live result.

A test's live result is read from what was shown and what listeners did with it: each shown
list (one `feedback.Impression`) of the test is one comparison, its positive events
(likes and plays linked to it) credited to the team, "A" the control or "B" the
challenger, that contributed each track (mltasks.ml.eval.interleaving says how the outcomes
are summarised).
"""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

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


# Per list of the test, the likes and plays of each team's tracks: linked to the list, or, until
# the feedback is linked, sent back with the list's request_id by its listener.
_TEAM_COUNTS_SQL = """
SELECT shown.request_id, drafted.team, count(event.id)
FROM {impression} AS shown
CROSS JOIN LATERAL unnest(shown.track_ids, shown.teams) AS drafted (track_id, team)
LEFT JOIN {interaction} AS event
    ON event.user_id = shown.user_id
    AND event.track_id = drafted.track_id
    AND event.kind = ANY(%(positive_kinds)s)
    AND (event.impression_id = shown.id
         OR (event.impression_id IS NULL AND event.request_id = shown.request_id))
WHERE shown.interleaving_test_id = %(test)s AND drafted.team IN (%(a)s, %(b)s)
GROUP BY 1, 2
"""


def interleaving_team_counts(*, test: InterleavingTest) -> dict[str, dict[str, int]]:
    """{request id: {"A": positive events on the control's tracks, "B": on the challenger's}}
    for every list the test showed (one query)."""
    sql = _TEAM_COUNTS_SQL.format(
        impression=Impression._meta.db_table, interaction=Interaction._meta.db_table
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {"positive_kinds": list(POSITIVE_KINDS), "test": test.pk, "a": TEAM_A, "b": TEAM_B},
        )
        rows = cursor.fetchall()
    counts: dict[str, dict[str, int]] = {}
    for request_id, team, positives in rows:
        counts.setdefault(str(request_id), {TEAM_A: 0, TEAM_B: 0})[team] = int(positives)
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
