from django.contrib import admin

from feedback.models import Interaction


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    """Read-only: the interaction log is written by the feedback API, the site and importers."""

    list_display = ("occurred_at", "user", "kind", "track", "source")
    list_filter = ("kind", "source", "occurred_at")
    list_select_related = ("user", "track__artist")
    date_hierarchy = "occurred_at"
    search_fields = ("=user__username", "track__title")
    show_full_result_count = False  # the log is large; an exact count on every page is slow

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
