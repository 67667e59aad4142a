"""The staff model dashboard: versions per kind, training curves, activation, retraining, and
the online metrics of served lists."""

from __future__ import annotations

import functools
import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from mltasks.models import ModelVersion
from mltasks.selectors import model_version_activation_check
from web.dashboard import dashboard_sections, online_metrics

logger = logging.getLogger(__name__)


def staff_required(view):
    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("The model dashboard is for staff.")
        return view(request, *args, **kwargs)

    return wrapper


@staff_required
@require_GET
def model_dashboard(request):
    return render(
        request,
        "dashboard/models.html",
        {"sections": dashboard_sections(), "online": online_metrics()},
    )


@staff_required
@require_POST
def model_version_activate_view(request, version_id: int):
    version = get_object_or_404(ModelVersion, pk=version_id)
    check = model_version_activation_check(version=version)
    if not check.allowed:
        messages.error(request, check.refusal)
        return redirect("model-dashboard")
    from mltasks.services import model_version_activate  # imported late: it loads the ML stack

    model_version_activate(version=version)
    logger.info("model version %s activated from the dashboard by %s", version.pk, request.user)
    verb = "Rolled back to" if check.is_rollback else "Activated"
    messages.success(request, f"{verb} {version.get_kind_display().lower()} #{version.pk}.")
    return redirect("model-dashboard")


@staff_required
@require_POST
def model_retrain(request):
    kind = request.POST.get("kind", "")
    if kind not in ModelVersion.Kind.values:
        messages.error(request, "Choose which model to retrain.")
        return redirect("model-dashboard")
    from mltasks.services import training_enqueue  # imported late: it loads the ML stack

    try:
        task_id = training_enqueue(kind=kind)
    except Exception:
        logger.exception("could not queue %s training", kind)
        messages.error(request, "Could not queue the training run: is the Celery broker up?")
        return redirect("model-dashboard")
    messages.success(
        request, f"Retraining queued ({ModelVersion.Kind(kind).label}, task {task_id}); "
        "the new version appears here when it finishes.",
    )  # fmt: skip
    return redirect("model-dashboard")
