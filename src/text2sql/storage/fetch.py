"""`fetch`: a remote file or folder copied into the local cache once, and reused while the remote is
unchanged (see the package docstring for the promises)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock

from text2sql.atomic import publish, staged
from text2sql.storage.remote import StorageError, cache_root, is_remote, local_path, resolve, storage_errors

log = logging.getLogger("text2sql.storage")

COMPLETE_MARKER = "_COMPLETE"
PARTIAL_TAG = ".partial-"
MANIFEST = "manifest.json"


def fetch(
    url: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    endpoint_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
    require_complete: bool = True,
) -> Path:
    """A local path holding `url`: local paths come back unchanged; a remote file or folder is
    downloaded into the cache once and reused while the remote listing is unchanged.

    A remote folder must hold a `_COMPLETE` marker (written last by `upload`) unless
    `require_complete=False`; when the marker lists files, exactly those are fetched and their sizes
    checked, so stray or half-written objects beside them are never used.
    """
    text = str(url)
    if not is_remote(text):
        return Path(local_path(text))
    text = text.rstrip("/")
    fs, path = resolve(text, endpoint_url, storage_options)
    with storage_errors(text, "read", fs):
        kind, listing = _remote_listing(fs, path, text, require_complete)

    slot = Path(cache_dir) if cache_dir else cache_root()
    slot = slot / hashlib.sha256(text.encode()).hexdigest()[:16]
    slot.mkdir(parents=True, exist_ok=True)
    target = slot / (PurePosixPath(path).name or "root")
    record = {"url": text, "kind": kind, "listing": listing}
    # One download per cache slot at a time: several processes (ranks, parallel tests) may ask at once.
    with FileLock(str(slot) + ".lock"):
        if target.exists() and _read_json(slot / MANIFEST) == record:
            log.debug("%s: cached copy %s is current", text, target)
            return target
        log.info("downloading %s to %s", text, target)
        (slot / MANIFEST).unlink(missing_ok=True)
        with staged(target) as tmp:
            local = tmp / target.name
            rels = sorted(rel for rel in listing if rel != COMPLETE_MARKER)
            for rel in rels if kind == "folder" else ():
                (local / rel).parent.mkdir(parents=True, exist_ok=True)
            with storage_errors(text, "read", fs):
                if kind == "file":
                    fs.get_file(path, str(local))
                else:
                    # Lists in, lists out: no glob or trailing-slash rules; async backends copy concurrently.
                    fs.get([f"{path}/{rel}" for rel in rels], [str(local / rel) for rel in rels])
            _check_sizes(local, kind, listing, text)
            publish(local, target, replace=True)
        _write_json(slot / MANIFEST, record)
    return target


def _remote_listing(fs, path: str, url: str, require_complete: bool) -> tuple[str, dict[str, dict[str, Any]]]:
    """("file" | "folder", {relative path: signature}) of what `fetch` would download."""
    fs.invalidate_cache(path)  # s3fs / gcsfs cache listings; another process may have written since
    info = fs.info(path)
    if info.get("type") != "directory":
        return "file", {"": _signature(info)}
    files: dict[str, dict[str, Any]] = {}
    prefix = path.rstrip("/") + "/"
    for name, meta in fs.find(path, detail=True).items():
        rel = name[len(prefix) :] if name.startswith(prefix) else ""
        if rel and PARTIAL_TAG not in PurePosixPath(rel).name and meta.get("type", "file") == "file":
            files[rel] = _signature(meta)
    marker = files.pop(COMPLETE_MARKER, None)
    if marker is None:
        if require_complete:
            raise StorageError(
                f"{url} has no {COMPLETE_MARKER} marker: its upload is still running or was interrupted, or "
                f"another tool wrote it. Upload it with text2sql, or once it is complete write an empty "
                f"{url}/{COMPLETE_MARKER} object"
            )
        return "folder", files
    expected = _read_marker(fs, f"{prefix}{COMPLETE_MARKER}")
    if expected:
        for rel, size in expected.items():
            if rel not in files or files[rel]["size"] != size:
                state = "missing" if rel not in files else f"{files[rel]['size']} bytes, not {size}"
                raise StorageError(
                    f"{url} is incomplete: {rel} is {state} although {COMPLETE_MARKER} lists it; upload it again"
                )
        files = {rel: files[rel] for rel in expected}
    if not files:
        raise StorageError(f"{url} holds no files besides {COMPLETE_MARKER}: check the path")
    return "folder", {**files, COMPLETE_MARKER: marker}


def _signature(info: dict[str, Any]) -> dict[str, Any]:
    """What identifies an object's content without reading it: its size and ETag (S3), md5/
    generation (GCS) or modification time, whichever the backend reports."""
    sig: dict[str, Any] = {"size": int(info.get("size") or 0)}
    for key in ("ETag", "etag", "md5Hash", "generation", "LastModified", "mtime", "updated", "created"):
        if info.get(key) is not None:
            value = info[key]
            sig[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
            if key in ("ETag", "etag", "md5Hash"):
                break
    return sig


def _read_marker(fs, key: str) -> dict[str, int]:
    raw = fs.cat_file(key)
    if not raw.strip():
        return {}
    try:
        return {str(k): int(v) for k, v in json.loads(raw)["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StorageError(f"{key}: {COMPLETE_MARKER} is not a text2sql marker; upload the folder again") from None


def _check_sizes(local: Path, kind: str, listing: dict[str, dict[str, Any]], url: str) -> None:
    for rel, sig in listing.items():
        if rel == COMPLETE_MARKER:
            continue
        path = local if kind == "file" else local / rel
        size = path.stat().st_size if path.is_file() else -1
        if size != sig["size"]:
            raise StorageError(
                f"download of {url} is truncated ({rel or path.name}: {size} of {sig['size']} bytes); retry"
            )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
