"""Reads for training and the model dashboard: the interaction log, which versions may be
activated, and recent versions."""

from datetime import UTC, datetime

import numpy as np
import pytest

from catalog.tests.factories import TrackFactory, UserFactory
from feedback.tests.factories import InteractionFactory
from mltasks.models import ModelVersion
from mltasks.selectors import (
    EVENT_WEIGHTS,
    interaction_log_for_training,
    model_version_activation_check,
    model_versions_recent,
)

pytestmark = pytest.mark.django_db
Status = ModelVersion.Status


def version(status: str) -> ModelVersion:
    return ModelVersion.objects.create(
        kind=ModelVersion.Kind.RECOMMENDER, algorithm="lightgcn", status=status
    )


@pytest.mark.parametrize(
    ("status", "allowed", "is_rollback"),
    [
        (Status.READY, True, False),
        (Status.RETIRED, True, True),
        (Status.ACTIVE, False, False),
        (Status.FAILED, False, False),
        (Status.TRAINING, False, False),
    ],
)
def test_only_ready_or_retired_versions_may_be_activated(status, allowed, is_rollback):
    check = model_version_activation_check(version=version(status))

    assert (check.allowed, check.is_rollback) == (allowed, is_rollback)
    assert ("can be activated" in check.refusal) is not allowed


def test_recent_versions_are_newest_first_and_of_one_kind():
    older, newer = version(Status.RETIRED), version(Status.ACTIVE)
    ModelVersion.objects.create(kind=ModelVersion.Kind.CONTINUATION, algorithm="sasrec")

    assert model_versions_recent(kind=ModelVersion.Kind.RECOMMENDER, n=10) == [newer, older]
    assert model_versions_recent(kind=ModelVersion.Kind.RECOMMENDER, n=1) == [newer]


@pytest.mark.django_db
def test_the_training_log_is_read_by_binary_copy_exactly_as_stored():
    tracks = TrackFactory.create_batch(3)
    users = UserFactory.create_batch(2)
    moments = [datetime(2024, 3, day, 12, 30, 15, 250000, tzinfo=UTC) for day in (5, 1, 3, 2)]
    rows = [(users[0], tracks[2], "like"), (users[1], tracks[0], "play"),
            (users[0], tracks[1], "skip"), (users[1], tracks[2], "dislike")]  # fmt: skip
    for (user, track, kind), moment in zip(rows, moments, strict=True):
        InteractionFactory(user=user, track=track, kind=kind, occurred_at=moment)

    log = interaction_log_for_training()

    expected = sorted(zip(moments, rows, strict=True), key=lambda pair: pair[0])  # oldest first
    assert log.user_ids.tolist() == [row[0].pk for _, row in expected]
    assert log.track_ids.tolist() == [row[1].pk for _, row in expected]
    assert log.weights.tolist() == [EVENT_WEIGHTS[row[2]] for _, row in expected]
    assert log.timestamps.tolist() == [moment.timestamp() for moment, _ in expected]
    assert log.user_ids.dtype == np.int64 and log.timestamps.dtype == np.float64
    assert sorted(log.catalog_track_ids.tolist()) == sorted(t.pk for t in tracks)


@pytest.mark.django_db
def test_an_empty_log_reads_as_empty_arrays():
    log = interaction_log_for_training()
    assert log.user_ids.shape == (0,) and log.weights.shape == (0,)
