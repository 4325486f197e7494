"""Models in the Vertex AI Model Registry: a resource name `projects/P/locations/L/models/ID[@VERSION]`
works wherever a model is named (`model.name_or_path`, `--model`), and a run's merged model can be
registered there with the container that serves it.

Resolution asks the registry for the model's artifact URI (`ModelService.GetModel`), then fetches
that folder through the remote-storage cache like any gs:// model. Registration builds the
`UploadModelRequest` as a plain dict (snake_case, as `aiplatform_v1.types.UploadModelRequest(**d)`
takes it) so that `--dry-run` prints exactly what is sent, then sends it with `ModelServiceClient`.

The API endpoint is `{location}-aiplatform.googleapis.com`, or `TEXT2SQL_VERTEX_API_ENDPOINT` (a
private endpoint, a proxy or an emulator); a plain-http endpoint is spoken to over REST with
anonymous credentials, as an emulator expects. Needs `pip install 'text2sql[vertex]'`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.errors import ConfigError
from text2sql.models.vertex_api import api_call, require_sdk, valid_as

ENDPOINT_ENV = "TEXT2SQL_VERTEX_API_ENDPOINT"
_NAME = re.compile(
    r"^projects/(?P<project>[^/@\s]+)/locations/(?P<location>[^/@\s]+)/models/(?P<model>[^/@\s]+)(?:@(?P<version>[^/@\s]+))?$"
)
SERVING_PORT = 8080
PREDICT_ROUTE = "/vertex/predict"
HEALTH_ROUTE = "/health"
_LABEL = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class ModelResource:
    project: str
    location: str
    model_id: str
    version: str | None = None

    @property
    def name(self) -> str:
        """The resource name, with its version (or alias) when it has one."""
        base = f"projects/{self.project}/locations/{self.location}/models/{self.model_id}"
        return f"{base}@{self.version}" if self.version else base

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"


def parse_model_resource(text: str) -> ModelResource | None:
    """The registry model `text` names, or None when it is no registry resource name."""
    match = _NAME.match(str(text).strip())
    if not match:
        return None
    return ModelResource(match["project"], match["location"], match["model"], match["version"])


def is_model_resource(text: str) -> bool:
    return parse_model_resource(text) is not None


def model_client(location: str) -> Any:
    """A `ModelServiceClient` for `location` (see the module docstring for the endpoint)."""
    require_sdk()
    from google.cloud import aiplatform_v1

    endpoint = os.environ.get(ENDPOINT_ENV) or f"{location}-aiplatform.googleapis.com"
    options = {"api_endpoint": endpoint}
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        return aiplatform_v1.ModelServiceClient(
            credentials=AnonymousCredentials(), transport="rest", client_options=options
        )
    return aiplatform_v1.ModelServiceClient(client_options=options)


def artifact_uri(resource: ModelResource) -> str:
    """Where the registered model's files are (its `artifact_uri`)."""
    client = model_client(resource.location)
    with api_call(
        f"Vertex AI refused to read {resource.name}",
        "check the project, region and your permissions (aiplatform.models.get)",
        not_found=f"{resource.name} is not in the Vertex AI Model Registry; check the project, region and ID",
    ):
        model = client.get_model(name=resource.name)
    if not model.artifact_uri:
        raise ConfigError(
            f"{resource.name} has no artifact URI (a model without files, e.g. AutoML); text2sql needs one"
        )
    return str(model.artifact_uri)


# --- registration -----------------------------------------------------------------------------------


def label_value(value: Any) -> str:
    """A value as a Vertex AI label allows: lowercase letters, digits, `_` and `-`, at most 63 characters."""
    if isinstance(value, float):
        value = f"{value:.4f}"
    return _LABEL.sub("-", str(value).lower()).strip("-")[:63] or "none"


def registry_labels(base_model: str, method: str, metrics: dict[str, Any] | None) -> dict[str, str]:
    labels = {"created-by": "text2sql", "base-model": label_value(Path(base_model).name), "method": label_value(method)}
    for key in ("execution_accuracy", "exact_match", "f1_score"):
        if metrics and isinstance(metrics.get(key), (int, float)):
            labels[key.replace("_", "-")] = label_value(float(metrics[key]))
    return labels


