from django.contrib import admin
from django.db.models import Count

from playlists.models import Playlist, PlaylistEntry


class PlaylistEntryInline(admin.TabularInline):
    """Read-only: edits go through the playlist services, which keep positions dense."""

    model = PlaylistEntry
    fields = ("position", "track", "added_at")
    readonly_fields = fields
    ordering = ["position"]
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("track__artist")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Playlist)
class PlaylistAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "is_public", "n_tracks", "updated_at")
    list_filter = ("is_public", "updated_at")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username", "external_id")
    autocomplete_fields = ["owner"]
    readonly_fields = ("created_at", "updated_at")
    inlines = [PlaylistEntryInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_tracks=Count("entries"))

    @admin.display(ordering="n_tracks", description="tracks")
    def n_tracks(self, playlist):
        return playlist.n_tracks
