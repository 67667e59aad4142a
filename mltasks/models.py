import numpy as np
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from pgvector.django import VectorField

# Stored vectors are zero-padded to this size: padding changes neither inner products nor
# cosine similarity, and one fixed size lets a single HNSW index serve every model version.
STORED_VECTOR_DIM = 128


def padded_vector(vector: np.ndarray) -> np.ndarray:
    """`vector` zero-padded to STORED_VECTOR_DIM (float32), as pgvector stores it."""
    if vector.shape[0] > STORED_VECTOR_DIM:
        raise ValueError(f"vectors of {vector.shape[0]} dims exceed the stored {STORED_VECTOR_DIM}")
    padded = np.zeros(STORED_VECTOR_DIM, dtype=np.float32)
    padded[: vector.shape[0]] = vector
    return padded


class ModelVersion(models.Model):
    """One trained model: its parameters, metrics, artifacts and serving status."""

    class Kind(models.TextChoices):
        RECOMMENDER = "recommender", "User recommendations"
        CONTINUATION = "continuation", "Playlist continuation"

    class Status(models.TextChoices):
        TRAINING = "training"
        READY = "ready"
        ACTIVE = "active"
        FAILED = "failed"
        RETIRED = "retired"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    algorithm = models.CharField(max_length=50, help_text="e.g. lightgcn, ease, sasrec")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="per-epoch training log")
    artifact_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(status="active"),
                name="one_active_model_version_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.algorithm} ({self.status})"

    @transaction.atomic
    def activate(self) -> None:
        """Make this version the one that serves its kind; the previous one is retired."""
        (
            ModelVersion.objects.select_for_update()
            .filter(kind=self.kind, status=self.Status.ACTIVE)
            .exclude(pk=self.pk)
            .update(status=self.Status.RETIRED)
        )
        self.status = self.Status.ACTIVE
        self.activated_at = timezone.now()
        self.save(update_fields=["status", "activated_at"])


class TrackVector(models.Model):
    """A track's embedding under one model version (pgvector; each version has its own HNSW
    index with cosine distance, built by mltasks.vector_indexes)."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="track_vectors"
    )
    track = models.ForeignKey("catalog.Track", on_delete=models.CASCADE, related_name="vectors")
    embedding = VectorField(dimensions=STORED_VECTOR_DIM)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "track"], name="unique_track_vector_per_version"
            )
        ]


class UserVector(models.Model):
    """A user's embedding under one model version (pgvector; each version has its own HNSW
    index with cosine distance, built by mltasks.vector_indexes)."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="user_vectors"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vectors"
    )
    embedding = VectorField(dimensions=STORED_VECTOR_DIM)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "user"], name="unique_user_vector_per_version"
            )
        ]


class DriftReport(models.Model):
    """One drift check: recent interactions compared with a reference window, per feature.

    `features` maps a feature name to {psi, ks_statistic, ks_pvalue, n_reference, n_current,
    drifted, note}; see mltasks.drift_services.drift_report_create.
    """

    class ReferenceSource(models.TextChoices):
        TRAINING_WINDOW = "training_window", "Training window of the active model version"
        PRECEDING_WINDOW = "preceding_window", "The window before the recent one"

    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    reference_source = models.CharField(max_length=20, choices=ReferenceSource.choices)
    reference_start = models.DateTimeField()
    reference_end = models.DateTimeField()
    reference_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="drift_reports",
    )
    psi_threshold = models.FloatField()
    features = models.JSONField(default=dict, blank=True)
    drifted = models.BooleanField(default=False, help_text="a feature's PSI is above threshold")
    notes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        state = "drift" if self.drifted else "stable"
        window = f"{self.window_start:%Y-%m-%d}–{self.window_end:%Y-%m-%d}"
        return f"drift report #{self.pk} {window} ({state})"


class InterleavingTest(models.Model):
    """A live comparison of two recommender versions by team-draft interleaving.

    A `share` of listeners (chosen by a stable hash of the user and the test) get one list
    drafted from both rankings; a like or a play on a shown track credits the version that
    contributed it (feedback.Impression.team). Staff stop it, or promote the challenger.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        STOPPED = "stopped"
        PROMOTED = "promoted"

    control = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    challenger = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    share = models.FloatField()  # of listeners, in (0, 1]
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # The same comparison replayed offline on held-out interactions when the test starts.
    offline = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="running"),
                name="one_running_interleaving_test",
            ),
            models.CheckConstraint(
                condition=models.Q(share__gt=0, share__lte=1), name="interleaving_share_0_1"
            ),
            models.CheckConstraint(
                condition=~models.Q(control=models.F("challenger")),
                name="interleaving_two_versions",
            ),
        ]

    def __str__(self) -> str:
        return f"test #{self.pk}: #{self.control_id} vs #{self.challenger_id} ({self.status})"
