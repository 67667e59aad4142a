from django.conf import settings
from django.db import models
from django.urls import reverse


class Playlist(models.Model):
    class Generated(models.TextChoices):
        """Playlists the weekly task builds for a listener (replaced on each run)."""

        WEEKLY_EXPLORATION = "weekly-exploration", "Weekly Exploration"
        DAILY_JAMS = "daily-jams", "Daily Jams"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="playlists"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_public = models.BooleanField(default=False)
    # Where an imported playlist came from, e.g. "mpd:1234"; makes re-imports idempotent.
    external_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    # Which generated playlist this is; "" for a listener's own (only those can be edited).
    generated = models.CharField(
        max_length=30, blank=True, default="", db_default="", choices=Generated.choices
    )
    tracks = models.ManyToManyField("catalog.Track", through="PlaylistEntry", related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="playlist_owner_updated")]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "generated"],
                condition=~models.Q(generated=""),
                name="unique_generated_playlist_per_owner",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("playlists:detail", args=[self.pk])

    @property
    def is_generated(self) -> bool:
        return bool(self.generated)


class PlaylistEntry(models.Model):
    """A track at a position; positions are dense (0…n-1) and unique within a playlist."""

    playlist = models.ForeignKey(Playlist, on_delete=models.CASCADE, related_name="entries")
    track = models.ForeignKey("catalog.Track", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["playlist", "position"]
        constraints = [
            # Deferred so that a move can shift positions inside one transaction.
            models.UniqueConstraint(
                fields=["playlist", "position"],
                name="unique_playlist_position",
                deferrable=models.Deferrable.DEFERRED,
            )
        ]
