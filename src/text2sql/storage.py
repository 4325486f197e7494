"""Remote paths: gs://, s3:// (and any other fsspec URL) for models, data files and run folders.

Three promises, the same for every backend:

- **`fetch(url)`** copies a remote file or folder into the local cache
  (`$TEXT2SQL_CACHE/remote/<hash of url>/<name>`) and returns its path. The copy is built in a
  temporary folder and renamed into place; a later call reuses it while the remote listing (ETag /
  size / mtime of every object, kept in `manifest.json` beside it) is unchanged.
- **`upload(local, url)`** copies a file or folder, keeping its structure. Each object is written
  under a temporary key (`<key>.partial-<id>`) and copied to its final key only once whole; a folder
  gets a `_COMPLETE` marker object last, listing its files and sizes. A failed or interrupted upload
  therefore never leaves a folder or file that looks complete. Transient failures are retried with
  backoff. A local destination gets a plain copy renamed into place.
- **`fetch` refuses a remote folder without `_COMPLETE`** (an upload still running, or one that died),
  and a folder whose files do not match the sizes the marker lists. A folder uploaded by other tools
  is accepted once someone writes the marker (an empty object is enough).

Errors a user can fix (no such bucket, access denied, unreachable endpoint, a missing extra) are a
`StorageError` / `MissingExtraError` with a one-line message naming the fix.

The S3 endpoint comes from `endpoint_url=` (a config value), else `AWS_ENDPOINT_URL_S3`, else
`AWS_ENDPOINT_URL` (MinIO, moto, other S3-compatible stores); credentials come from the usual
places (AWS_* variables or profiles; Google application-default credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import os
import random
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from text2sql.errors import MissingExtraError, Text2SQLError, first_line

log = logging.getLogger(__name__)

COMPLETE_MARKER = "_COMPLETE"
PARTIAL_TAG = ".partial-"
MANIFEST = "manifest.json"

# scheme -> (package that implements it, text2sql extra that installs it)
_EXTRAS = {"gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"), "s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}
_S3 = ("s3", "s3a")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# Errors that no retry can fix: the credentials themselves are missing or wrong.
_CREDENTIAL_ERRORS = {"NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError", "RefreshError"}
# Libraries whose exceptions are network or service trouble (a retry may help).
_NETWORK_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3", "requests", "google.api_core", "gcsfs")

T = TypeVar("T")


class StorageError(Text2SQLError):
    """A remote path cannot be read or written; the message names the bucket and the fix."""


# ------------------------------------------------------------------------------------- paths


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for a URL with a scheme other than file:// (gs://, s3://, memory://, ...)."""
    match = _URL.match(str(path))
    return bool(match) and match.group(1).lower() not in ("file", "local")


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a URL or a local path."""
    if not is_remote(base):
        return str(Path(_local(base), *parts))
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    return f"{base.rstrip('/')}/{tail}" if tail else base


def _local(path: str | os.PathLike[str]) -> str:
    text = str(path)
    return text[len("file://"):] if text.startswith("file://") else text


def _scheme(url: str) -> str:
    return _URL.match(url).group(1).lower()


def _bucket(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def cache_root() -> Path:
    from text2sql.models.tiny import cache_root as root

    return root() / "remote"


# -------------------------------------------------------------------------------- filesystems


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint in use: the explicit one, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def filesystem(url: str, *, endpoint_url: str | None = None, **storage_options: Any):
    """The fsspec filesystem for `url` (gcsfs for gs://, s3fs for s3://, ...).

    A missing implementation package raises MissingExtraError naming the extra to install;
    `storage_options` go to the filesystem's constructor (e.g. s3fs `config_kwargs`).
    """
    return _resolve(url, endpoint_url, storage_options)[0]


def _resolve(url: str, endpoint_url: str | None, storage_options: dict[str, Any] | None):
    import fsspec

    scheme = _scheme(url)
    if scheme in _EXTRAS:
        package, extra = _EXTRAS[scheme]
        try:
            importlib.import_module(package)
        except ImportError:
            raise MissingExtraError(f"{scheme}:// storage ({url})", package, extra) from None
    options = dict(storage_options or {})
    if scheme in _S3:
        endpoint = s3_endpoint(endpoint_url)
        if endpoint:
            # Passed explicitly (botocore would also read the variables) so that errors can name it.
            # No region_name here: with one, moto/MinIO bucket creation fails (InvalidLocationConstraint).
            options.setdefault("endpoint_url", endpoint)
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:  # another protocol whose package is missing: fsspec names it
        raise StorageError(f"cannot open {url}: {first_line(exc)}") from None
    except ValueError as exc:
        raise StorageError(
            f"unsupported URL scheme '{scheme}://' in {url}: use gs://, s3:// or a local path ({first_line(exc)})"
        ) from None


def check_destination(url: str, *, probe: bool = False, endpoint_url: str | None = None,
                      storage_options: dict[str, Any] | None = None) -> None:
    """Fail now, not hours into training, when `url` cannot be written: the extra must be installed,
    and with `probe` the bucket must exist and be reachable with the current credentials."""
    if not is_remote(url):
        return
    fs, path = _resolve(url, endpoint_url, storage_options)
    if probe:
        with _storage_errors(url, "write to", fs):
            bucket = path.split("/", 1)[0]
            fs.invalidate_cache(bucket)
            fs.ls(bucket, detail=False)


# ------------------------------------------------------------------------------------- fetch


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
        return Path(_local(text))
    text = text.rstrip("/")
    fs, path = _resolve(text, endpoint_url, storage_options)
    with _storage_errors(text, "read", fs):
        kind, listing = _remote_listing(fs, path, text, require_complete)

    from filelock import FileLock

    from text2sql.models.folders import publish, staged

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
            with _storage_errors(text, "read", fs):
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
        rel = name[len(prefix):] if name.startswith(prefix) else ""
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
            raise StorageError(f"download of {url} is truncated ({rel or path.name}: {size} of {sig['size']} bytes); retry")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ upload


def upload(
    local_path: str | os.PathLike[str],
    url: str | os.PathLike[str],
    *,
    retries: int = 3,
    backoff: float = 1.0,
    endpoint_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Copy a local file or folder to `url` (a URL or a local path), keeping the folder structure;
    returns the destination.

    Remote: every object goes to `<key>.partial-<id>` and is copied to `<key>` once whole; a folder's
    old `_COMPLETE` marker is removed first and a new one (listing files and sizes) written last.
    Each step is retried up to `retries` times on transient errors, waiting about `backoff` x 2^n
    seconds. Local: the copy is built beside the destination and renamed into place.
    """
    source = Path(local_path)
    dest = str(url)
    if not source.exists():
        raise StorageError(f"cannot upload {source}: it does not exist")
    if not is_remote(dest):
        return str(_copy_local(source, Path(_local(dest))))
    dest = dest.rstrip("/")
    fs, path = _resolve(dest, endpoint_url, storage_options)
    if source.is_file():
        with _storage_errors(dest, "write to", fs):
            _put_atomic(fs, source, path, retries, backoff)
        return dest
    files = sorted(p for p in source.rglob("*") if p.is_file() and PARTIAL_TAG not in p.name)
    with _storage_errors(dest, "write to", fs):
        marker = f"{path}/{COMPLETE_MARKER}"
        # Readers must stop trusting the folder before any of its files changes.
        _with_retries(lambda: _remove(fs, marker), f"removing {marker}", retries, backoff)
        sizes: dict[str, int] = {}
        for file in files:
            rel = file.relative_to(source).as_posix()
            if rel == COMPLETE_MARKER:
                continue
            sizes[rel] = file.stat().st_size
            _put_atomic(fs, file, f"{path}/{rel}", retries, backoff)
        body = json.dumps({"files": sizes, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        _with_retries(lambda: fs.pipe_file(marker, body), f"writing {marker}", retries, backoff)
    log.info("uploaded %s to %s (%d files)", source, dest, len(sizes))
    return dest


def _put_atomic(fs, local: Path, key: str, retries: int, backoff: float) -> None:
    """`local` to `key` via a temporary key, so `key` is either absent, the old object, or whole."""
    partial = f"{key}{PARTIAL_TAG}{uuid.uuid4().hex[:12]}"
    published = False
    try:
        _with_retries(lambda: fs.put_file(str(local), partial), f"uploading {local.name}", retries, backoff)
        # copy + delete rather than mv: each half is idempotent, so a retry after a lost reply is safe.
        _with_retries(lambda: fs.copy(partial, key), f"publishing {key}", retries, backoff)
        published = True
    finally:
        try:
            _remove(fs, partial)
        except Exception as exc:  # a leftover partial object is ignored by readers; not worth failing for
            # After a failed upload the clean-up fails for the same reason: the error already says it.
            (log.warning if published else log.debug)(
                "could not remove temporary object %s: %s", partial, first_line(exc)
            )


def _remove(fs, key: str) -> None:
    try:
        fs.rm_file(key)
    except FileNotFoundError:
        pass


def _copy_local(source: Path, dest: Path) -> Path:
    from text2sql.models.folders import publish, staged

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

    def __init__(self, destination: str | os.PathLike[str], *, retries: int = 3, endpoint_url: str | None = None,
                 storage_options: dict[str, Any] | None = None):
        self.destination = str(destination).rstrip("/") if is_remote(destination) else str(destination)
        self.retries = retries
        self.endpoint_url = endpoint_url
        self.storage_options = storage_options
        check_destination(self.destination, endpoint_url=endpoint_url, storage_options=storage_options)

    def target_for(self, local_dir: str | os.PathLike[str]) -> str:
        return join(self.destination, Path(local_dir).name)

    def push(self, local_dir: str | os.PathLike[str]) -> str:
        return upload(local_dir, self.target_for(local_dir), retries=self.retries,
                      endpoint_url=self.endpoint_url, storage_options=self.storage_options)


# ------------------------------------------------------------------------- retries and errors


def _with_retries(action: Callable[[], T], what: str, retries: int, backoff: float) -> T:
    # Whole-object retries on top of the clients' per-request ones (botocore, s3fs, gcsfs): those do
    # not restart a failed multipart upload or a dropped connection mid-file. tenacity is not part of
    # the stack, and these eight lines are all that is needed.
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:
            if attempt >= retries or not _is_transient(exc):
                raise
            delay = backoff * 2**attempt * random.uniform(0.5, 1.0)  # jitter: ranks do not retry in step
            log.warning("%s failed (%s); retry %d of %d in %.1f s", what, first_line(exc), attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (Text2SQLError, FileNotFoundError, PermissionError, IsADirectoryError,
                        NotADirectoryError, FileExistsError)):
        return False
    if type(exc).__name__ in _CREDENTIAL_ERRORS:
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    if type(exc).__module__.startswith(_NETWORK_MODULES):
        return True
    return isinstance(exc, OSError)  # s3fs reports 5xx and throttling as a plain OSError (EIO)


@contextlib.contextmanager
def _storage_errors(url: str, action: str, fs=None) -> Iterator[None]:
    """Library errors → one StorageError line naming the bucket and what to check."""
    try:
        yield
    except Text2SQLError:
        raise
    except Exception as exc:
        message = _explain(exc, url, action, fs)
        if message is None:
            raise
        raise StorageError(message) from exc


def _explain(exc: BaseException, url: str, action: str, fs) -> str | None:
    scheme, bucket = _scheme(url), _bucket(url)
    s3 = scheme in _S3
    creds = (
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE" if s3
        else "GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`" if scheme in ("gs", "gcs")
        else "the credentials for this store"
    )
    endpoint = _endpoint_of(fs) if s3 else None
    where = f" at {endpoint}" if endpoint else ""
    text = first_line(exc)
    chain = f"{text} {first_line(exc.__cause__) if exc.__cause__ else ''}"
    if type(exc).__name__ in _CREDENTIAL_ERRORS:
        return f"cannot {action} {url}: no usable credentials ({text}); set {creds}"
    if isinstance(exc, FileNotFoundError):
        if "NoSuchBucket" in chain or "bucket does not exist" in chain.lower() or action != "read":
            fix = " and AWS_ENDPOINT_URL" if s3 else ""
            return f"cannot {action} {url}: bucket '{bucket}'{where} does not exist; check the bucket name{fix}"
        return f"cannot {action} {url}: no such file or folder; check the path and the bucket name '{bucket}'"
    if isinstance(exc, PermissionError) or "AccessDenied" in chain or "Forbidden" in chain:
        return f"cannot {action} {url}: access denied to bucket '{bucket}'; check {creds} and the bucket's permissions"
    if _is_connection_error(exc):
        fix = "AWS_ENDPOINT_URL (or storage endpoint_url) and the network" if s3 else "the network"
        return f"cannot {action} {url}: the storage endpoint{where or ''} is unreachable ({text}); check {fix}"
    if isinstance(exc, OSError) or type(exc).__module__.startswith(_NETWORK_MODULES):
        return f"cannot {action} {url}: {text}; check the bucket name '{bucket}' and {creds}"
    return None


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ServerTimeoutError",
                 "ConnectionError", "TimeoutError", "FSTimeoutError", "TransportError"}
    )


def _endpoint_of(fs) -> str | None:
    endpoint = getattr(fs, "endpoint_url", None) or (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url")
    return endpoint or s3_endpoint()
