from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models


class Tag(models.Model):
    """A genre, mood or scene label, e.g. "shoegaze"."""

    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        indexes = [GinIndex(SearchVector("name", config="simple"), name="tag_name_search")]

    def __str__(self) -> str:
        return self.name


class Artist(models.Model):
    name = models.CharField(max_length=255, db_index=True)
    lastfm_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    musicbrainz_id = models.CharField(max_length=36, null=True, blank=True, unique=True)
    spotify_uri = models.CharField(max_length=100, null=True, blank=True, unique=True)
    tags = models.ManyToManyField(Tag, through="ArtistTag", related_name="artists")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [GinIndex(SearchVector("name", config="simple"), name="artist_name_search")]

    def __str__(self) -> str:
        return self.name


class Track(models.Model):
    title = models.CharField(max_length=255)
    artist = models.ForeignKey(Artist, on_delete=models.CASCADE, related_name="tracks")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    lastfm_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    musicbrainz_id = models.CharField(max_length=36, null=True, blank=True, unique=True)
    spotify_uri = models.CharField(max_length=100, null=True, blank=True, unique=True)
    # Plays in the recent window, refreshed by a Celery task; drives MostPop and ordering.
    popularity = models.FloatField(default=0.0, db_index=True)
    tags = models.ManyToManyField(Tag, through="TrackTag", related_name="tracks")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-popularity", "id"]
        indexes = [GinIndex(SearchVector("title", config="simple"), name="track_title_search")]

    def __str__(self) -> str:
        return f"{self.title} — {self.artist_id}"


class ArtistTag(models.Model):
    artist = models.ForeignKey(Artist, on_delete=models.CASCADE, related_name="tag_links")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="artist_links")
    weight = models.FloatField(default=1.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["artist", "tag"], name="unique_artist_tag"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="artist_tag_weight_gt_0"),
        ]


class TrackTag(models.Model):
    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="tag_links")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="track_links")
    weight = models.FloatField(default=1.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["track", "tag"], name="unique_track_tag"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="track_tag_weight_gt_0"),
        ]
