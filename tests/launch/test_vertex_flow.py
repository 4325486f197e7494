"""The rest of the Vertex AI flow, offline: `launch vertex-register` (the UploadModelRequest, built
with the API's own types, and sent with the real client to a loopback stand-in of the API),
`launch vertex-pipeline` (a KFP pipeline compiled offline: its steps, their order and the registered
name handed from register to evaluate), `launch vertex --register`, the Register stage of a run,
and the one-line messages for missing packages."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from text2sql.cli import main
from text2sql.config import load_config
from text2sql.stages import Register, StageContext
from vertex_support import IMAGE, fake_vertex, write_vertex_config  # noqa: F401  (fake_vertex: a fixture)

pytest.importorskip("google.cloud.aiplatform_v1")
pytest.importorskip("kfp")

SERVING = "us-docker.pkg.dev/proj/serve/text2sql:1"


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "vertex.yaml"
    write_vertex_config(path, serving_image_uri=SERVING)
    return path


def test_register_dry_run_prints_a_valid_upload_request(config_file, capsys):
    assert main(["launch", "vertex-register", str(config_file), "--dry-run"]) == 0
    out = capsys.readouterr()
    request = json.loads(out.out)
    from google.cloud.aiplatform_v1.types import UploadModelRequest

    UploadModelRequest(**request)  # the API's own type takes it as printed
    assert request["parent"] == "projects/proj/locations/us-central1"
    model = request["model"]
    assert model["artifact_uri"] == "gs://bkt/runs/t5-sql/merged" and model["display_name"] == "t5-sql"
    assert model["container_spec"]["image_uri"] == SERVING
    assert model["labels"]["base-model"] == "t5-large" and model["labels"]["method"] == "lora"
    assert "would upload this model" in out.err


def test_register_sends_the_request_and_writes_the_name(config_file, fake_vertex, tmp_path, capsys, monkeypatch):  # noqa: F811
    # No Cloud Storage here: record the marking instead (tests/storage checks mark_complete on S3).
    marked = []
    monkeypatch.setattr("text2sql.storage.mark_complete", marked.append)
    name_file = tmp_path / "out" / "model.txt"
    argv = ["launch", "vertex-register", str(config_file), "--model", "gs://bkt/elsewhere/merged"]
    assert main([*argv, "--name-file", str(name_file)]) == 0
    name = name_file.read_text()
    assert name == "projects/proj/locations/us-central1/models/101@1"
    assert f"registered {name}" in capsys.readouterr().out
    method, path, body = fake_vertex.requests[-1]
    assert (method, path) == ("POST", "/v1/projects/proj/locations/us-central1/models:upload")
    assert body["model"]["artifactUri"] == "gs://bkt/elsewhere/merged"
    assert marked == ["gs://bkt/elsewhere/merged"]  # a folder written through FUSE becomes fetchable


def test_register_stage_registers_once(fake_vertex, tmp_path):  # noqa: F811
    """The last stage of a run with launch.register_model: the model uploaded already, its metrics as labels."""
    work = tmp_path / "mirror"
    (work / "merged").mkdir(parents=True)
    (work / "eval" / "finetuned").mkdir(parents=True)
    (work / "eval" / "finetuned" / "metrics.json").write_text(json.dumps({"execution_accuracy": 0.8137}))
    cfg = load_config(
        None,
        [f"output_dir={work}", "launch.register_model=true", "launch.project=proj", f"launch.image_uri={IMAGE}"],
    )
    ctx = StageContext(cfg, remote="gs://bkt/runs/x")
    outcome = Register().run(ctx)
    assert not outcome.skipped and outcome.result == "projects/proj/locations/us-central1/models/101@1"
    record = json.loads((work / "registry" / "registered.json").read_text())
    assert record["model"] == outcome.result
    assert record["request"]["model"]["artifact_uri"] == "gs://bkt/runs/x/merged"
    assert record["request"]["model"]["labels"]["execution-accuracy"] == "0-8137"
    uploads = len(fake_vertex.requests)
    again = Register().run(ctx)
    assert again.skipped and again.result == outcome.result and len(fake_vertex.requests) == uploads

    local = StageContext(cfg)  # a local output_dir: the registry cannot read it
    with pytest.raises(Exception) as err:
        Register().run(local)
    assert "gs://" in str(err.value) and "\n" not in str(err.value)


def test_launch_with_register_checks_registration_first(config_file, capsys):
    assert main(["launch", "vertex", str(config_file), "--register", "--dry-run"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert main(["launch", "vertex", str(config_file), "--register", "--dry-run", "--verb", "train"]) == 2
    assert "--register needs --verb run" in capsys.readouterr().err
    assert spec["job_spec"]["worker_pool_specs"][0]["container_spec"]["args"][-1] == "launch.register_model=true"
    # no serving image anywhere: refused before anything is uploaded or submitted
    assert main(["launch", "vertex", str(config_file), "--register", "--dry-run", "launch.serving_image_uri=null",
                 "launch.image_uri=null", "--image", IMAGE]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "serving image" in err and err.count("\n") == 1


def _tasks(spec):
    return spec["root"]["dag"]["tasks"]


def test_pipeline_compiles_offline(config_file, tmp_path, capsys):
    out = tmp_path / "pipeline.yaml"
    assert main(["launch", "vertex-pipeline", str(config_file), "--compile", str(out), "finetune.r=8"]) == 0
    assert "prepare → train → merge → register → evaluate" in capsys.readouterr().out
    spec = yaml.safe_load(out.read_text())
    tasks = _tasks(spec)
    assert set(tasks) == {"prepare", "train", "merge", "register", "evaluate"}
    order = {name: task.get("dependentTasks", []) for name, task in tasks.items()}
    assert order == {
        "prepare": [],
        "train": ["prepare"],
        "merge": ["train"],
        "register": ["merge"],
        "evaluate": ["register"],
    }
    # evaluate takes the registered name from register's output parameter
    model_input = tasks["evaluate"]["inputs"]["parameters"]["model"]["taskOutputParameter"]
    assert model_input == {"outputParameterKey": "model_name", "producerTask": "register"}
    executors = spec["deploymentSpec"]["executors"]
    container = {
        name: executors[tasks[name]["componentRef"]["name"].replace("comp-", "exec-")]["container"] for name in tasks
    }
    assert all(c["image"] == IMAGE and c["command"] == ["text2sql"] for c in container.values())
    staged = container["train"]["args"][1]
    assert staged.startswith("gs://bkt/staging/text2sql/configs/vertex-")  # the uploaded config
    assert container["train"]["args"] == ["train", staged, "finetune.r=8", "output_dir=/gcs/bkt/runs/t5-sql"]
    assert container["train"]["resources"]["accelerator"]["resourceType"] == "NVIDIA_L4"
    assert "resources" not in container["prepare"]
    assert container["evaluate"]["args"][:3] == ["evaluate", "--model", "{{$.inputs.parameters['model']}}"]
    assert container["register"]["args"][-1] == "{{$.outputs.parameters['model_name'].output_file}}"
    assert not any(t["cachingOptions"].get("enableCache") for t in tasks.values())


def test_pipeline_dry_run_and_full_fine_tuning(config_file, capsys):
    assert (
        main(["launch", "vertex-pipeline", str(config_file), "--dry-run", "finetune.method=full", "rl.enabled=true"])
        == 0
    )
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert [line.split(":")[0].strip() for line in lines[:5]] == ["prepare", "train", "rl", "register", "evaluate"]
    job = json.loads("\n".join(lines[5:]))
    assert job["pipeline_root"] == "gs://bkt/staging/pipeline_root" and job["project"] == "proj"
    assert job["template_path"].startswith("gs://bkt/staging/pipeline_root/templates/pipeline-")
    assert "then submit this PipelineJob" in out.err


def test_pipeline_refuses_local_runs_and_names_missing_kfp(config_file, capsys, monkeypatch):
    assert main(["launch", "vertex-pipeline", str(config_file), "--dry-run", "output_dir=runs/local"]) == 2
    err = capsys.readouterr().err
    assert "output_dir=runs/local" in err and err.count("\n") == 1
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kfp" else real(name, *a))
    assert main(["launch", "vertex-pipeline", str(config_file), "--dry-run"]) == 2
    assert "pip install 'text2sql[vertex]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform_v1", None)
    assert main(["launch", "vertex-register", str(config_file)]) == 2
    assert "pip install 'text2sql[vertex]'" in capsys.readouterr().err
