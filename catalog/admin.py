from django.contrib import admin
from django.db.models import Count

from catalog.models import Artist, ArtistTag, Tag, Track, TrackTag


class ArtistTagInline(admin.TabularInline):
    model = ArtistTag
    autocomplete_fields = ["tag"]
    extra = 0


class TrackTagInline(admin.TabularInline):
    model = TrackTag
    autocomplete_fields = ["tag"]
    extra = 0


class TrackInline(admin.TabularInline):
    model = Track
    fields = ("title", "duration_ms", "popularity")
    readonly_fields = ("popularity",)
    ordering = ["-popularity"]
    show_change_link = True
    extra = 0


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "n_tracks", "n_artists")
    search_fields = ("name",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_tracks=Count("track_links", distinct=True),
                n_artists=Count("artist_links", distinct=True),
            )
        )

    @admin.display(ordering="n_tracks", description="tracks")
    def n_tracks(self, tag):
        return tag.n_tracks

    @admin.display(ordering="n_artists", description="artists")
    def n_artists(self, tag):
        return tag.n_artists


@admin.register(Artist)
class ArtistAdmin(admin.ModelAdmin):
    list_display = ("name", "n_tracks", "musicbrainz_id", "created_at")
    search_fields = ("name", "=musicbrainz_id", "=lastfm_id", "=spotify_uri")
    list_filter = ("tags", "created_at")
    inlines = [ArtistTagInline, TrackInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_tracks=Count("tracks"))

    @admin.display(ordering="n_tracks", description="tracks")
    def n_tracks(self, artist):
        return artist.n_tracks


@admin.register(Track)
class TrackAdmin(admin.ModelAdmin):
    list_display = ("title", "artist", "popularity", "duration_ms", "created_at")
    list_select_related = ("artist",)
    search_fields = ("title", "artist__name", "=musicbrainz_id", "=lastfm_id", "=spotify_uri")
    list_filter = ("tags", "created_at")
    autocomplete_fields = ["artist"]
    readonly_fields = ("popularity", "created_at")
    inlines = [TrackTagInline]
