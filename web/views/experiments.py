"""Staff pages for interleaved A/B tests: the tests with their live and offline readings, and
the forms that start, stop and promote (mltasks.interleaving_services does the work)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from mltasks.interleaving_selectors import (
    interleaving_challengers,
    interleaving_results,
    interleaving_tests_recent,
)
from mltasks.ml.eval.interleaving import InterleavingSummary
from mltasks.models import InterleavingTest, ModelVersion
from mltasks.selectors import model_version_active
from web.views.dashboard import staff_required

logger = logging.getLogger(__name__)

TESTS_SHOWN = 10
DEFAULT_SHARE_PERCENT = 10


class InterleavingTestStartForm(forms.Form):
    challenger = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        label="Challenger",
        empty_label=None,
        error_messages={"invalid_choice": "Choose a trained recommender version to test."},
    )
    share_percent = forms.FloatField(
        label="Share of listeners (%)",
        min_value=0.1,
        max_value=100,
        initial=DEFAULT_SHARE_PERCENT,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )

    def __init__(self, *args, active: ModelVersion | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        challengers = interleaving_challengers()
        if active is not None:
            challengers = challengers.exclude(pk=active.pk)
        self.fields["challenger"].queryset = challengers
        self.fields["challenger"].label_from_instance = lambda version: (
            f"#{version.pk} {version.algorithm} ({version.status})"
        )


class InterleavingPromoteForm(forms.Form):
    version = forms.IntegerField(min_value=1)


@dataclass(frozen=True)
class TestRow:
    test: InterleavingTest
    live: InterleavingSummary
    offline: dict

    @property
    def share_percent(self) -> str:
        return f"{self.test.share * 100:.4g}%"

    @property
    def running(self) -> bool:
        return self.test.status == InterleavingTest.Status.RUNNING

    @staticmethod
    def verdict(summary: InterleavingSummary | dict, test: InterleavingTest) -> str:
        winner = summary.get("winner") if isinstance(summary, dict) else summary.winner
        if winner == "A":
            return f"significant: the control #{test.control_id} is preferred"
        if winner == "B":
            return f"significant: the challenger #{test.challenger_id} is preferred"
        return "not yet significant"

    @property
    def live_verdict(self) -> str:
        return self.verdict(self.live, self.test)

    @property
    def offline_verdict(self) -> str:
        return self.verdict(self.offline, self.test)


def _first_error(form: forms.Form) -> str:
    for errors in form.errors.values():
        return errors[0]
    return "Check the form."


@staff_required
@require_GET
def interleaving_tests(request):
    active = model_version_active(kind=ModelVersion.Kind.RECOMMENDER)
    rows = [
        TestRow(test=test, live=interleaving_results(test=test), offline=test.offline or {})
        for test in interleaving_tests_recent(n=TESTS_SHOWN)
    ]
    context = {
        "rows": rows,
        "active": active,
        "running": next((row for row in rows if row.running), None),
        "form": InterleavingTestStartForm(active=active),
    }
    return render(request, "dashboard/interleaving.html", context)


@staff_required
@require_POST
def interleaving_test_start_view(request):
    from mltasks.interleaving_services import InterleavingTestError, interleaving_test_start

    active = model_version_active(kind=ModelVersion.Kind.RECOMMENDER)
    form = InterleavingTestStartForm(request.POST, active=active)
    if not form.is_valid():
        messages.error(request, _first_error(form))
        return redirect("interleaving-tests")
    try:
        test = interleaving_test_start(
            challenger=form.cleaned_data["challenger"],
            share=form.cleaned_data["share_percent"] / 100,
            started_by=request.user,
        )
    except InterleavingTestError as error:
        messages.error(request, str(error))
        return redirect("interleaving-tests")
    messages.success(
        request,
        f"Test #{test.pk} started: #{test.control_id} (control) against #{test.challenger_id} "
        f"(challenger) for {test.share * 100:.4g}% of listeners.",
    )
    return redirect("interleaving-tests")


@staff_required
@require_POST
def interleaving_test_stop_view(request, test_id: int):
    from mltasks.interleaving_services import InterleavingTestError, interleaving_test_stop

    test = get_object_or_404(InterleavingTest, pk=test_id)
    try:
        interleaving_test_stop(test=test)
    except InterleavingTestError as error:
        messages.error(request, str(error))
        return redirect("interleaving-tests")
    messages.success(request, f"Test #{test.pk} stopped: everyone gets #{test.control_id} again.")
    return redirect("interleaving-tests")


@staff_required
@require_POST
def interleaving_test_promote_view(request, test_id: int):
    from mltasks.interleaving_services import InterleavingTestError, interleaving_test_promote

    test = get_object_or_404(
        InterleavingTest.objects.select_related("control", "challenger"), pk=test_id
    )
    form = InterleavingPromoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Name the version to promote.")
        return redirect("interleaving-tests")
    chosen = form.cleaned_data["version"]
    version = {test.control_id: test.control, test.challenger_id: test.challenger}.get(chosen)
    if version is None:
        messages.error(request, f"Version #{chosen} is not part of test #{test.pk}.")
        return redirect("interleaving-tests")
    try:
        interleaving_test_promote(test=test, version=version)
    except InterleavingTestError as error:
        messages.error(request, str(error))
        return redirect("interleaving-tests")
    logger.info("test %s: version %s promoted by %s", test.pk, version.pk, request.user)
    messages.success(request, f"Test #{test.pk} ended: #{version.pk} now serves everyone.")
    return redirect("interleaving-tests")
