"""`upload`: a local file or folder copied to a URL so that it never looks complete before it is (see
the package docstring), and `RemoteMirror`, which does it for every checkpoint of a run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from text2sql.atomic import publish, staged
from text2sql.errors import first_line
from text2sql.storage.fetch import COMPLETE_MARKER, PARTIAL_TAG
from text2sql.storage.remote import (
    StorageError,
    check_destination,
    is_remote,
    join,
    local_path,
    resolve,
    storage_errors,
)

log = logging.getLogger("text2sql.storage")


def upload(
    source_path: str | os.PathLike[str],
    url: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Copy a local file or folder to `url` (a URL or a local path), keeping the folder structure;
    returns the destination.

    Remote: every object goes to `<key>.partial-<id>` and is copied to `<key>` once whole; a folder's
    old `_COMPLETE` marker is removed first and a new one (listing files and sizes) written last.
    Each request is retried by the storage library on transient errors (see `remote`;
    `storage_options={"config_kwargs": {"retries": ...}}` tunes botocore's). Local: the copy is built
    beside the destination and renamed into place.
    """
    source = Path(source_path)
    dest = str(url)
    if not source.exists():
        raise StorageError(f"cannot upload {source}: it does not exist")
    if not is_remote(dest):
        return str(_copy_local(source, Path(local_path(dest))))
    dest = dest.rstrip("/")
    fs, path = resolve(dest, endpoint_url, storage_options)
    if source.is_file():
        with storage_errors(dest, "write to", fs):
            _put_atomic(fs, source, path)
        return dest
    files = sorted(p for p in source.rglob("*") if p.is_file() and PARTIAL_TAG not in p.name)
    with storage_errors(dest, "write to", fs):
        marker = f"{path}/{COMPLETE_MARKER}"
        # Readers must stop trusting the folder before any of its files changes.
        _remove(fs, marker)
        sizes: dict[str, int] = {}
        for file in files:
            rel = file.relative_to(source).as_posix()
            if rel == COMPLETE_MARKER:
                continue
            sizes[rel] = file.stat().st_size
            _put_atomic(fs, file, f"{path}/{rel}")
        body = json.dumps({"files": sizes, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        fs.pipe_file(marker, body)
    log.info("uploaded %s to %s (%d files)", source, dest, len(sizes))
    return dest


def mark_complete(url: str) -> bool:
    """Write the `_COMPLETE` marker into a remote folder that other means wrote (a Cloud Storage FUSE
    mount in a pipeline step, gsutil), listing its files as they are now, so that `fetch` takes it.
    Only for a folder known to be finished. False when it has a marker already."""
    fs, path = resolve(url, None, None)
    path = path.rstrip("/")
    with storage_errors(url, "write to", fs):
        marker = f"{path}/{COMPLETE_MARKER}"
        if fs.exists(marker):
            return False
        sizes = {}
        for key, info in sorted(fs.find(path, detail=True).items()):
            rel = key[len(path) + 1 :]
            if rel and rel != COMPLETE_MARKER and PARTIAL_TAG not in rel:
                sizes[rel] = int(info["size"])
        if not sizes:
            raise StorageError(f"{url} holds no files: check the path")
        body = {"files": sizes, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        fs.pipe_file(marker, json.dumps(body).encode())
    log.info("marked %s complete (%d files)", url, len(sizes))
    return True


def _put_atomic(fs: Any, local: Path, key: str) -> None:
    """`local` to `key` via a temporary key, so `key` is either absent, the old object, or whole."""
    partial = f"{key}{PARTIAL_TAG}{uuid.uuid4().hex[:12]}"
    published = False
    try:
        fs.put_file(str(local), partial)
        # copy + delete rather than mv: each half is idempotent, so a library retry after a lost reply is safe.
        fs.copy(partial, key)
        published = True
    finally:
        try:
            _remove(fs, partial)
        except Exception as exc:  # a leftover partial object is ignored by readers; not worth failing for
            # After a failed upload the clean-up fails for the same reason: the error already says it.
            (log.warning if published else log.debug)(
                "could not remove temporary object %s: %s", partial, first_line(exc)
            )


def _remove(fs: Any, key: str) -> None:
    try:
        fs.rm_file(key)
    except FileNotFoundError:
        pass


def _copy_local(source: Path, dest: Path) -> Path:
    if dest.exists() and dest.resolve() == source.resolve():
        return dest
    with staged(dest) as tmp:
        copy = tmp / dest.name
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            shutil.copy2(source, copy)
        publish(copy, dest, replace=True)
    return dest


class RemoteMirror:
    """Copies folders (each saved checkpoint, say) under one destination, a local folder or a URL:
    `push(run/checkpoints/checkpoint-500)` writes `<destination>/checkpoint-500` through `upload`."""

    def __init__(
        self,
        destination: str | os.PathLike[str],
        *,
        endpoint_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ):
        self.destination = str(destination).rstrip("/") if is_remote(destination) else str(destination)
        self.endpoint_url = endpoint_url
        self.storage_options = storage_options
        check_destination(self.destination, endpoint_url=endpoint_url, storage_options=storage_options)

    def target_for(self, local_dir: str | os.PathLike[str]) -> str:
        return join(self.destination, Path(local_dir).name)

    def push(self, local_dir: str | os.PathLike[str]) -> str:
        return upload(
            local_dir, self.target_for(local_dir), endpoint_url=self.endpoint_url, storage_options=self.storage_options
        )
