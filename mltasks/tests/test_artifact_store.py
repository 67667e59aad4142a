"""Model artifacts through the `artifacts` storage: uploaded to a real S3 server (moto's server
mode, started by the dev/test bootstrap) through django-storages, read back through the local
cache, whole or not at all."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.test import override_settings

from conftest import ROOT
from devstack import services
from mltasks.artifact_store import (
    ArtifactStoreError,
    artifact_directory_local,
    artifact_directory_of,
    artifact_directory_upload,
)


@pytest.fixture(scope="module")
def s3_url():
    """The dev/test bootstrap's S3 server (reused when one runs in this var dir)."""
    store = services.start_s3()
    yield store.url
    if store.started_here:
        services.stop_s3()


def _settings_module(monkeypatch, environment: dict[str, str]):
    """tunedin/settings.py executed afresh with `environment` added to the process's."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "settings_probe", Path(ROOT) / "tunedin" / "settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def s3_artifacts(s3_url, settings, monkeypatch, tmp_path):
    """The `artifacts` storage on the S3 server, as the settings build it from the environment
    devstack gives processes (`python -m devstack run --s3`); an empty cache; a boto3 client."""
    configured = _settings_module(monkeypatch, services.s3_environment(s3_url))
    assert configured.STORAGES["artifacts"]["BACKEND"] == "storages.backends.s3.S3Storage"
    settings.STORAGES = {**settings.STORAGES, "artifacts": configured.STORAGES["artifacts"]}
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache"
    return services.s3_client(s3_url)


def _write_tree(directory: Path, *, files: int = 3, size: int = 20_000) -> dict[str, bytes]:
    """A small artifact directory: binary files, a nested one, an empty one."""
    contents = {f"part-{i:02d}.bin": os.urandom(size) for i in range(files)}
    contents["faiss/hnsw-ip.index"] = os.urandom(size // 3)
    contents["model_version.json"] = b'{"id": 7}'
    contents["empty.txt"] = b""
    for relative, data in contents.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_bytes(data)
    return contents


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


def _keys(client, prefix: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=services.S3_BUCKET, Prefix=f"{prefix}/")
    return {entry["Key"] for entry in listed.get("Contents", [])}


def _partial_downloads(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if ".partial-" in path.name]


def test_a_directory_uploaded_to_s3_comes_back_whole_into_an_empty_cache(s3_artifacts, tmp_path):
    trained = tmp_path / "trained"
    contents = _write_tree(trained)

    prefix = artifact_directory_upload(version_id=7, directory=trained)

    assert re.fullmatch(r"model-versions/7/[0-9a-f]{32}", prefix)
    assert _keys(s3_artifacts, prefix) == {f"{prefix}/files/{name}" for name in contents} | {
        f"{prefix}/manifest.json"
    }  # in the bucket, through the S3 API
    local = artifact_directory_local(version_id=7, prefix=prefix)
    assert local == tmp_path / "cache" / prefix
    assert _tree(local) == contents


def test_a_second_call_reads_the_local_copy_without_asking_the_store(s3_artifacts, tmp_path):
    trained = tmp_path / "trained"
    contents = _write_tree(trained)
    prefix = artifact_directory_upload(version_id=8, directory=trained)
    first = artifact_directory_local(version_id=8, prefix=prefix)

    for key in _keys(s3_artifacts, prefix):  # the store loses them: only the cache has them
        s3_artifacts.delete_object(Bucket=services.S3_BUCKET, Key=key)
    again = artifact_directory_local(version_id=8, prefix=prefix)

    assert again == first and _tree(again) == contents
    with (
        override_settings(ARTIFACT_CACHE_DIR=tmp_path / "other-host"),  # another host's cache
        pytest.raises(ArtifactStoreError, match="never finished"),
    ):
        artifact_directory_local(version_id=8, prefix=prefix)


def test_an_unfinished_upload_is_never_read(s3_artifacts, tmp_path):
    trained = tmp_path / "trained"
    _write_tree(trained)
    prefix = artifact_directory_upload(version_id=9, directory=trained)
    s3_artifacts.delete_object(Bucket=services.S3_BUCKET, Key=f"{prefix}/manifest.json")

    with pytest.raises(ArtifactStoreError, match="never finished"):
        artifact_directory_local(version_id=9, prefix=prefix)

    assert not (tmp_path / "cache" / prefix).exists()


def test_a_damaged_or_missing_file_leaves_nothing_in_the_cache_and_a_repaired_one_loads(
    s3_artifacts, tmp_path
):
    trained = tmp_path / "trained"
    contents = _write_tree(trained, files=6)
    prefix = artifact_directory_upload(version_id=10, directory=trained)
    damaged = f"{prefix}/files/part-04.bin"
    s3_artifacts.put_object(Bucket=services.S3_BUCKET, Key=damaged, Body=b"not the same bytes")

    with pytest.raises(ArtifactStoreError, match="does not match the manifest"):
        artifact_directory_local(version_id=10, prefix=prefix)
    assert not (tmp_path / "cache" / prefix).exists()
    assert not _partial_downloads(tmp_path / "cache")

    s3_artifacts.delete_object(Bucket=services.S3_BUCKET, Key=damaged)
    with pytest.raises(ArtifactStoreError, match="could not be downloaded"):
        artifact_directory_local(version_id=10, prefix=prefix)
    assert not (tmp_path / "cache" / prefix).exists()

    s3_artifacts.put_object(Bucket=services.S3_BUCKET, Key=damaged, Body=contents["part-04.bin"])
    assert _tree(artifact_directory_local(version_id=10, prefix=prefix)) == contents
    assert not _partial_downloads(tmp_path / "cache")


def test_a_reader_sees_the_cached_directory_whole_or_not_at_all(s3_artifacts, tmp_path):
    """A second process looking at the cache while a download runs never sees half of it."""
    trained = tmp_path / "trained"
    contents = _write_tree(trained, files=40, size=50_000)
    prefix = artifact_directory_upload(version_id=11, directory=trained)
    target = tmp_path / "cache" / prefix
    seen: list[str] = []
    done = threading.Event()

    def look() -> str:
        if not target.exists():
            return "absent"
        found = {
            path.relative_to(target).as_posix(): path.stat().st_size
            for path in target.rglob("*")
            if path.is_file()
        }
        whole = found == {name: len(data) for name, data in contents.items()}
        return "whole" if whole else f"partial: {len(found)} files"

    def watch():
        while True:
            finished = done.is_set()
            seen.append(look())
            if finished:  # one last look after the download returned
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        artifact_directory_local(version_id=11, prefix=prefix)
    finally:
        done.set()
        watcher.join()

    assert seen.count("absent") > 10  # it was watching while the files came in
    assert set(seen) <= {"absent", "whole"}, sorted(set(seen))
    assert seen[-1] == "whole"


def test_a_download_cut_short_leaves_only_a_hidden_partial_directory_the_next_one_removes(
    s3_artifacts, tmp_path
):
    trained = tmp_path / "trained"
    contents = _write_tree(trained)
    prefix = artifact_directory_upload(version_id=18, directory=trained)
    upload = prefix.rsplit("/", 1)[1]
    killed = tmp_path / "cache" / "model-versions" / "18" / f".{upload}.partial-killed"
    killed.mkdir(parents=True)  # what a process killed in the middle of a download leaves
    (killed / "part-00.bin").write_bytes(b"half of it")

    local = artifact_directory_local(version_id=18, prefix=prefix)

    assert _tree(local) == contents
    assert not killed.exists()
    assert not _partial_downloads(tmp_path / "cache")


def test_processes_of_one_host_asking_at_once_share_one_download(s3_artifacts, tmp_path):
    trained = tmp_path / "trained"
    contents = _write_tree(trained, files=10)
    prefix = artifact_directory_upload(version_id=12, directory=trained)

    with ThreadPoolExecutor(max_workers=4) as pool:
        directories = list(
            pool.map(lambda _: artifact_directory_local(version_id=12, prefix=prefix), range(4))
        )

    assert set(directories) == {tmp_path / "cache" / prefix}
    assert _tree(directories[0]) == contents
    assert not _partial_downloads(tmp_path / "cache")


def test_a_version_uploaded_by_another_process_configured_by_its_environment(
    s3_url, s3_artifacts, tmp_path
):
    trained = tmp_path / "trained"
    contents = _write_tree(trained)
    uploaded = subprocess.run(
        [sys.executable, "-c",
         "import sys, django; from pathlib import Path; django.setup(); "
         "from mltasks.artifact_store import artifact_directory_upload as upload; "
         "print(upload(version_id=13, directory=Path(sys.argv[1])))", str(trained)],
        cwd=ROOT, env={**os.environ, **services.s3_environment(s3_url),
                       "DJANGO_SETTINGS_MODULE": "tunedin.settings"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stderr
    prefix = uploaded.stdout.strip().splitlines()[-1]

    assert _tree(artifact_directory_local(version_id=13, prefix=prefix)) == contents


def test_uploads_of_the_same_version_id_never_share_a_cached_copy(s3_artifacts, tmp_path):
    """Version ids start again at 1 in every database; two uploads of "version 14" differ."""
    first_tree, second_tree = tmp_path / "a", tmp_path / "b"
    first_contents, second_contents = _write_tree(first_tree), _write_tree(second_tree)
    first = artifact_directory_upload(version_id=14, directory=first_tree)
    second = artifact_directory_upload(version_id=14, directory=second_tree)

    assert first != second
    assert _tree(artifact_directory_local(version_id=14, prefix=first)) == first_contents
    assert _tree(artifact_directory_local(version_id=14, prefix=second)) == second_contents


def test_a_manifest_naming_a_path_outside_the_directory_is_refused(s3_artifacts, tmp_path):
    trained = tmp_path / "trained"
    _write_tree(trained)
    prefix = artifact_directory_upload(version_id=15, directory=trained)
    s3_artifacts.put_object(
        Bucket=services.S3_BUCKET,
        Key=f"{prefix}/manifest.json",
        Body=b'{"files": [{"path": "../../../escaped", "size": 1, "sha256": "00"}]}',
    )

    with pytest.raises(ArtifactStoreError, match="unsafe path"):
        artifact_directory_local(version_id=15, prefix=prefix)
    assert not list(tmp_path.rglob("escaped"))


def test_the_embedded_default_is_the_local_filesystem_read_in_place(settings, tmp_path):
    assert settings.STORAGES["artifacts"]["BACKEND"] == (
        "django.core.files.storage.FileSystemStorage"
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "store")},
        },
    }
    settings.ARTIFACT_CACHE_DIR = tmp_path / "cache"
    trained = tmp_path / "trained"
    contents = _write_tree(trained)

    prefix = artifact_directory_upload(version_id=16, directory=trained)
    local = artifact_directory_local(version_id=16, prefix=prefix)

    assert local == tmp_path / "store" / prefix / "files"  # no copy
    assert _tree(local) == contents
    assert not (tmp_path / "cache").exists()
    Path(storages["artifacts"].path(f"{prefix}/manifest.json")).unlink()
    with pytest.raises(ArtifactStoreError, match="never finished"):
        artifact_directory_local(version_id=16, prefix=prefix)


@pytest.mark.parametrize(
    ("version_id", "prefix", "message"),
    [
        (0, "model-versions/0/" + "a" * 32, "positive integer"),
        (True, "model-versions/1/" + "a" * 32, "positive integer"),
        ("3", "model-versions/3/" + "a" * 32, "positive integer"),
        (3, "model-versions/4/" + "a" * 32, "another version"),
        (3, "model-versions/3/../../etc", "not an artifact prefix"),
        (3, "model-versions/3/" + "a" * 32 + "\n", "not an artifact prefix"),
        (3, "", "not an artifact prefix"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(version_id, prefix, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        artifact_directory_local(version_id=version_id, prefix=prefix)
    with pytest.raises(ValueError, match=message if "positive" in message else "directory"):
        artifact_directory_upload(version_id=version_id, directory=tmp_path / "missing")


def test_a_version_s_artifact_path_is_a_store_prefix_or_a_local_directory(s3_artifacts, tmp_path):
    trained = tmp_path / "trained"
    contents = _write_tree(trained)
    prefix = artifact_directory_upload(version_id=17, directory=trained)

    from_store = artifact_directory_of(version_id=17, artifact_path=prefix)
    local = artifact_directory_of(version_id=17, artifact_path=str(trained))

    assert from_store == tmp_path / "cache" / prefix and _tree(from_store) == contents
    assert local == trained  # a version written before the store: read where it is
    for nothing in ("", "relative/path"):
        with pytest.raises(ArtifactStoreError, match="no artifacts"):
            artifact_directory_of(version_id=17, artifact_path=nothing)


def test_an_empty_directory_is_not_uploaded(tmp_path):
    with pytest.raises(ValueError, match="holds no files"):
        artifact_directory_upload(version_id=3, directory=tmp_path)


@pytest.mark.parametrize("url", ["ftp://host/x", "s3://", "file://relative/x", "artifacts"])
def test_an_artifact_storage_url_the_settings_cannot_use_is_refused(monkeypatch, url):
    with pytest.raises(ImproperlyConfigured, match="ARTIFACT_STORAGE_URL"):
        _settings_module(monkeypatch, {"ARTIFACT_STORAGE_URL": url})
