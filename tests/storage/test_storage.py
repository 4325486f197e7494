"""Remote storage against a real S3 API: a moto server on 127.0.0.1 (started once per session,
skipped cleanly when moto or s3fs is missing), plus fsspec's memory:// for the backend-independent
promises. Nothing leaves the loopback interface."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from s3_support import free_port
from text2sql import storage
from text2sql.errors import MissingExtraError
from text2sql.storage import COMPLETE_MARKER, RemoteMirror, StorageError, fetch, is_remote, join, upload

FAST_FAIL = {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1, "read_timeout": 2}}


@pytest.fixture(params=["s3", "memory"])
def remote(request):
    """A fresh remote folder URL on each backend."""
    if request.param == "memory":
        return f"memory://t2s-{uuid.uuid4().hex[:10]}"
    return f"s3://{request.getfixturevalue('bucket')}"


def _model_folder(root: Path) -> Path:
    """A folder shaped like a saved model with a checkpoint inside."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 16}))
    (root / "model.safetensors").write_bytes(os.urandom(300_000))
    (root / "tokenizer.json").write_text("{}")
    (root / "checkpoint-2").mkdir()
    (root / "checkpoint-2" / "optimizer.pt").write_bytes(os.urandom(50_000))
    (root / "checkpoint-2" / "trainer_state.json").write_text("{}")
    return root


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _keys(url: str) -> list[str]:
    fs = storage.filesystem(url)
    path = url.split("://", 1)[1]
    fs.invalidate_cache()
    prefix = fs._strip_protocol(url).rstrip("/") + "/"
    return sorted(name[len(prefix) :] for name in fs.find(path))


class _Flaky:
    """Wraps one filesystem method: raises `error` on the calls numbered in `fail_on`, else delegates."""

    def __init__(self, method, error, fail_on):
        self.method, self.error, self.fail_on, self.calls = method, error, set(fail_on), 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls in self.fail_on:
            raise self.error
        return self.method(*args, **kwargs)


# ------------------------------------------------------------------------------- paths


def test_is_remote_and_join(tmp_path):
    assert is_remote("gs://b/m") and is_remote("s3://b/m") and is_remote("memory://x")
    assert not is_remote("runs/x") and not is_remote("file:///tmp/x") and not is_remote("tiny:llama")
    assert join("s3://b/ckpt/", "checkpoint-5") == "s3://b/ckpt/checkpoint-5"
    assert join(str(tmp_path), "checkpoint-5") == str(tmp_path / "checkpoint-5")
    assert fetch(str(tmp_path / "data.csv")) == tmp_path / "data.csv"  # local paths come back unchanged


# ---------------------------------------------------------------------- round trip, cache


def test_folder_round_trip_is_byte_identical(remote, tmp_path):
    source = _model_folder(tmp_path / "model")
    url = f"{remote}/models/tiny"
    assert upload(source, url) == url
    assert _keys(url) == sorted([*_digests(source), COMPLETE_MARKER])  # no .partial- objects left
    marker = json.loads(storage.filesystem(url).cat_file(f"{url}/{COMPLETE_MARKER}"))
    assert marker["files"]["model.safetensors"] == 300_000

    local = fetch(url, cache_dir=tmp_path / "cache")
    assert local.name == "tiny" and local.parent.parent == tmp_path / "cache"
    assert _digests(local) == _digests(source)  # the marker is not copied into the model folder


def test_single_file_round_trip(remote, tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("input_text,sql\nhow many?,SELECT 1\n")
    upload(csv, f"{remote}/data/train.csv")
    got = fetch(f"{remote}/data/train.csv", cache_dir=tmp_path / "cache")
    assert got.name == "train.csv" and got.read_bytes() == csv.read_bytes()


def test_fetch_reuses_the_cache_until_the_remote_changes(remote, tmp_path, monkeypatch):
    source = _model_folder(tmp_path / "model")
    url = f"{remote}/models/m"
    upload(source, url)
    fs = storage.filesystem(url)
    downloads = _Flaky(fs.get, None, ())
    monkeypatch.setattr(fs, "get", downloads)

    first = fetch(url, cache_dir=tmp_path / "cache")
    assert downloads.calls == 1
    assert fetch(url, cache_dir=tmp_path / "cache") == first and downloads.calls == 1  # unchanged: reused

    (source / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 32}))
    upload(source, url)
    again = fetch(url, cache_dir=tmp_path / "cache")
    assert downloads.calls == 2 and again == first
    assert json.loads((again / "config.json").read_text())["hidden_size"] == 32


