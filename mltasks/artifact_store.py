"""Model artifacts through Django's storage API: the `artifacts` alias of STORAGES.

The process that trains a version uploads its artifact directory once
(`artifact_directory_upload`); every other process, on this host or another one, gets a local
directory with the same files from `artifact_directory_local`.

In the store a version's files live under one prefix per upload,
`model-versions/<version id>/<upload id>`: the files under `<prefix>/files/`, then
`<prefix>/manifest.json` (every file's path, size and sha256), written last. A prefix without
its manifest is an upload that did not finish and is never read. The upload id keeps two
uploads apart even when version ids repeat (every database starts them at 1: test and bench
databases, a restored backup), so a cached copy can never be taken for another version's.

Reading: a store with local paths (FileSystemStorage, the embedded default) is read in place.
Any other store (S3, MinIO) is downloaded once per host into ARTIFACT_CACHE_DIR/<prefix>: into a
temporary directory beside it, each file checked against the manifest, then renamed into place
in one step, so that a directory in the cache is always whole. A file lock per prefix makes the
processes of one host download it once; a download cut short leaves only its temporary
directory, which the next download of that prefix removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from filelock import FileLock

ARTIFACT_STORAGE_ALIAS = "artifacts"
KEY_ROOT = "model-versions"
MANIFEST_NAME = "manifest.json"
FILES_DIRECTORY = "files"
_PREFIX = re.compile(rf"{KEY_ROOT}/(?P<version>[1-9][0-9]*)/(?P<upload>[0-9a-f]{{32}})")
_CHUNK = 1024 * 1024


class ArtifactStoreError(RuntimeError):
    """A version's artifacts are missing, unfinished or damaged in the store."""


def artifact_storage() -> Storage:
    return storages[ARTIFACT_STORAGE_ALIAS]


def _version_id_checked(version_id: int) -> int:
    if isinstance(version_id, bool) or not isinstance(version_id, int) or version_id < 1:
        raise ValueError(f"version_id must be a positive integer, not {version_id!r}")
    return version_id


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def artifact_directory_upload(*, version_id: int, directory: Path) -> str:
    """Upload every file under `directory` (subdirectories included) to the artifacts store as
    a new upload of version `version_id`; returns its prefix, to keep with the version and
    pass to `artifact_directory_local`. ValueError for a missing or empty directory."""
    _version_id_checked(version_id)
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    paths = sorted(path for path in directory.rglob("*") if path.is_file())
    if not paths:
        raise ValueError(f"{directory} holds no files to upload")
    storage = artifact_storage()
    prefix = f"{KEY_ROOT}/{version_id}/{uuid.uuid4().hex}"
    entries = []
    for path in paths:
        relative = path.relative_to(directory).as_posix()
        sha256, size = _file_digest(path)
        key = f"{prefix}/{FILES_DIRECTORY}/{relative}"
        with path.open("rb") as handle:
            saved = storage.save(key, File(handle, name=relative))
        if saved != key:
            raise ArtifactStoreError(f"the store saved {key} as {saved}")
        entries.append({"path": relative, "size": size, "sha256": sha256})
    manifest = {"version_id": version_id, "files": entries}
    # Last: its presence says every file above is in the store.
    storage.save(f"{prefix}/{MANIFEST_NAME}", ContentFile(json.dumps(manifest).encode()))
    return prefix


def _prefix_checked(*, version_id: int, prefix: str) -> re.Match:
    _version_id_checked(version_id)
    match = _PREFIX.fullmatch(prefix) if isinstance(prefix, str) else None
    if match is None:
        raise ValueError(f"{prefix!r} is not an artifact prefix (model-versions/<id>/<upload>)")
    if int(match["version"]) != version_id:
        raise ValueError(f"{prefix!r} holds the artifacts of another version than {version_id}")
    return match


def _relative_path_checked(path: object, *, prefix: str) -> str:
    parts = PurePosixPath(path).parts if isinstance(path, str) and path else ()
    if not parts or parts[0] == "/" or any(part in ("", ".", "..") for part in parts):
        raise ArtifactStoreError(f"{prefix}/{MANIFEST_NAME} names an unsafe path {path!r}")
    return str(PurePosixPath(*parts))


