"""Fuzz the HTTP API from its own OpenAPI schema (/api/schema/) with schemathesis.

A live server (pytest-django's `live_server`, the real URLconf and middlewares) answers valid
and invalid requests generated for every operation, sent with a real user's token over a small
seeded world with an active recommender, so that path and body ids often exist. Each response
must not be a 5xx, must have the documented content type and, for documented status codes,
a body that matches the schema.

The suite sends the same requests every run (a fixed seed, 30 examples per operation, about
15 s). TUNEDIN_FUZZ_EXAMPLES=200 explores further with a new seed each time; Hypothesis prints
the failing example.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.management import call_command
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from catalog.models import Track
from mltasks.models import ModelVersion
from mltasks.services import model_version_activate, serving_vectors_publish
from playlists.models import Playlist
from playlists.tests.factories import PlaylistFactory
from recommendations.serving import active_states

EXPLORING = "TUNEDIN_FUZZ_EXAMPLES" in os.environ
EXAMPLES_PER_OPERATION = int(os.environ.get("TUNEDIN_FUZZ_EXAMPLES", "30"))


# Status codes are not all documented (drf-spectacular lists the success ones), so
# status_code_conformance would only repeat that. negative_data_rejection is left out too: DRF
# coerces input on purpose ("12" and 12.0 to 12, 0.96 to "0.96", "yes" to true, strips strings
# before max_length, reads `?n=` as absent), which that check reports as accepted invalid data.
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
TINY_WORLD = ["--users", "8", "--artists", "16", "--tracks", "60", "--events", "600",
              "--playlists", "6", "--seed", "7"]  # fmt: skip


@dataclass(frozen=True)
class FuzzWorld:
    token: str
    ids: dict[str, list[int]]  # path/body parameter name -> ids that exist


def _planted_recommender(*, directory: Path) -> None:
    """An active recommender from random vectors, so serving runs its model paths."""
    rng = np.random.default_rng(0)
    track_ids = np.array(sorted(Track.objects.values_list("pk", flat=True)))
    user_ids = np.array(sorted(get_user_model().objects.values_list("pk", flat=True)))
    item_vectors = rng.standard_normal((len(track_ids), 16)).astype(np.float32)
    user_vectors = rng.standard_normal((len(user_ids), 16)).astype(np.float32)
    version = ModelVersion.objects.create(
        kind=ModelVersion.Kind.RECOMMENDER,
        algorithm="planted",
        status=ModelVersion.Status.READY,
        metrics={"served": "planted", "models": {}},
    )
    artifacts = directory / "recommender" / str(version.pk)
    artifacts.mkdir(parents=True)
    serving_vectors_publish(
        version=version, directory=artifacts, track_ids=track_ids, item_vectors=item_vectors,
        user_ids=user_ids, user_vectors=user_vectors,
    )  # fmt: skip
    version.artifact_path = str(artifacts)
    version.save()
    model_version_activate(version=version)


@pytest.fixture
def fuzz_world(transactional_db, settings, tmp_path) -> Iterator[FuzzWorld]:
    settings.ARTIFACTS_DIR = tmp_path
    call_command("seed_demo", *TINY_WORLD, stdout=io.StringIO())
    listener = get_user_model().objects.get(username="demo")
    track_ids = list(Track.objects.order_by("pk").values_list("pk", flat=True))
    own = PlaylistFactory(owner=listener, name="fuzzed")
    own.entries.create(track_id=track_ids[0], position=0)
    own.entries.create(track_id=track_ids[1], position=1)
    spare = PlaylistFactory(owner=listener, name="to delete")
    _planted_recommender(directory=tmp_path)
    active_states.reset()
    playlist_ids = list(Playlist.objects.order_by("pk").values_list("pk", flat=True))
    user_ids = list(get_user_model().objects.order_by("pk").values_list("pk", flat=True))
    yield FuzzWorld(
        token=Token.objects.create(user=listener).key,
        ids={
            "user_id": [listener.pk, *user_ids[:3]],
            "track_id": track_ids[:10],
            "playlist_id": [own.pk, *playlist_ids[:4]],
            # the delete operation gets its own, or every operation after it would find none
            "deleted_playlist_id": [spare.pk, *playlist_ids[:4]],
        },
    )
    active_states.reset()


@pytest.fixture
def api_schema(live_server, fuzz_world):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    ids = {**fuzz_world.ids}
    ids["tracks"] = ids["track_ids"] = ids["track_id"]

    def existing_or(generated, key):
        """Mostly an id that exists instead of the generated one, which rarely does.
        Only valid ids are replaced: a negative case keeps the value that makes it invalid."""
        if key not in ids:
            return st.just(generated)
        if isinstance(generated, list):
            return st.tuples(*(existing_or(item, key) for item in generated)).map(list)
        if type(generated) is not int or generated < 1:
            return st.just(generated)
        # first: Hypothesis leans to the first branch and element, the user's own ids
        return st.one_of(st.sampled_from(ids[key]), st.just(generated))

    def with_existing_ids(context, value):
        if not isinstance(value, dict):
            return st.just(value)
        deleting = context.operation is not None and context.operation.path.endswith("/delete/")
        return st.fixed_dictionaries(
            {key: existing_or(item, f"deleted_{key}" if deleting else key)
             for key, item in value.items()}
        )  # fmt: skip

    schema.hook("flatmap_path_parameters")(with_existing_ids)
    schema.hook("flatmap_body")(with_existing_ids)
    return schema


def test_api_answers_generated_requests_without_server_errors(api_schema, fuzz_world):
    headers = {"Authorization": f"Token {fuzz_world.token}"}
    failures: dict[str, str] = {}
    n_operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        n_operations += 1
        cases = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,  # no .hypothesis/ directory in the checkout
            derandomize=not EXPLORING,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # a failure is reported, not shrunk
        )
        def operation_answers_well(case):
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

        try:
            operation_answers_well()
        except (Exception, BaseExceptionGroup) as failure:  # report every operation's failure
            failures[operation.label] = str(failure)
    assert n_operations >= 10, "the schema lost its operations"
    assert not failures, "\n\n".join(f"== {label}\n{report}" for label, report in failures.items())