def test_remote_model_loads_through_resolve_model(bucket, tmp_path):
    from transformers import LlamaConfig

    from text2sql.models.loading import model_kind, resolve_model

    LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "m")
    upload(tmp_path / "m", f"s3://{bucket}/models/m")
    assert model_kind(f"s3://{bucket}/models/m") == ("decoder", "llama")
    assert Path(resolve_model(f"s3://{bucket}/models/m/")).is_dir()  # $TEXT2SQL_CACHE/remote/...


# --------------------------------------------------------------- completeness and failures


def test_folder_without_complete_marker_is_refused(remote, tmp_path):
    source = _model_folder(tmp_path / "model")
    url = f"{remote}/copied-by-hand"
    fs = storage.filesystem(url)
    for rel in _digests(source):  # as another tool (or an interrupted upload) leaves it
        fs.put_file(str(source / rel), f"{url}/{rel}")
    with pytest.raises(StorageError, match=f"has no {COMPLETE_MARKER} marker") as info:
        fetch(url, cache_dir=tmp_path / "cache")
    assert "\n" not in str(info.value)
    assert _digests(fetch(url, cache_dir=tmp_path / "c2", require_complete=False)) == _digests(source)
    fs.pipe_file(f"{url}/{COMPLETE_MARKER}", b"")  # an empty marker: "this folder is complete"
    assert _digests(fetch(url, cache_dir=tmp_path / "cache")) == _digests(source)


def test_a_finished_folder_written_by_other_means_is_marked_complete(remote, tmp_path):
    """A model folder a pipeline step wrote through a FUSE mount: marked, then fetched, listing its files."""
    source = _model_folder(tmp_path / "model")
    url = f"{remote}/written-through-fuse"
    fs = storage.filesystem(url)
    for rel in _digests(source):
        fs.put_file(str(source / rel), f"{url}/{rel}")
    assert storage.mark_complete(url) is True
    assert _digests(fetch(url, cache_dir=tmp_path / "cache")) == _digests(source)
    assert storage.mark_complete(url) is False  # marked already: left as it is
    with pytest.raises(StorageError, match="holds no files"):
        storage.mark_complete(f"{remote}/nothing-here")


def test_marker_listing_a_missing_file_is_refused(remote, tmp_path):
    source = _model_folder(tmp_path / "model")
    url = f"{remote}/m"
    upload(source, url)
    fs = storage.filesystem(url)
    fs.rm_file(f"{url}/model.safetensors")
    with pytest.raises(StorageError, match="model.safetensors is missing although _COMPLETE lists it"):
        fetch(url, cache_dir=tmp_path / "cache")


def test_leftover_partial_objects_are_ignored(remote, tmp_path):
    source = _model_folder(tmp_path / "model")
    url = f"{remote}/m"
    upload(source, url)
    # What a killed uploader leaves: a temporary object that never got its final name.
    storage.filesystem(url).pipe_file(f"{url}/extra.bin.partial-0123abcd", b"half")
    assert _digests(fetch(url, cache_dir=tmp_path / "cache")) == _digests(source)


def test_transient_failures_are_retried_by_the_storage_library(bucket, tmp_path, monkeypatch):
    # moto has no fault injection, so the S3 client's own call fails where a dropped connection
    # would: below s3fs, whose per-request retries (and botocore's beneath them) are the only ones.
    from botocore.exceptions import ClientError

    source = _model_folder(tmp_path / "model")
    url = f"s3://{bucket}/m"
    fs = storage.filesystem(url)
    fs.ls(bucket)  # connect, so that the client exists
    real_put = fs.s3.put_object
    calls = []

    @functools.wraps(real_put)  # s3fs finds the S3 operation by the method's name
    async def flaky_put(**kwargs):
        calls.append(kwargs["Key"])
        if len(calls) in (1, 2, 4):
            raise TimeoutError("read timed out")
        return await real_put(**kwargs)

    monkeypatch.setattr(fs.s3, "put_object", flaky_put)
    upload(source, url)
    assert len(calls) == 6 + 3  # five files and the _COMPLETE marker, three failed attempts retried
    assert _digests(fetch(url, cache_dir=tmp_path / "cache")) == _digests(source)
    assert not [k for k in _keys(url) if ".partial-" in k]

    # Errors a retry cannot fix are not retried.
    denied = []

    @functools.wraps(real_put)
    async def denying_put(**kwargs):
        denied.append(kwargs["Key"])
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    monkeypatch.setattr(fs.s3, "put_object", denying_put)
    with pytest.raises(StorageError, match=f"access denied to bucket '{bucket}'; check AWS_ACCESS_KEY_ID"):
        upload(source, f"s3://{bucket}/other")
    assert len(denied) == 1


