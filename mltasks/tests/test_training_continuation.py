"""Continuation training end to end on a small demo world, and the API that serves it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Track
from mltasks.artifact_store import artifact_directory_of
from mltasks.models import ModelVersion, TrackVector
from mltasks.tests.conftest import trained_version
from playlists.models import Playlist


@pytest.fixture(scope="module")
def continuation_version(small_world, django_db_blocker, tmp_path_factory):
    yield from trained_version(
        kind="continuation", django_db_blocker=django_db_blocker, tmp_path_factory=tmp_path_factory
    )


@pytest.mark.django_db
def test_training_stores_an_active_version_with_metrics_vectors_and_faiss(continuation_version):
    version = ModelVersion.objects.get(pk=continuation_version.pk)
    assert version.status == ModelVersion.Status.ACTIVE
    models = version.metrics["models"]
    assert {"MostPop", "Markov", "SKNN", "SASRec", "GRU4Rec"} <= set(models)
    # The served pipeline is the best of them on the selection half of validation...
    selection = version.metrics["selection"]["scores"]
    assert version.metrics["served"] == max(selection, key=selection.get)
    assert version.algorithm == version.metrics["served"].lower()
    # ... and the neural model with the better validation metric gives the indexed vectors.
    assert version.metrics["vectors_model"] in ("SASRec", "GRU4Rec")
    for split in ("valid", "test"):
        assert 0 <= models["SASRec"][split]["Recall@20"] <= 1
    assert version.history and "loss" in version.history[0]
    directory = artifact_directory_of(version_id=version.pk, artifact_path=version.artifact_path)
    assert (directory / "pipeline" / "scorer.json").exists()
    assert (directory / "items.hnsw-ip.faiss").exists()
    assert (directory / "items.flat-ip.faiss").exists()
    n_items = version.params["split"]["n_items"]
    assert TrackVector.objects.filter(model_version=version).count() == n_items


@pytest.mark.django_db
def test_sasrec_beats_most_popular_on_the_demo_world(continuation_version):
    models = ModelVersion.objects.get(pk=continuation_version.pk).metrics["models"]
    assert models["SASRec"]["test"]["Recall@20"] > models["MostPop"]["test"]["Recall@20"]
    assert models["SASRec"]["valid"]["Recall@20"] > models["MostPop"]["valid"]["Recall@20"]


def _a_session(version) -> list[int]:
    playlist = Playlist.objects.order_by("pk").first()
    return list(playlist.entries.order_by("position").values_list("track_id", flat=True))[:8]


@pytest.fixture
def listener(api_client, django_user_model):
    user = django_user_model.objects.create_user("continuer", password="x-secret-1")
    api_client.force_authenticate(user)
    return user


@pytest.mark.django_db
def test_continue_never_returns_input_or_excluded_tracks(
    api_client, listener, continuation_version
):
    tracks = _a_session(continuation_version)
    first = api_client.post("/api/continue", {"tracks": tracks, "k": 20}, format="json").json()
    assert first["model_version"] == continuation_version.pk
    assert first["fallback"] is None and first["unknown_tracks"] == []
    returned = [i["track_id"] for i in first["items"]]
    assert len(returned) == 20 and len(set(returned)) == 20
    assert not set(returned) & set(tracks)
    excluded = returned[:5]
    again = api_client.post(
        "/api/continue", {"tracks": tracks, "k": 20, "exclude": excluded}, format="json"
    ).json()
    assert not {i["track_id"] for i in again["items"]} & set(excluded)


@pytest.mark.django_db
def test_continue_caps_tracks_per_artist(api_client, listener, continuation_version):
    tracks = _a_session(continuation_version)
    body = {"tracks": tracks, "k": 20, "max_per_artist": 1}
    items = api_client.post("/api/continue", body, format="json").json()["items"]
    artists = [i["artist"] for i in items]
    assert len(set(artists[:10])) == 10


@pytest.mark.django_db
def test_continue_reports_unknown_tracks_and_falls_back_when_none_is_known(
    api_client, listener, continuation_version
):
    tracks = _a_session(continuation_version)
    body = api_client.post("/api/continue", {"tracks": [*tracks, 99999999]}, format="json").json()
    assert body["unknown_tracks"] == [99999999] and body["fallback"] is None
    body = api_client.post("/api/continue", {"tracks": [99999999]}, format="json").json()
    assert body["fallback"] == "popularity" and body["unknown_tracks"] == [99999999]
    assert len(body["items"]) == 20


@pytest.mark.django_db
def test_ann_and_exact_continuations_agree(api_client, listener, continuation_version):
    tracks = _a_session(continuation_version)
    exact = api_client.post(
        "/api/continue", {"tracks": tracks, "k": 20, "max_per_artist": None}, format="json"
    ).json()["items"]
    ann = api_client.post(
        "/api/continue",
        {"tracks": tracks, "k": 20, "max_per_artist": None, "use_ann": True},
        format="json",
    ).json()["items"]
    overlap = {i["track_id"] for i in exact} & {i["track_id"] for i in ann}
    assert len(overlap) >= 18


@pytest.mark.django_db
def test_continuations_are_cached_per_context(api_client, listener, continuation_version):
    from django.core.cache import cache

    tracks = _a_session(continuation_version)
    body = {"tracks": tracks, "k": 5, "context": {"hour": 8, "dow": 0}}
    first = api_client.post("/api/continue", body, format="json").json()
    assert len(cache.keys(f"continuation:v{continuation_version.pk}:*:h8:d0:k5")) == 1
    # The repeat is the cached payload: no query (the catalog is not read again).
    with CaptureQueriesContext(connection) as queries:
        again = api_client.post("/api/continue", body, format="json").json()
    assert again["items"] == first["items"] and again["request_id"] != first["request_id"]
    assert not [q for q in queries if "catalog_track" in q["sql"]]
    api_client.post("/api/continue", {**body, "context": {"hour": 9, "dow": 0}}, format="json")
    assert len(cache.keys(f"continuation:v{continuation_version.pk}:*")) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tracks": []}, "tracks"),
        ({"tracks": list(range(1, 502))}, "tracks"),
        ({"tracks": [1], "k": 0}, "k"),
        ({"tracks": [1], "k": 201}, "k"),
        ({"tracks": [1], "context": {"hour": 24, "dow": 1}}, "hour"),
        ({"tracks": [1], "context": {"hour": 3, "dow": 7}}, "dow"),
        ({"tracks": ["one"]}, "tracks"),
        ({"tracks": [1], "max_per_artist": 0}, "max_per_artist"),
    ],
)
def test_continue_validates_its_input(api_client, listener, body, field):
    response = api_client.post("/api/continue", body, format="json")
    assert response.status_code == 400
    assert field in response.content.decode()


@pytest.mark.django_db
def test_playlist_continue_respects_ownership(
    api_client, listener, django_user_model, continuation_version
):
    owner = django_user_model.objects.create_user("owner-1", password="x-secret-1")
    track_ids = list(Track.objects.values_list("pk", flat=True)[:5])
    private = Playlist.objects.create(owner=owner, name="Mine", is_public=False)
    public = Playlist.objects.create(owner=owner, name="Shared", is_public=True)
    for playlist in (private, public):
        for position, track_id in enumerate(track_ids):
            playlist.entries.create(track_id=track_id, position=position)
    assert api_client.post(f"/api/playlists/{private.pk}/continue?k=5").status_code == 404
    response = api_client.post(f"/api/playlists/{public.pk}/continue?k=5")
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 5 and not {i["track_id"] for i in items} & set(track_ids)
    api_client.force_authenticate(owner)
    assert api_client.post(f"/api/playlists/{private.pk}/continue?k=5").status_code == 200
    assert api_client.post(f"/api/playlists/{private.pk}/continue?k=500").status_code == 400
