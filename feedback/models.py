from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
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
    # The shown list this feedback answers (the `request_id` of a served list, when the client
    # sends it back), and the impression it resolves to once that impression is written.
    request_id = models.UUIDField(null=True, blank=True)
    impression = models.ForeignKey(
        "feedback.Impression",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="feedback",
    )
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


class Impression(models.Model):
    """One list served to one listener: the tracks it showed, in the order shown.

    One row per served list, not per track: the log's write cost is a row per request (the
    flush writes a few thousand lists in one INSERT; feedback.services). The track at index i
    of `track_ids` was shown at position `first_position + i` (0 = first in the list). Written
    asynchronously and in bulk. `model_version_id` and `interleaving_test_id` are plain integers
    because this app sits below mltasks (the import contracts); they name a
    mltasks.ModelVersion and a mltasks.InterleavingTest. Inside an interleaved test `teams[i]`
    says which version contributed `track_ids[i]` ("A" the control, "B" the challenger);
    outside one `teams` is empty.
    """

    class Surface(models.TextChoices):
        API_REC = "api_rec"
        DISCOVER = "discover"
        CONTINUATION = "continuation"
        SIMILAR = "similar"
        GENERATED = "generated"

    class Team(models.TextChoices):
        NONE = "", "outside a test"
        A = "A", "control"
        B = "B", "challenger"

    request_id = models.UUIDField(unique=True)
    # Covered by the (user, shown_at) index.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="impressions",
        db_index=False,
    )
    # Plain ids, no foreign keys: a track deleted later leaves its id in the log.
    track_ids = ArrayField(models.BigIntegerField())
    first_position = models.PositiveSmallIntegerField(default=0)
    surface = models.CharField(max_length=16, choices=Surface.choices)
    model_version_id = models.IntegerField(null=True, blank=True)
    pipeline = models.CharField(max_length=64, blank=True)
    interleaving_test_id = models.IntegerField(null=True, blank=True)
    teams = ArrayField(
        models.CharField(max_length=1, choices=Team.choices, blank=True),
        default=list,
        blank=True,
    )
    shown_at = models.DateTimeField()

    class Meta:
        ordering = ["-shown_at"]
        indexes = [
            models.Index(fields=["user", "shown_at"], name="impression_user_time"),
            # Rows arrive about in time order: a BRIN index serves the daily stats and the
            # pruning at a fraction of a B-tree's write cost.
            BrinIndex(fields=["shown_at"], name="impression_time_brin"),
            models.Index(
                fields=["interleaving_test_id"],
                condition=models.Q(interleaving_test_id__isnull=False),
                name="impression_interleaving_test",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.surface} {self.request_id}: {len(self.track_ids)} tracks"

    def _index_of(self, track_id: int) -> int | None:
        """The index of `track_id`'s first showing in `track_ids`, or None."""
        try:
            return self.track_ids.index(track_id)
        except ValueError:
            return None

    def position_of(self, track_id: int) -> int | None:
        """Where the list showed `track_id` (its first showing), or None."""
        index = self._index_of(track_id)
        return None if index is None else self.first_position + index

    def team_of(self, track_id: int) -> str:
        """The team that contributed `track_id` in an interleaved list ("" otherwise)."""
        index = self._index_of(track_id)
        if index is None or index >= len(self.teams or ()):
            return ""
        return self.teams[index]