def test_failed_upload_never_looks_complete(bucket, tmp_path, monkeypatch):
    source = _model_folder(tmp_path / "model")
    url = f"s3://{bucket}/m"
    upload(source, url)  # a complete earlier version, now being replaced
    (source / "model.safetensors").write_bytes(os.urandom(300_000))
    fs = storage.filesystem(url)
    # The third file's temporary object is written, then publishing it fails for good.
    broken = _Flaky(fs.copy, OSError(5, "We encountered an internal error. Please try again."), fail_on={3, 4})
    monkeypatch.setattr(fs, "copy", broken)
    with pytest.raises(StorageError, match=f"cannot write to {url}"):
        upload(source, url)

    keys = _keys(url)
    assert COMPLETE_MARKER not in keys  # the old marker went first; no new one was written
    assert not [k for k in keys if ".partial-" in k]  # the temporary object was cleaned up
    with pytest.raises(StorageError, match="no _COMPLETE marker"):
        fetch(url, cache_dir=tmp_path / "cache")  # readers refuse the mix of old and new files


# ------------------------------------------------------------------------ one-line errors


def test_no_such_bucket_is_one_line(bucket, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    for call in (
        lambda: upload(
            tmp_path / "f.txt",
            "s3://no-such-bucket-t2s/f.txt",
        ),
        lambda: fetch("s3://no-such-bucket-t2s/models/m", cache_dir=tmp_path / "cache"),
        lambda: storage.check_destination("s3://no-such-bucket-t2s/ckpt", probe=True),
    ):
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert "bucket 'no-such-bucket-t2s'" in message and "does not exist" in message
        assert "check the bucket name and AWS_ENDPOINT_URL" in message and "\n" not in message
    with pytest.raises(StorageError, match="no such file or folder"):
        fetch(f"s3://{bucket}/nothing/here", cache_dir=tmp_path / "cache")


def test_unauthorised_client_is_one_line(locked_endpoint, tmp_path, caplog):
    (tmp_path / "f.txt").write_text("x")
    for action, call in (
        (
            "write to",
            lambda: upload(
                tmp_path / "f.txt",
                "s3://bkt/f.txt",
            ),
        ),
        ("read", lambda: fetch("s3://bkt/models/m", cache_dir=tmp_path / "cache")),
    ):
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"cannot {action} s3://bkt/") and "\n" not in message
        assert "access denied to bucket 'bkt'; check AWS_ACCESS_KEY_ID" in message
    # The failed clean-up of the temporary object is not a second complaint.
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_unreachable_endpoint_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("s3fs")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(StorageError) as info:
        upload(tmp_path / "f.txt", "s3://bkt/f.txt", endpoint_url=closed, storage_options=FAST_FAIL)
    assert f"the storage endpoint at {closed} is unreachable" in str(info.value)
    assert "check AWS_ENDPOINT_URL" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(StorageError, match="unreachable"):
        fetch("s3://bkt/m", endpoint_url=closed, storage_options=FAST_FAIL, cache_dir=tmp_path / "c")


def test_missing_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # `import s3fs` now fails
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    with pytest.raises(MissingExtraError, match=r"needs the 's3fs' package: pip install 'text2sql\[s3\]'"):
        fetch("s3://bucket/model")
    with pytest.raises(MissingExtraError, match=r"needs the 'gcsfs' package: pip install 'text2sql\[gcs\]'"):
        upload(__file__, "gs://bucket/x.py")
    with pytest.raises(StorageError, match="unsupported URL scheme 'nosuch://'"):
        fetch("nosuch://bucket/model")


# ------------------------------------------------------------------------ checkpoint mirror


def test_mirror_pushes_checkpoints_to_a_url_or_a_folder(bucket, tmp_path):
    run = tmp_path / "run" / "checkpoints"
    ckpt = _model_folder(run / "checkpoint-2")
    remote_mirror = RemoteMirror(f"s3://{bucket}/ckpt/")
    assert remote_mirror.push(ckpt) == f"s3://{bucket}/ckpt/checkpoint-2"
    assert _digests(fetch(f"s3://{bucket}/ckpt/checkpoint-2", cache_dir=tmp_path / "c")) == _digests(ckpt)

    local_mirror = RemoteMirror(tmp_path / "backup")
    target = Path(local_mirror.push(ckpt))
    assert target == tmp_path / "backup" / "checkpoint-2" and _digests(target) == _digests(ckpt)
    (ckpt / "config.json").write_text("{}")
    local_mirror.push(ckpt)  # pushing again replaces the copy whole
    assert _digests(target) == _digests(ckpt)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["checkpoint-2"]  # no temporaries