def _manifest(storage: Storage, prefix: str) -> list[dict]:
    key = f"{prefix}/{MANIFEST_NAME}"
    try:
        with storage.open(key, "rb") as handle:
            manifest = json.loads(handle.read())
    except FileNotFoundError as missing:
        raise ArtifactStoreError(
            f"{key} is not in the artifacts store: the upload of {prefix} never finished, "
            "or the store is not the one the trainer used"
        ) from missing
    except Exception as error:  # the backend's own errors (network, permissions, bad JSON)
        raise ArtifactStoreError(f"{key} could not be read: {error!r}") from error
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ArtifactStoreError(f"{key} lists no files")
    if not all(isinstance(entry, dict) for entry in entries):
        raise ArtifactStoreError(f"{key} is not a manifest of files")
    return [
        {
            "path": _relative_path_checked(entry.get("path"), prefix=prefix),
            "size": entry.get("size"),
            "sha256": entry.get("sha256"),
        }
        for entry in entries
    ]


def _in_place(storage: Storage, prefix: str) -> Path | None:
    """The directory of `prefix`'s files when the store has local paths, else None."""
    try:
        return Path(storage.path(f"{prefix}/{FILES_DIRECTORY}"))
    except NotImplementedError:
        return None


def _download(storage: Storage, *, prefix: str, entry: dict, destination: Path) -> None:
    key = f"{prefix}/{FILES_DIRECTORY}/{entry['path']}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with storage.open(key, "rb") as source, destination.open("wb") as sink:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                sink.write(chunk)
    except Exception as error:
        raise ArtifactStoreError(f"{key} could not be downloaded: {error!r}") from error
    if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        raise ArtifactStoreError(
            f"{key} does not match the manifest ({size} bytes, sha256 {digest.hexdigest()}; "
            f"expected {entry['size']} bytes, sha256 {entry['sha256']})"
        )


def artifact_directory_local(*, version_id: int, prefix: str) -> Path:
    """A local directory holding the files `artifact_directory_upload` returned `prefix` for,
    downloaded into ARTIFACT_CACHE_DIR when this host has no copy yet (no store request once it
    has). ArtifactStoreError when the store lacks them or they do not match the manifest;
    nothing is left in the cache then."""
    upload = _prefix_checked(version_id=version_id, prefix=prefix)["upload"]
    storage = artifact_storage()
    in_place = _in_place(storage, prefix)
    if in_place is not None:
        _manifest(storage, prefix)  # an unfinished upload is not read
        return in_place
    target = Path(settings.ARTIFACT_CACHE_DIR) / prefix
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{upload}.lock"):
        if target.is_dir():  # another process of this host downloaded it meanwhile
            return target
        for leftover in target.parent.glob(f".{upload}.partial-*"):  # a download cut short
            shutil.rmtree(leftover, ignore_errors=True)
        entries = _manifest(storage, prefix)
        partial = Path(tempfile.mkdtemp(prefix=f".{upload}.partial-", dir=target.parent))
        try:
            for entry in entries:
                _download(storage, prefix=prefix, entry=entry, destination=partial / entry["path"])
            partial.chmod(0o755)  # mkdtemp's 0700, as a directory made by hand would be
            os.rename(partial, target)  # one step: the directory appears whole
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return target


def artifact_directory_of(*, version_id: int, artifact_path: str) -> Path:
    """The local directory of a version's artifacts, whatever its `artifact_path` holds: a
    prefix from `artifact_directory_upload` is read through `artifact_directory_local`; an
    absolute path (a version written straight to a local directory, e.g. before the store) is
    that directory. ArtifactStoreError for an empty one."""
    if _PREFIX.fullmatch(artifact_path or ""):
        return artifact_directory_local(version_id=version_id, prefix=artifact_path)
    if artifact_path and Path(artifact_path).is_absolute():
        return Path(artifact_path)
    raise ArtifactStoreError(f"version {version_id} has no artifacts ({artifact_path!r})")
