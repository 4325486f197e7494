"""`text2sql launch vertex`: the CustomJob it builds, checked against the fields of the Vertex AI
REST CustomJob resource (and against the API's own types when the vertex extra is installed),
the checks made before anything is uploaded, and the missing-extra message. No network."""

from __future__ import annotations

import json
import sys

import pytest

from text2sql.cli import main
from text2sql.config import load_config
from text2sql.errors import ConfigError, MissingExtraError
from text2sql.launch import vertex
from text2sql.launch.vertex import staged_config_uri, submit, vertex_job_spec
from vertex_support import IMAGE, write_vertex_config

# Field names of the REST resource (cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJob),
# in the snake_case spelling the Python client takes.
CUSTOM_JOB_FIELDS = {"display_name", "job_spec", "labels", "encryption_spec"}
JOB_SPEC_FIELDS = {
    "worker_pool_specs",
    "scheduling",
    "service_account",
    "network",
    "reserved_ip_ranges",
    "base_output_directory",
    "protected_artifact_location_id",
    "tensorboard",
    "enable_web_access",
    "enable_dashboard_access",
    "experiment",
    "experiment_run",
    "models",
    "persistent_resource_id",
}
WORKER_POOL_FIELDS = {
    "container_spec",
    "python_package_spec",
    "machine_spec",
    "replica_count",
    "nfs_mounts",
    "disk_spec",
}
MACHINE_SPEC_FIELDS = {"machine_type", "accelerator_type", "accelerator_count", "tpu_topology", "reservation_affinity"}
CONTAINER_SPEC_FIELDS = {"image_uri", "command", "args", "env"}


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "vertex.yaml"
    write_vertex_config(path)
    return path


def _dry_run(capsys, *argv):
    assert main(["launch", "vertex", *argv, "--dry-run"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def _check_shape(spec):
    assert set(spec) <= CUSTOM_JOB_FIELDS and spec["display_name"]
    assert set(spec["job_spec"]) <= JOB_SPEC_FIELDS
    for pool in spec["job_spec"]["worker_pool_specs"]:
        assert set(pool) <= WORKER_POOL_FIELDS
        assert set(pool["machine_spec"]) <= MACHINE_SPEC_FIELDS
        assert set(pool["container_spec"]) <= CONTAINER_SPEC_FIELDS
        assert isinstance(pool["replica_count"], int)
    api_checked = vertex.validate_with_api_types(spec)
    if api_checked:  # the vertex extra is installed: the API's own message type accepts the dict
        from google.cloud.aiplatform_v1.types import CustomJob

        rest = json.loads(CustomJob.to_json(CustomJob(**spec)))
        pool = spec["job_spec"]["worker_pool_specs"][0]
        assert rest["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == pool["container_spec"]["image_uri"]
    return api_checked


def test_dry_run_prints_seed_000_job(config_file, capsys):
    spec, err = _dry_run(capsys, str(config_file), "finetune.r=8", "training.num_train_epochs=1")
    _check_shape(spec)
    uri = staged_config_uri(config_file, "gs://bkt/staging")
    assert spec == {
        "display_name": "text2sql-run-t5-sql",
        "job_spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": {
                        "machine_type": "g2-standard-4",
                        "accelerator_type": "NVIDIA_L4",
                        "accelerator_count": 1,
                    },
                    "replica_count": 1,
                    "container_spec": {
                        "image_uri": IMAGE,
                        "command": ["text2sql"],
                        "args": ["run", uri, "finetune.r=8", "training.num_train_epochs=1"],
                    },
                }
            ],
            "base_output_directory": {"output_uri_prefix": "gs://bkt/runs/t5-sql"},
        },
    }
    assert uri.startswith("gs://bkt/staging/text2sql/configs/vertex-") and uri.endswith(".yaml")
    assert f"would upload {config_file} to {uri}, then create this job in projects/proj/locations/us-central1" in err


def test_staged_uri_follows_the_content(config_file):
    first = staged_config_uri(config_file, "gs://bkt/staging/")
    assert staged_config_uri(config_file, "gs://bkt/staging") == first
    config_file.write_text(config_file.read_text() + "\n# changed\n")
    assert staged_config_uri(config_file, "gs://bkt/staging") != first
    with pytest.raises(ConfigError, match="set launch.staging_bucket"):
        staged_config_uri(config_file, None)


def test_multi_gpu_and_multi_node(config_file, capsys):
    spec, _ = _dry_run(
        capsys,
        str(config_file),
        "--accelerator-count",
        "4",
        "--accelerator-type",
        "NVIDIA_TESLA_A100",
        "--machine-type",
        "a2-highgpu-4g",
        "--verb",
        "train",
    )
    _check_shape(spec)
    (pool,) = spec["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {
        "machine_type": "a2-highgpu-4g",
        "accelerator_type": "NVIDIA_TESLA_A100",
        "accelerator_count": 4,
    }
    assert pool["container_spec"]["command"] == [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "4",
        "-m",
        "text2sql",
    ]
    assert pool["container_spec"]["args"][0] == "train"

    spec, _ = _dry_run(
        capsys,
        str(config_file),
        "--replica-count",
        "3",
        "--accelerator-count",
        "2",
        "--machine-type",
        "g2-standard-24",
        "--image",
        "gcr.io/other/image:2",
    )
    _check_shape(spec)
    primary, workers = spec["job_spec"]["worker_pool_specs"]
    assert (primary["replica_count"], workers["replica_count"]) == (1, 2)  # Vertex: pool 0 holds exactly one
    assert primary["container_spec"] == workers["container_spec"]
    command = primary["container_spec"]["command"]
    assert command[:2] == ["sh", "-c"] and "--num_machines 3 --num_processes 6" in command[2]
    assert '--machine_rank "$RANK"' in command[2] and command[2].endswith('"$@"')
    assert primary["container_spec"]["image_uri"] == "gcr.io/other/image:2"

    spec, _ = _dry_run(capsys, str(config_file), "--accelerator-count", "0", "--machine-type", "n1-standard-8")
    assert spec["job_spec"]["worker_pool_specs"][0]["machine_spec"] == {"machine_type": "n1-standard-8"}
    assert spec["job_spec"]["worker_pool_specs"][0]["container_spec"]["command"] == ["text2sql"]


