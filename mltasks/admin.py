import json

from django.contrib import admin, messages
from django.utils.html import format_html

from mltasks.models import InterleavingTest, ModelVersion
from mltasks.selectors import ACTIVATABLE


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Versions are created by training; here they are read, and one can be activated."""

    list_display = ("id", "kind", "algorithm", "status", "created_at", "trained_at", "activated_at")
    list_filter = ("kind", "status", "algorithm")
    search_fields = ("=id", "algorithm")
    date_hierarchy = "created_at"
    actions = ["activate_version"]
    exclude = ("metrics", "history", "params")
    readonly_fields = (
        "kind", "algorithm", "status", "created_at", "trained_at", "activated_at",
        "artifact_path", "error", "metrics_json", "params_json", "history_json",
    )  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.status != ModelVersion.Status.ACTIVE

    @staticmethod
    def _json(value):
        return format_html("<pre>{}</pre>", json.dumps(value, indent=2, default=str))

    @admin.display(description="metrics")
    def metrics_json(self, version):
        return self._json(version.metrics)

    @admin.display(description="params")
    def params_json(self, version):
        return self._json(version.params)

    @admin.display(description="per-epoch history")
    def history_json(self, version):
        return self._json(version.history)

    @admin.action(description="Activate the selected version (retires the active one)")
    def activate_version(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = queryset.get()
        if version.status not in ACTIVATABLE:
            self.message_user(
                request, f"#{version.pk} is {version.status}; only ready or retired versions "
                "can be activated.", messages.ERROR,
            )  # fmt: skip
            return
        from mltasks.services import model_version_activate  # imported late: loads the ML stack

        model_version_activate(version=version)
        self.message_user(request, f"Activated {version}.", messages.SUCCESS)


@admin.register(InterleavingTest)
class InterleavingTestAdmin(admin.ModelAdmin):
    """Tests are started, stopped and promoted from the staff page (/dashboard/experiments/),
    which runs the offline replay and keeps serving in step; here they are read."""

    list_display = ("id", "control", "challenger", "share", "status", "started_at", "stopped_at")
    list_filter = ("status",)
    search_fields = ("=id", "=control__id", "=challenger__id")
    date_hierarchy = "started_at"
    exclude = ("offline",)
    readonly_fields = (
        "control", "challenger", "share", "status", "started_by", "started_at", "stopped_at",
        "offline_json",
    )  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="offline replay")
    def offline_json(self, test):
        return ModelVersionAdmin._json(test.offline)
