"""A real S3 API for tests: `python -m moto.server` on a free loopback port, and fresh buckets.

conftest.py makes the fixtures (`moto_endpoint`, `bucket`, `locked_endpoint`) available to every test;
tests skip cleanly when moto or s3fs is not installed. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from text2sql import storage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto(log, env=None):
    """`python -m moto.server` on a free loopback port; yields its URL until the caller is done."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"moto server did not start: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
    return proc, endpoint


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """`python -m moto.server` on a free loopback port, up until the session ends."""
    proc, endpoint = _start_moto(tmp_path_factory.mktemp("moto") / "server.log")
    yield endpoint
    _stop(proc)


@pytest.fixture
def locked_endpoint(tmp_path, monkeypatch):
    """A moto server that checks credentials (IAM auth from the first request), with the test's
    keys unknown to it: every request is refused as an unauthorised client would be."""
    proc, endpoint = _start_moto(tmp_path / "locked.log", {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unknown-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unknown-secret")
    yield endpoint
    _stop(proc)


@pytest.fixture
def bucket(moto_endpoint, monkeypatch):
    """A fresh bucket on the moto server, with the AWS environment set for this test only."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"t2s-{uuid.uuid4().hex[:10]}"
    storage.filesystem(f"s3://{name}").mkdir(name)
    return name
