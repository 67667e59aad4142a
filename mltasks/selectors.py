"""Reads for training and for the model dashboard: training data from Postgres into the plain
arrays the ML core takes (no ORM beyond), recent model versions, and which may be activated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db.models import F

from catalog.models import ArtistTag, Track, TrackTag
from feedback.models import Interaction
from mltasks.ml.data.seq_datasets import SequenceEvents
from mltasks.models import ModelVersion
from playlists.models import PlaylistEntry
from tunedin.db import copy_out_arrays

# How much each kind of event counts as a positive when training user recommendations.
# Skips and dislikes are not positives (weight <= 0 keeps them out of the positive matrix).
EVENT_WEIGHTS = {
    Interaction.Kind.PLAY: 1.0,
    Interaction.Kind.LIKE: 3.0,
    Interaction.Kind.SKIP: -1.0,
    Interaction.Kind.DISLIKE: -3.0,
}


@dataclass
class InteractionLog:
    user_ids: np.ndarray  # user primary keys, one per event
    track_ids: np.ndarray  # track primary keys
    weights: np.ndarray  # EVENT_WEIGHTS of each event's kind
    timestamps: np.ndarray  # seconds since the epoch
    catalog_track_ids: np.ndarray  # every track in the catalog (full ranking)


@dataclass
class TrackTags:
    track_ids: np.ndarray
    tag_ids: np.ndarray
    weights: np.ndarray


def interaction_log_for_training() -> InteractionLog:
    """Every interaction, oldest first, read with one binary COPY into numpy arrays."""
    kinds = list(EVENT_WEIGHTS)
    kind_codes = " ".join(f"WHEN %s THEN {code}" for code in range(len(kinds)))
    arrays = copy_out_arrays(
        query=f"""
            SELECT user_id::int8, track_id::int8,
                   (CASE kind {kind_codes} END)::int2 AS kind,
                   extract(epoch FROM occurred_at)::float8 AS occurred
            FROM {Interaction._meta.db_table}
            ORDER BY occurred_at, id
        """,
        columns=[("user_id", "int8"), ("track_id", "int8"), ("kind", "int2"),
                 ("occurred", "float8")],
        params=[str(kind) for kind in kinds],
    )  # fmt: skip
    weights = np.array([EVENT_WEIGHTS[kind] for kind in kinds], dtype=np.float64)
    return InteractionLog(
        user_ids=arrays["user_id"],
        track_ids=arrays["track_id"],
        weights=weights[arrays["kind"]],
        timestamps=arrays["occurred"],
        catalog_track_ids=np.array(
            Track.objects.order_by("pk").values_list("pk", flat=True), dtype=np.int64
        ),
    )


def track_tags_for_training() -> TrackTags:
    """Each track's own tags plus its artist's tags (at half weight), for content vectors."""
    own = list(TrackTag.objects.values_list("track_id", "tag_id", "weight"))
    inherited = list(
        ArtistTag.objects.annotate(track_id=F("artist__tracks__id"))
        .exclude(track_id=None)
        .values_list("track_id", "tag_id", "weight")
    )
    rows = own + [(t, tag, 0.5 * w) for t, tag, w in inherited]
    if not rows:
        return TrackTags(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    array = np.array(rows, dtype=np.float64)
    return TrackTags(array[:, 0].astype(np.int64), array[:, 1].astype(np.int64), array[:, 2])


def track_artists() -> dict[str, str]:
    return {str(t): str(a) for t, a in Track.objects.values_list("pk", "artist_id")}


def listening_sequences_for_training() -> SequenceEvents:
    """Plays of every user in time order (to be cut into sessions at SESSION_GAP_MIN), then
    every playlist as one more sequence (entries one second apart from its creation time)."""
    plays = Interaction.objects.filter(kind=Interaction.Kind.PLAY).order_by(
        "user_id", "occurred_at", "id"
    )
    sequence_ids, item_ids, timestamps = [], [], []
    for user_id, track_id, occurred_at in plays.values_list(
        "user_id", "track_id", "occurred_at"
    ).iterator(chunk_size=20_000):
        sequence_ids.append(f"u{user_id}")
        item_ids.append(str(track_id))
        timestamps.append(occurred_at.timestamp())
    entries = PlaylistEntry.objects.order_by("playlist_id", "position").values_list(
        "playlist_id", "track_id", "position", "playlist__created_at"
    )
    for playlist_id, track_id, position, created_at in entries.iterator(chunk_size=20_000):
        sequence_ids.append(f"p{playlist_id}")
        item_ids.append(str(track_id))
        timestamps.append(created_at.timestamp() + position)
    artist_of = track_artists()
    return SequenceEvents(
        sequence_ids=np.array(sequence_ids, dtype=str),
        item_ids=np.array(item_ids, dtype=str),
        timestamps=np.array(timestamps, dtype=np.float64),
        artist_ids=np.array([artist_of.get(i, "") for i in item_ids], dtype=str),
        has_time_of_day=True,
        needs_sessionization=True,
        name="demo",
    )


# Versions an admin may switch serving to: trained ones, including the previously active.
ACTIVATABLE = (ModelVersion.Status.READY, ModelVersion.Status.RETIRED)


@dataclass(frozen=True)
class ActivationCheck:
    allowed: bool
    is_rollback: bool  # activating a retired version brings back an earlier model
    refusal: str  # why not, when not allowed


def model_version_activation_check(*, version: ModelVersion) -> ActivationCheck:
    """Whether serving may switch to `version` (the switch is mltasks.services'
    model_version_activate): only trained versions, ready or retired, may be activated."""
    if version.status not in ACTIVATABLE:
        refusal = (
            f"Version #{version.pk} is {version.status}; only ready or retired versions "
            "can be activated."
        )
        return ActivationCheck(allowed=False, is_rollback=False, refusal=refusal)
    is_rollback = version.status == ModelVersion.Status.RETIRED
    return ActivationCheck(allowed=True, is_rollback=is_rollback, refusal="")


def model_version_active(*, kind: str) -> ModelVersion | None:
    """The version of `kind` that serves now, if any."""
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()


def model_versions_recent(*, kind: str, n: int) -> list[ModelVersion]:
    """The kind's `n` newest versions, newest first."""
    return list(ModelVersion.objects.filter(kind=kind).order_by("-created_at", "-id")[:n])
