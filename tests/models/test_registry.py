"""Vertex AI Model Registry names: parsed, resolved to the model's artifact folder through the real
`google-cloud-aiplatform` client (against a loopback stand-in of the API) and fetched through the
storage cache; registration requests built with the real API types and sent the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from text2sql import storage
from text2sql.errors import ConfigError, Text2SQLError
from text2sql.models.loading import open_model, resolve_model
from text2sql.models.registry import (
    ModelResource,
    parse_model_resource,
    registry_labels,
    upload_model,
    upload_request,
    validate_upload_request,
)
from vertex_support import fake_vertex  # noqa: F401  (fixture)

pytest.importorskip("google.cloud.aiplatform_v1")

NAME = "projects/my-proj/locations/us-central1/models/123"


def test_parse_resource_names():
    assert parse_model_resource(NAME) == ModelResource("my-proj", "us-central1", "123")
    versioned = parse_model_resource(f"{NAME}@2")
    assert versioned.version == "2" and versioned.name == f"{NAME}@2" and versioned.parent.endswith("us-central1")
    for other in ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "gs://b/models/123", "projects/p/models/1", "runs/x/merged",
                  f"{NAME}/extra", f"{NAME}@"):  # fmt: skip
        assert parse_model_resource(other) is None, other


def test_registry_name_resolves_to_its_artifact_folder_through_the_cache(
    fake_vertex,  # noqa: F811
    bucket,
    tiny_llama_path,
):
    storage.upload(tiny_llama_path, f"s3://{bucket}/models/merged")
    fake_vertex.models[NAME] = {"name": NAME, "versionId": "2", "artifactUri": f"s3://{bucket}/models/merged"}
    local = resolve_model(f"{NAME}@2")
    assert local.startswith(str(storage.cache_root())) and (Path(local) / "config.json").is_file()
    assert fake_vertex.requests[-1][:2] == ("GET", f"/v1/{NAME}@2")
    model = open_model(NAME)  # the default version, as transformers sees it: a plain folder
    assert model.kind == "decoder" and model.path == local

    with pytest.raises(Text2SQLError) as err:
        resolve_model(f"{NAME}@7")
    assert "\n" not in str(err.value) and "not in the Vertex AI Model Registry" in str(err.value)


def test_upload_request_is_a_valid_api_object_and_registers(fake_vertex):  # noqa: F811
    labels = registry_labels("HuggingFaceTB/SmolLM2-135M-Instruct", "lora", {"execution_accuracy": 0.8137, "n": 3})
    assert labels == {
        "created-by": "text2sql",
        "base-model": "smollm2-135m-instruct",
        "method": "lora",
        "execution-accuracy": "0-8137",
    }
    request = upload_request(
        resource_parent="projects/my-proj/locations/us-central1",
        artifact_uri="gs://bucket/runs/x/merged",
        display_name="x",
        serving_image="us-docker.pkg.dev/p/r/text2sql:1",
        labels=labels,
        parent_model=f"{NAME}@3",
    )
    assert validate_upload_request(request)
    assert request["parent_model"] == NAME
    spec = request["model"]["container_spec"]
    assert spec["args"][:3] == ["serve", "--model", "$(AIP_STORAGE_URI)"]

    registered = upload_model(request)
    assert registered == "projects/my-proj/locations/us-central1/models/101@1"
    method, path, body = fake_vertex.requests[-1]
    assert (method, path) == ("POST", "/v1/projects/my-proj/locations/us-central1/models:upload")
    assert body["model"]["artifactUri"] == "gs://bucket/runs/x/merged" and body["parentModel"] == NAME
    assert body["model"]["containerSpec"]["predictRoute"] == "/vertex/predict"

    with pytest.raises(ConfigError) as err:
        upload_request(resource_parent="projects/p/locations/l", artifact_uri="runs/x/merged", display_name="x",
                       serving_image="i", labels={})  # fmt: skip
    assert "gs://" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        validate_upload_request({"parent": "projects/p/locations/l", "model": {"no_such_field": 1}})


def test_evaluate_a_registered_model_by_its_name(fake_vertex, tiny_llama_path, tmp_path, capsys):  # noqa: F811
    """The seed's last step: evaluation loads the model from the registry by its resource name."""
    from text2sql.cli import main

    fake_vertex.models[NAME] = {"name": NAME, "versionId": "1", "artifactUri": str(tiny_llama_path)}
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", f"{NAME}@1", "--data", "bundled", "--output", str(out), "--max-samples", "2",
            "--max-new-tokens", "4", "--no-loss", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "metrics.json").is_file()
    assert fake_vertex.requests[-1][:2] == ("GET", f"/v1/{NAME}@1")
