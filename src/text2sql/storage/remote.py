"""URLs and their filesystems: which fsspec implementation serves a URL (and which extra installs it),
and how a library's failure becomes one `StorageError` line that names the bucket and the fix.

Transient failures are retried by the libraries themselves, per request: botocore (5xx, throttling,
dropped connections; `config_kwargs={"retries": {...}}` tunes it), s3fs on top of it (timeouts,
truncated reads, SlowDown) and gcsfs (5xx, 429, connection errors). text2sql adds no retry loop of
its own; what reaches it has outlived theirs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from text2sql import paths
from text2sql.errors import MissingExtraError, Text2SQLError, first_line

# scheme -> (package that implements it, text2sql extra that installs it)
_EXTRAS = {"gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"), "s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}
_S3 = ("s3", "s3a")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# Errors that come from the credentials themselves being missing or wrong.
_CREDENTIAL_ERRORS = {"NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError", "RefreshError"}
# Libraries whose exceptions are network or service trouble.
_NETWORK_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3", "requests", "google.api_core", "gcsfs")


class StorageError(Text2SQLError):
    """A remote path cannot be read or written; the message names the bucket and the fix."""


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for a URL with a scheme other than file:// (gs://, s3://, memory://, ...)."""
    match = _URL.match(str(path))
    return match is not None and match.group(1).lower() not in ("file", "local")


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a URL or a local path."""
    if not is_remote(base):
        return str(Path(local_path(base), *parts))
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    return f"{base.rstrip('/')}/{tail}" if tail else base


def local_path(path: str | os.PathLike[str]) -> str:
    text = str(path)
    return text[len("file://") :] if text.startswith("file://") else text


def url_scheme(url: str) -> str:
    match = _URL.match(url)
    return match.group(1).lower() if match else ""


def url_bucket(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def cache_root() -> Path:
    """Where `fetch` keeps its copies: `$TEXT2SQL_CACHE/remote`."""
    return paths.cache_root() / "remote"


# -------------------------------------------------------------------------------- filesystems


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint in use: the explicit one, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def filesystem(url: str, *, endpoint_url: str | None = None, **storage_options: Any):
    """The fsspec filesystem for `url` (gcsfs for gs://, s3fs for s3://, ...).

    A missing implementation package raises MissingExtraError naming the extra to install;
    `storage_options` go to the filesystem's constructor (e.g. s3fs `config_kwargs`).
    """
    return resolve(url, endpoint_url, storage_options)[0]


def resolve(url: str, endpoint_url: str | None, storage_options: dict[str, Any] | None):
    import fsspec

    scheme = url_scheme(url)
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


def missing_package(url: str) -> MissingExtraError | None:
    """The error `url` would raise for want of its fsspec implementation (gcsfs, s3fs), or None."""
    scheme = url_scheme(url)
    if scheme not in _EXTRAS:
        return None
    package, extra = _EXTRAS[scheme]
    if importlib.util.find_spec(package) is None:
        return MissingExtraError(f"{scheme}:// storage ({url})", package, extra)
    return None


def check_destination(
    url: str, *, probe: bool = False, endpoint_url: str | None = None, storage_options: dict[str, Any] | None = None
) -> None:
    """Fail now, not hours into training, when `url` cannot be written: the extra must be installed,
    and with `probe` the bucket must exist and be reachable with the current credentials."""
    if not is_remote(url):
        return
    fs, path = resolve(url, endpoint_url, storage_options)
    if probe:
        with storage_errors(url, "write to", fs):
            bucket = path.split("/", 1)[0]
            fs.invalidate_cache(bucket)
            fs.ls(bucket, detail=False)


# ------------------------------------------------------------------------------------- errors


@contextlib.contextmanager
def storage_errors(url: str, action: str, fs=None) -> Iterator[None]:
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
    scheme, bucket = url_scheme(url), url_bucket(url)
    s3 = scheme in _S3
    creds = (
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        if s3
        else "GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`"
        if scheme in ("gs", "gcs")
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
        names
        & {
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ClientConnectorError",
            "ServerTimeoutError",
            "ConnectionError",
            "TimeoutError",
            "FSTimeoutError",
            "TransportError",
        }
    )


def _endpoint_of(fs) -> str | None:
    endpoint = getattr(fs, "endpoint_url", None) or (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url")
    return endpoint or s3_endpoint()