def test_remote_config_is_used_in_place(config_file, capsys, monkeypatch, tmp_path):
    from text2sql.storage import upload

    url = upload(config_file, "memory://t2s-launch/configs/vertex.yaml")
    spec, err = _dry_run(capsys, url)
    assert spec["job_spec"]["worker_pool_specs"][0]["container_spec"]["args"] == ["run", url]
    assert "would create this job" in err and "upload" not in err


def test_problems_are_found_before_anything_is_sent(config_file, capsys, tmp_path):
    local_csv = tmp_path / "train.csv"
    local_csv.write_text("input_text,sql\n")
    code = main(["launch", "vertex", str(config_file), "output_dir=runs/local", f"data.train={local_csv}", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "2 problem(s)" in err and "output_dir=runs/local is a local folder" in err
    assert f"data.train={local_csv} is a path on this machine" in err

    assert main(["launch", "vertex", str(config_file), "launch.image_uri=null", "--dry-run"]) == 2
    assert "no training image: set launch.image_uri or pass --image" in capsys.readouterr().err
    assert main(["launch", "vertex", str(config_file), "launch.staging_bucket=null", "--dry-run"]) == 2
    assert "set launch.staging_bucket=gs://BUCKET/staging" in capsys.readouterr().err
    assert main(["launch", "vertex", str(config_file), "launch.replica_count=0", "--dry-run"]) == 2
    assert "launch.replica_count" in capsys.readouterr().err  # a config error, reported by load_config


def test_spec_defaults_from_the_launch_section():
    cfg = load_config(
        None,
        [
            "output_dir=gs://b/r",
            f"launch.image_uri={IMAGE}",
            "launch.accelerator_type=NVIDIA_TESLA_T4",
            "launch.machine_type=n1-standard-8",
            "launch.replica_count=2",
        ],
    )
    spec = vertex_job_spec(cfg, config_uri="gs://b/c.yaml", command="train", display_name="mine")
    pools = spec["job_spec"]["worker_pool_specs"]
    assert spec["display_name"] == "mine" and [p["replica_count"] for p in pools] == [1, 1]
    assert pools[0]["machine_spec"] == {
        "machine_type": "n1-standard-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 1,
    }
    with pytest.raises(ConfigError, match="must be one of run, train"):
        vertex_job_spec(cfg, config_uri="gs://b/c.yaml", command="serve")


def test_missing_vertex_extra_names_the_pip_command(config_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform_v1", None)  # `import` now fails
    with pytest.raises(
        MissingExtraError, match=r"needs the 'google-cloud-aiplatform' package: pip install 'text2sql\[vertex\]'"
    ):
        submit({"display_name": "x", "job_spec": {}}, "proj", "us-central1")
    assert main(["launch", "vertex", str(config_file)]) == 2  # fails before uploading the config
    assert "pip install 'text2sql[vertex]'" in capsys.readouterr().err


def test_submit_sends_the_spec_to_the_regional_endpoint(monkeypatch):
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1", reason="the vertex extra is not installed")
    sent = {}

    class FakeJobServiceClient:  # stands in for the gRPC client; records the request instead of sending it
        def __init__(self, client_options):
            sent["endpoint"] = client_options["api_endpoint"]

        def create_custom_job(self, parent, custom_job):
            sent.update(parent=parent, job=custom_job)
            return aiplatform_v1.types.CustomJob(name=f"{parent}/customJobs/123", display_name=custom_job.display_name)

    monkeypatch.setattr(aiplatform_v1, "JobServiceClient", FakeJobServiceClient)
    cfg = load_config(None, ["output_dir=gs://b/r", f"launch.image_uri={IMAGE}"])
    spec = vertex_job_spec(cfg, config_uri="gs://b/c.yaml")
    name = submit(spec, "proj", "europe-west4")
    assert name == "projects/proj/locations/europe-west4/customJobs/123"
    assert sent["endpoint"] == "europe-west4-aiplatform.googleapis.com"
    assert sent["job"].job_spec.worker_pool_specs[0].machine_spec.accelerator_count == 1
    assert vertex.console_url(name).endswith("/locations/europe-west4/training/123?project=proj")


def test_the_bundled_splits_travel_with_the_package(config_file, capsys, tmp_path, monkeypatch):
    # Even beside a folder named like one, `bundled:followup` names the packaged split, not a path.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bundled:followup").mkdir()
    spec, err = _dry_run(capsys, str(config_file), "data.train=bundled:followup", "data.validation=bundled")
    assert "path on this machine" not in err and spec["job_spec"]
