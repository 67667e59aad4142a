"""The OpenAPI schema documents every 4xx an operation answers and the real input constraints,
and the API accepts only what the schema says (no silent coercion)."""

import pytest

from catalog.tests.factories import TrackFactory, UserFactory
from playlists.tests.factories import PlaylistFactory
from tunedin.schema import ID_MAX

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api_client) -> dict:
    response = api_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_its_4xx_answers_with_their_bodies(schema):
    for label, operation in _operations(schema):
        responses = operation["responses"]
        parameters = operation.get("parameters", [])
        expected = {"401", "429"}
        if operation.get("requestBody") or any(p["in"] == "query" for p in parameters):
            expected.add("400")
        if any(p["in"] == "path" for p in parameters):
            expected.add("404")
        assert expected <= set(responses), label
        for code in expected:
            assert "application/json" in responses[code]["content"], (label, code)
        assert "Retry-After" in responses["429"]["headers"], label
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert error["required"] == ["detail"]
    assert "ValidationError" in schema["components"]["schemas"]


def test_playlist_changes_document_the_403_for_someone_elses_public_playlist(schema):
    for path in ["update/", "delete/", "tracks/add/", "tracks/remove/", "tracks/move/"]:
        responses = schema["paths"][f"/api/playlists/{{playlist_id}}/{path}"]["post"]["responses"]
        assert "public playlist" in responses["403"]["description"], path


def _states(schema: dict, **constraints) -> bool:
    return {key: schema.get(key) for key in constraints} == constraints


def test_the_schema_states_the_real_input_constraints(schema):
    paths, components = schema["paths"], schema["components"]["schemas"]
    rec = {p["name"]: p["schema"] for p in paths["/api/rec/users/{user_id}"]["get"]["parameters"]}
    assert _states(rec["n"], minimum=1, maximum=200)
    assert set(rec["backend"]["enum"]) == {"auto", "exact", "faiss", "faiss-hnsw", "pgvector"}
    assert _states(rec["user_id"], type="integer", format="int64", minimum=1, maximum=ID_MAX)
    continuation = components["ContinueInput"]
    assert continuation["required"] == ["tracks"]
    tracks = continuation["properties"]["tracks"]
    assert _states(tracks, minItems=1, maxItems=500)
    assert _states(tracks["items"], type="integer", format="int64", minimum=1)
    assert _states(continuation["properties"]["k"], minimum=1, maximum=200)
    assert _states(components["Context"]["properties"]["hour"], minimum=0, maximum=23)
    create = components["PlaylistCreateInput"]
    assert create["required"] == ["name"]
    assert _states(create["properties"]["name"], minLength=1, maxLength=200)
    track_ids = components["PlaylistTracksAddInput"]["properties"]["track_ids"]
    assert _states(track_ids, minItems=1, maxItems=500)
    # The continuation routes and the playlist changes take JSON only.
    assert set(paths["/api/continue"]["post"]["requestBody"]["content"]) == {"application/json"}
    add = paths["/api/playlists/{playlist_id}/tracks/add/"]["post"]
    assert set(add["requestBody"]["content"]) == {"application/json"}


@pytest.mark.parametrize(
    "query",
    ["n=12.0", "n=%2012", "n=", "n=%D9%A1", "offset=", "backend=", "n=true"],
)
def test_query_numbers_and_choices_are_taken_as_written_or_refused(api_client, query):
    user = UserFactory()
    api_client.force_authenticate(user)

    response = api_client.get(f"/api/rec/users/{user.pk}?{query}")

    assert response.status_code == 400, query
    assert query.split("=")[0] in response.json()


@pytest.mark.parametrize("query", ["use_ann=1", "use_ann=yes", "use_ann=True", "use_ann="])
def test_query_booleans_are_true_or_false(api_client, query):
    api_client.force_authenticate(UserFactory())

    response = api_client.get(f"/api/tracks/{TrackFactory().pk}/similar?{query}")

    assert response.status_code == 400
    assert "use_ann" in response.json()


def test_query_numbers_and_booleans_as_the_schema_writes_them_are_accepted(api_client):
    user = UserFactory()
    api_client.force_authenticate(user)

    assert api_client.get(f"/api/rec/users/{user.pk}?n=12&offset=0").status_code == 200
    assert api_client.get(f"/api/tracks/{TrackFactory().pk}/similar?use_ann=false").status_code == (
        200
    )
    assert api_client.get("/api/playlists/?limit=5&offset=0").status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"tracks": ["{track}"]}, "tracks"),  # a numeric string is not an id
        ({"tracks": [True]}, "tracks"),
        ({"tracks": [1.5]}, "tracks"),
        ({"tracks": [ID_MAX + 1]}, "tracks"),
        ({"tracks": ["{track_id}"], "k": "5"}, "k"),
        ({"tracks": ["{track_id}"], "use_ann": "true"}, "use_ann"),
        ({"tracks": ["{track_id}"], "use_ann": 1}, "use_ann"),
        ({"tracks": ["{track_id}"], "context": {"hour": "3", "dow": 0}}, "context"),
    ],
)
def test_json_bodies_are_taken_as_typed(api_client, body, field):
    track = TrackFactory()
    api_client.force_authenticate(UserFactory())
    body = {
        key: [track.pk if item == "{track_id}" else str(track.pk) if item == "{track}" else item
              for item in value] if key == "tracks" else value
        for key, value in body.items()
    }  # fmt: skip

    response = api_client.post("/api/continue", body, format="json")

    assert response.status_code == 400, body
    assert field in response.json()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": 12}, "name"),
        ({"name": "x" * 200 + " "}, "name"),  # too long as sent, even if stripping would fit
        ({"name": "Mix", "is_public": "yes"}, "is_public"),
        ({"name": "Mix", "description": 7}, "description"),
    ],
)
def test_playlist_fields_are_taken_as_typed(api_client, body, field):
    api_client.force_authenticate(UserFactory())

    response = api_client.post("/api/playlists/create/", body, format="json")

    assert response.status_code == 400, body
    assert field in response.json()


def test_playlist_positions_and_track_ids_are_taken_as_typed(api_client):
    owner = UserFactory()
    playlist = PlaylistFactory(owner=owner)
    track = TrackFactory()
    api_client.force_authenticate(owner)
    url = f"/api/playlists/{playlist.pk}/tracks/add/"

    as_text = api_client.post(url, {"track_ids": [str(track.pk)]}, format="json")
    position_as_text = api_client.post(
        url, {"track_ids": [track.pk], "position": "0"}, format="json"
    )
    as_numbers = api_client.post(url, {"track_ids": [track.pk], "position": 0}, format="json")

    assert (as_text.status_code, list(as_text.json())) == (400, ["track_ids"])
    assert (position_as_text.status_code, list(position_as_text.json())) == (400, ["position"])
    assert as_numbers.status_code == 200


def test_a_playlist_continuation_body_that_is_not_an_object_is_a_400(api_client):
    owner = UserFactory()
    playlist = PlaylistFactory(owner=owner)
    api_client.force_authenticate(owner)

    response = api_client.post(f"/api/playlists/{playlist.pk}/continue", [1, 2], format="json")

    assert response.status_code == 400
