from django.conf import settings
from django.db import models


class Interaction(models.Model):
    """One listening event: a play, like, skip or dislike of a track by a user."""

    class Kind(models.TextChoices):
        PLAY = "play"
        LIKE = "like"
        SKIP = "skip"
        DISLIKE = "dislike"

    class Source(models.TextChoices):
        WEB = "web"
        API = "api"
        IMPORT = "import"
        DEMO = "demo"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="interactions"
    )
    track = models.ForeignKey(
        "catalog.Track", on_delete=models.CASCADE, related_name="interactions"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    # Context derived from occurred_at (in settings.TIME_ZONE): 0–23 and 0 = Monday … 6.
    hour = models.PositiveSmallIntegerField()
    day_of_week = models.PositiveSmallIntegerField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="unique_interaction_idempotency_key_per_user",
            ),
            models.CheckConstraint(condition=models.Q(hour__lte=23), name="interaction_hour_0_23"),
            models.CheckConstraint(
                condition=models.Q(day_of_week__lte=6), name="interaction_day_of_week_0_6"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "occurred_at"], name="interaction_user_time"),
            models.Index(fields=["track", "kind"], name="interaction_track_kind"),
            models.Index(fields=["occurred_at"], name="interaction_time"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.track_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


# The kinds that count as a positive signal (popularity, training, drift).
POSITIVE_KINDS = (Interaction.Kind.PLAY, Interaction.Kind.LIKE)


class DoNotRecommend(models.Model):
    """A listener's "do not recommend": a track, or an artist (all their tracks), kept out of
    every list served to them, optionally only until a moment (`until`; None = for good)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="do_not_recommend"
    )
    track = models.ForeignKey(
        "catalog.Track", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    artist = models.ForeignKey(
        "catalog.Artist", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "do-not-recommend mark"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(track__isnull=False, artist__isnull=True)
                | models.Q(track__isnull=True, artist__isnull=False),
                name="do_not_recommend_track_or_artist",
            ),
            models.UniqueConstraint(
                fields=["user", "track"],
                condition=models.Q(track__isnull=False),
                name="unique_do_not_recommend_track_per_user",
            ),
            models.UniqueConstraint(
                fields=["user", "artist"],
                condition=models.Q(artist__isnull=False),
                name="unique_do_not_recommend_artist_per_user",
            ),
        ]

    def __str__(self) -> str:
        target = f"track {self.track_id}" if self.track_id else f"artist {self.artist_id}"
        return f"{self.user_id} do not recommend {target}"

    def applies_at(self, moment) -> bool:
        return self.until is None or self.until > moment
