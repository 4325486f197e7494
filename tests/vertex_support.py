"""A stand-in for the Vertex AI REST API on loopback, for the real `google-cloud-aiplatform` clients
(as moto stands in for S3): it answers the calls text2sql makes with the JSON the service returns,
and records every request, so tests check what the real client library sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import pytest
import yaml

IMAGE = "us-docker.pkg.dev/proj/train/text2sql:1"


def write_vertex_config(path, **launch) -> None:
    """A run config for Vertex AI: data and output on gs://, a launch section (plus `launch`)."""
    path.write_text(
        yaml.safe_dump(
            {
                "output_dir": "gs://bkt/runs/t5-sql",
                "model": {"name_or_path": "gs://bkt/models/t5-large"},
                "data": {"train": "gs://bkt/data/train.csv", "validation": "gs://bkt/data/val.csv"},
                "launch": {"project": "proj", "image_uri": IMAGE, "staging_bucket": "gs://bkt/staging", **launch},
            }
        )
    )


class FakeVertex:
    def __init__(self) -> None:
        self.models: dict[str, dict] = {}  # "projects/P/locations/L/models/ID" -> Model JSON
        self.requests: list[tuple[str, str, dict | None]] = []  # (method, path, body)
        self.next_id = 100

    def handle(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        self.requests.append((method, path, body))
        name = path.removeprefix("/v1/")
        if method == "GET":
            base, _, version = name.partition("@")
            model = self.models.get(base)
            if model is None or (version and version not in (model.get("versionId"), "default")):
                return 404, {"error": {"code": 404, "message": f"Model {name} not found.", "status": "NOT_FOUND"}}
            return 200, model
        if method == "POST" and name.endswith("/models:upload"):
            parent = name.removesuffix("/models:upload")
            self.next_id += 1
            model_name = f"{parent}/models/{self.next_id}"
            self.models[model_name] = {**body["model"], "name": model_name, "versionId": "1"}
            response = {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                "model": model_name,
                "modelVersionId": "1",
            }
            return 200, {"name": f"{parent}/operations/{self.next_id}", "done": True, "response": response}
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}", "status": "NOT_FOUND"}}


@pytest.fixture
def fake_vertex(monkeypatch) -> Iterator[FakeVertex]:
    fake = FakeVertex()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(method, unquote(urlparse(self.path).path), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._answer("GET")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TEXT2SQL_VERTEX_API_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield fake
    server.shutdown()
    server.server_close()
