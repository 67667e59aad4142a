from django.contrib import admin

from feedback.models import DoNotRecommend, Impression, Interaction
from feedback.services import do_not_recommend_unmark


class ReadOnlyLogAdmin(admin.ModelAdmin):
    """A log that the application writes: staff read it, nobody edits it here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Interaction)
class InteractionAdmin(ReadOnlyLogAdmin):
    """Read-only: the interaction log is written by the feedback API, the site and importers."""

    list_display = ("occurred_at", "user", "kind", "track", "source")
    list_filter = ("kind", "source", "occurred_at")
    list_select_related = ("user", "track__artist")
    date_hierarchy = "occurred_at"
    search_fields = ("=user__username", "track__title")
    show_full_result_count = False  # the log is large; an exact count on every page is slow


@admin.register(DoNotRecommend)
class DoNotRecommendAdmin(admin.ModelAdmin):
    """Listeners' marks; staff may lift one (deleting it) or see who blocks what."""

    list_display = ("created_at", "user", "track", "artist", "until")
    list_select_related = ("user", "track__artist", "artist")
    search_fields = ("=user__username", "track__title", "artist__name")
    raw_id_fields = ("user", "track", "artist")

    def has_add_permission(self, request):
        return False  # listeners mark from the site or the API

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        # Through the service, so that the listener's cached lists are dropped too.
        do_not_recommend_unmark(user=obj.user, track_id=obj.track_id, artist_id=obj.artist_id)

    def delete_queryset(self, request, queryset):
        for mark in queryset.select_related("user"):
            self.delete_model(request, mark)


@admin.register(Impression)
class ImpressionAdmin(ReadOnlyLogAdmin):
    """Read-only: impressions are written in bulk from what the API and the site served, and
    pruned after IMPRESSIONS_RETENTION_DAYS."""

    list_display = (
        "shown_at", "user", "surface", "tracks_shown", "model_version_id", "pipeline",
        "interleaving_test_id", "request_id",
    )  # fmt: skip
    list_filter = ("surface", "model_version_id", "pipeline", "shown_at")
    list_select_related = ("user",)
    date_hierarchy = "shown_at"
    search_fields = ("=user__username", "=request_id")
    show_full_result_count = False  # the log is large; an exact count on every page is slow

    @admin.display(description="tracks")
    def tracks_shown(self, impression: Impression) -> int:
        return len(impression.track_ids)