def upload_request(
    *,
    resource_parent: str,
    artifact_uri: str,
    display_name: str,
    serving_image: str,
    labels: dict[str, str],
    description: str = "",
    parent_model: str | None = None,
) -> dict[str, Any]:
    """The `UploadModelRequest`: the model folder, the container that serves it (`text2sql serve`
    reading the folder Vertex copies from `artifact_uri`, answering Vertex's predict route) and labels."""
    if not artifact_uri.startswith("gs://"):
        raise ConfigError(
            f"the Model Registry reads model files from gs://, not {artifact_uri}; set output_dir=gs://BUCKET/runs/NAME"
        )
    model: dict[str, Any] = {
        "display_name": display_name[:128],
        "description": description,
        "artifact_uri": artifact_uri,
        "labels": labels,
        "container_spec": {
            "image_uri": serving_image,
            "command": ["text2sql"],
            "args": ["serve", "--model", "$(AIP_STORAGE_URI)", "--host", "0.0.0.0", "--port", "$(AIP_HTTP_PORT)"],
            "ports": [{"container_port": SERVING_PORT}],
            "predict_route": PREDICT_ROUTE,
            "health_route": HEALTH_ROUTE,
        },
    }
    request: dict[str, Any] = {"parent": resource_parent, "model": model}
    if parent_model:  # a new version of a registered model
        parsed = parse_model_resource(parent_model)
        if parsed is None:
            raise ConfigError(f"launch.parent_model={parent_model} is not projects/P/locations/L/models/ID")
        request["parent_model"] = f"{parsed.parent}/models/{parsed.model_id}"
    return request


def validate_upload_request(request: dict[str, Any]) -> bool:
    """Build the real API type when the SDK is installed (unknown fields fail here); False when not."""
    return valid_as("UploadModelRequest", request, "the Model Registry upload is not valid")


def upload_model(request: dict[str, Any]) -> str:
    """Send the upload and wait for it; the registered model's resource name with its version."""
    location = request["parent"].split("/")[3]
    client = model_client(location)
    from google.cloud.aiplatform_v1.types import UploadModelRequest

    with api_call(
        f"Vertex AI refused to register the model in {request['parent']}",
        "check launch.project, launch.region and your permissions (aiplatform.models.upload)",
    ):
        response = client.upload_model(request=UploadModelRequest(**request)).result()
    name = str(response.model)
    return f"{name}@{response.model_version_id}" if response.model_version_id else name


def dump_request(request: dict[str, Any]) -> str:
    return json.dumps(request, indent=2)


def run_upload_request(cfg: Config, model_uri: str, metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The upload of a run's fine-tuned model at `model_uri`, from the config's `launch` section."""
    launch = cfg.launch
    problems = []
    if not launch.project:
        problems.append("no Google Cloud project: set launch.project")
    image = launch.serving_image_uri or launch.image_uri
    if not image:
        problems.append("no serving image: set launch.serving_image_uri (or launch.image_uri)")
    if problems:
        raise ConfigError("cannot register the model: " + "; ".join(problems))
    name = launch.model_display_name or cfg.tracking.run_name or Path(str(cfg.output_dir).rstrip("/")).name
    headline = {k: metrics[k] for k in ("execution_accuracy", "exact_match", "f1_score") if metrics and k in metrics}
    return upload_request(
        resource_parent=f"projects/{launch.project}/locations/{launch.region}",
        artifact_uri=model_uri,
        display_name=name,
        serving_image=str(image),
        labels=registry_labels(cfg.model.name_or_path, cfg.finetune.method, metrics),
        description=f"text2sql: {cfg.finetune.method} fine-tune of {cfg.model.name_or_path}; test metrics {headline}",
        parent_model=launch.parent_model,
    )


def check_registration(cfg: Config, remote_output: str | None, *, need_sdk: bool = True) -> None:
    """Before a run that ends by registering its model: everything registration needs, checked first."""
    if not (remote_output or "").startswith("gs://"):
        raise ConfigError(
            f"launch.register_model: the registry reads model files from gs://, and output_dir={cfg.output_dir} is "
            "not there; set output_dir=gs://BUCKET/runs/NAME"
        )
    run_upload_request(cfg, str(remote_output), None)
    if need_sdk:
        require_sdk("launch.register_model")
