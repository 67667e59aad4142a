"""Reads for the model dashboard: which versions may be activated, and recent versions."""

import pytest

from mltasks.models import ModelVersion
from mltasks.selectors import model_version_activation_check, model_versions_recent

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
