"""Remote paths: gs://, s3:// (and any other fsspec URL) for models, data files and run folders.

Three promises, the same for every backend:

- **`fetch(url)`** copies a remote file or folder into the local cache
  (`$TEXT2SQL_CACHE/remote/<hash of url>/<name>`) and returns its path. The copy is built in a
  temporary folder and renamed into place; a later call reuses it while the remote listing (ETag /
  size / mtime of every object, kept in `manifest.json` beside it) is unchanged.
- **`upload(local, url)`** copies a file or folder, keeping its structure. Each object is written
  under a temporary key (`<key>.partial-<id>`) and copied to its final key only once whole; a folder
  gets a `_COMPLETE` marker object last, listing its files and sizes. A failed or interrupted upload
  therefore never leaves a folder or file that looks complete. Transient failures are retried by the
  storage libraries (botocore, s3fs, gcsfs; see `remote`). A local destination gets a plain copy
  renamed into place.
- **`fetch` refuses a remote folder without `_COMPLETE`** (an upload still running, or one that died),
  and a folder whose files do not match the sizes the marker lists. A folder uploaded by other tools
  is accepted once someone writes the marker (an empty object is enough).

Errors a user can fix (no such bucket, access denied, unreachable endpoint, a missing extra) are a
`StorageError` / `MissingExtraError` with a one-line message naming the fix.

The S3 endpoint comes from `endpoint_url=` (a config value), else `AWS_ENDPOINT_URL_S3`, else
`AWS_ENDPOINT_URL` (MinIO, moto, other S3-compatible stores); credentials come from the usual
places (AWS_* variables or profiles; Google application-default credentials).
"""

from text2sql.storage.fetch import COMPLETE_MARKER, MANIFEST, PARTIAL_TAG, fetch
from text2sql.storage.remote import (
    StorageError,
    cache_root,
    check_destination,
    filesystem,
    is_remote,
    join,
    missing_package,
    s3_endpoint,
)
from text2sql.storage.upload import RemoteMirror, mark_complete, upload

__all__ = [
    "COMPLETE_MARKER",
    "MANIFEST",
    "PARTIAL_TAG",
    "RemoteMirror",
    "mark_complete",
    "StorageError",
    "cache_root",
    "check_destination",
    "fetch",
    "filesystem",
    "is_remote",
    "join",
    "missing_package",
    "s3_endpoint",
    "upload",
]
