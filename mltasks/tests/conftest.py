"""A small demo world, seeded once per module and cleaned up after it."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from catalog.models import Artist, Tag, Track
from mltasks.models import ModelVersion

SMALL_WORLD = ["--users", "150", "--artists", "30", "--tracks", "600", "--events", "24000",
               "--playlists", "120", "--seed", "11"]  # fmt: skip
QUICK_TRAINING = {"TRAINING_BUDGET_SECONDS": 8.0, "TRAINING_MAX_EPOCHS": 40}


def world_delete() -> None:
    ModelVersion.objects.all().delete()
    Track.objects.all().delete()
    Artist.objects.all().delete()
    Tag.objects.all().delete()
    get_user_model().objects.all().delete()


@pytest.fixture(scope="module")
def small_world(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("seed_demo", *SMALL_WORLD)
        yield
        world_delete()


def trained_version(*, kind: str, django_db_blocker, tmp_path_factory):
    """Train `kind` quickly on the module's world and serve it while the module's tests run."""
    from django.test import override_settings

    from mltasks.services import model_version_train

    artifacts = tmp_path_factory.mktemp("artifacts")
    with django_db_blocker.unblock(), override_settings(ARTIFACTS_DIR=artifacts, **QUICK_TRAINING):
        version = model_version_train(kind=kind)
    with override_settings(ARTIFACTS_DIR=artifacts):
        yield version
