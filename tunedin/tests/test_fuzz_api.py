"""Fuzz the HTTP API from its own OpenAPI schema (/api/schema/) with schemathesis.

A live server (pytest-django's `live_server`, the real URLconf and middlewares) answers valid
and invalid requests generated for every operation, sent with a real user's token over a small
seeded world with an active recommender and continuation model, so that path and body ids
often exist. Each response must not be a 5xx, must have a documented status code and content
type and a body that matches the schema, and a request the schema calls invalid must be refused
with a 4xx (the API's fields accept exactly what the schema says: tunedin/schema.py).

The suite sends the same requests every run (a fixed seed, 30 examples per operation, about
30 s). TUNEDIN_FUZZ_EXAMPLES=200 explores further with a new seed each time; Hypothesis prints
the failing example.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

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
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from catalog.models import Track
from playlists.models import Playlist
from playlists.tests.factories import PlaylistFactory
from recommendations.serving import active_states
from recommendations.tests.planted import (
    planted_continuation,
    planted_recommender,
    random_vectors,
)
from tunedin.schema import ID_MAX

EXPLORING = "TUNEDIN_FUZZ_EXAMPLES" in os.environ
# Revoking is covered by accounts/tests/test_apis.py.
TOKEN_REVOKE_PATH = "/api/auth/token/revoke"
EXAMPLES_PER_OPERATION = int(os.environ.get("TUNEDIN_FUZZ_EXAMPLES", "30"))


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]  # fmt: skip
TINY_WORLD = ["--users", "8", "--artists", "16", "--tracks", "60", "--events", "600",
              "--playlists", "6", "--seed", "7"]  # fmt: skip


@dataclass(frozen=True)
class FuzzWorld:
    token: str
    ids: dict[str, list[int]]  # path/body parameter name -> ids that exist


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
    user_ids = list(get_user_model().objects.order_by("pk").values_list("pk", flat=True))
    vectors = random_vectors(track_ids=track_ids, user_ids=user_ids)
    planted_recommender(directory=tmp_path, vectors=vectors)
    planted_continuation(directory=tmp_path, track_ids=track_ids)
    active_states.reset()
    playlist_ids = list(Playlist.objects.order_by("pk").values_list("pk", flat=True))
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
        if type(generated) is not int or not 1 <= generated <= ID_MAX:
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
        if operation.path == TOKEN_REVOKE_PATH:
            continue  # it would revoke the token every later operation is sent with
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
