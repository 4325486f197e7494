"""`text2sql run`: every stage in order under one output_dir, skipped when current, on local disk,
on S3 (a real S3 API on loopback) and with MLflow tracking."""

from __future__ import annotations

import json

import pytest

from text2sql import storage
from text2sql.cli import main
from text2sql.config import load_config
from text2sql.pipeline import run_pipeline, summary

FAST = [
    "data.max_samples.train=48",
    "data.max_samples.validation=8",
    "data.max_samples.test=8",
    "training.max_steps=2",
    "training.logging_steps=1",
    "evaluation.max_new_tokens=8",
    "callbacks.progress=lines",
]


def test_run_all_stages_then_skip_everything(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = load_config(None, [f"output_dir={out}", "evaluation.baseline=true", *FAST])
    result = run_pipeline(cfg)
    names = [s.name for s in result.stages]
    assert names == ["prepare", "train", "merge", "evaluate finetuned", "evaluate baseline", "compare"]
    assert not any(s.skipped for s in result.stages)
    for stage in ("data", "adapter", "merged", "eval/finetuned", "eval/baseline"):
        record = json.loads((out / stage / "stage.json").read_text())
        assert record["fingerprint"]
        assert (out / stage / "config.yaml").is_file()
    metrics = json.loads((out / "eval" / "finetuned" / "metrics.json").read_text())
    for key in ("exact_match", "f1_score", "execution_accuracy", "valid_sql_rate", "num_examples", "by_complexity"):
        assert key in metrics
    assert metrics["num_examples"] == 8
    assert (out / "eval" / "finetuned" / "report.html").is_file()
    assert (out / "eval" / "compare.html").is_file()
    assert "execution_accuracy" in summary(result)

    again = run_pipeline(cfg)
    assert [s.skipped for s in again.stages] == [True] * 6
    assert again.metrics["finetuned"] == result.metrics["finetuned"]

    # the CLI says so too
    capsys.readouterr()
    assert main(["run", f"output_dir={out}", "evaluation.baseline=true", *FAST]) == 0
    printed = capsys.readouterr().out
    assert printed.count("up to date, skipped") == 6


def test_changed_config_is_a_different_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = [f"output_dir={out}", *FAST]
    assert main(["run", *args]) == 0
    code = main(["run", *args, "training.learning_rate=1e-3"])
    err = capsys.readouterr().err
    assert code != 0 and "different run" in err and "--force" in err and "Traceback" not in err

    # --force redoes every stage once: the data is prepared by the prepare stage, not again by the
    # stages that train (SFT and RL take it from the stage context).
    import text2sql.stages
    import text2sql.training.grpo
    import text2sql.training.stage

    calls = []

    def counted(where, real):
        return lambda *a, **k: calls.append(where) or real(*a, **k)

    monkeypatch.setattr(text2sql.stages, "prepare", counted("stage", text2sql.stages.prepare))
    monkeypatch.setattr(text2sql.training.stage, "prepare", counted("train", text2sql.training.stage.prepare))
    monkeypatch.setattr(text2sql.training.grpo, "prepare", counted("rl", text2sql.training.grpo.prepare))
    rl = ["rl.enabled=true", "rl.max_steps=1", "rl.num_generations=2", "rl.per_device_train_batch_size=2"]
    rl.append("rl.max_completion_length=8")
    assert main(["run", *args, "training.learning_rate=1e-3", *rl, "--force"]) == 0
    assert calls == ["stage"]
    assert (out / "rl" / "stage.json").is_file()


def test_run_to_s3_leaves_every_artifact_in_the_bucket(bucket, tmp_path):  # noqa: F811
    url = f"s3://{bucket}/run"
    cfg = load_config(None, [f"output_dir={url}", "tracking.backend=tensorboard", *FAST])
    result = run_pipeline(cfg)
    assert result.metrics["finetuned"]["num_examples"] == 8
    fs = storage.filesystem(url)
    keys = {k.split(f"{bucket}/run/", 1)[1] for k in fs.find(f"{bucket}/run")}
    for expected in (
        "config.yaml",
        "data/prepare_report.json",
        "data/stage.json",
        "data/dataset_dict.json",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/stage.json",
        "merged/model.safetensors",
        "merged/config.json",
        "merged/stage.json",
        "eval/finetuned/metrics.json",
        "eval/finetuned/results.csv",
        "eval/finetuned/report.html",
        "eval/finetuned/predictions.jsonl",
    ):
        assert expected in keys, expected
    assert not any(".partial-" in k for k in keys)
    # TensorBoard event files (training, then evaluation) and the tracking record travel too.
    assert "tracking.json" in keys and "logs/_COMPLETE" in keys
    assert any(k.startswith("logs/") and "tfevents" in k for k in keys), sorted(keys)
    # the merged model comes back from the bucket and loads
    from text2sql.models.loading import model_kind

    assert model_kind(f"{url}/merged")[0] == "decoder"


def test_run_with_mlflow_logs_training_and_evaluation_to_one_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cfg = load_config(
        None, [f"output_dir={tmp_path / 'run'}", "tracking.backend=mlflow", "tracking.project=t2s", *FAST]
    )
    run_pipeline(cfg)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("t2s")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    logged = runs[0].data.metrics
    assert "loss" in logged or "train_loss" in logged
    assert any(k.endswith("execution_accuracy") for k in logged), sorted(logged)


def test_interrupted_run_continues_from_its_last_checkpoint(tmp_path, caplog):
    import logging
    import shutil

    from text2sql.training.checkpoints import MARKER

    out = tmp_path / "run"
    cfg = load_config(None, [f"output_dir={out}", *FAST, "training.max_steps=4", "training.save_steps=2"])
    run_pipeline(cfg)
    # As if the process died while checkpoint-4 was being written, before the adapter was saved.
    (out / "checkpoints" / "checkpoint-4" / MARKER).unlink()
    for stage in ("adapter", "merged", "eval"):
        shutil.rmtree(out / stage)
    with caplog.at_level(logging.INFO, logger="text2sql.train"):
        again = run_pipeline(cfg)
    assert [s.skipped for s in again.stages] == [True, False, False, False]
    assert any("resuming from" in r.getMessage() and "checkpoint-2" in r.getMessage() for r in caplog.records)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


RL = [
    "rl.enabled=true",
    "rl.max_steps=1",
    "rl.num_generations=2",
    "rl.per_device_train_batch_size=2",
    "rl.max_completion_length=8",
    "rl.logging_steps=1",
]


def test_run_with_rl_trains_sft_then_grpo_and_compares_them(tmp_path, capsys):
    out = tmp_path / "run"
    args = [f"output_dir={out}", *FAST, *RL]
    result = run_pipeline(load_config(None, args))
    names = [s.name for s in result.stages]
    assert names == ["prepare", "train", "merge", "rl", "evaluate sft", "evaluate finetuned", "compare"]
    rl = json.loads((out / "rl" / "stage.json").read_text())
    assert rl["init_from"] == str(out / "merged") and rl["global_step"] == 1 and rl["method"] == "lora"
    for label, model in (("sft", out / "merged"), ("finetuned", out / "rl")):
        scored = json.loads((out / "eval" / label / "metrics.json").read_text())["run"]["model"]["path"]
        assert scored == str(model)
    compared = json.loads((out / "eval" / "compare.json").read_text())
    assert [r["name"] for r in compared["runs"]] == ["sft", "finetuned"]

    capsys.readouterr()
    assert main(["run", *args]) == 0
    assert capsys.readouterr().out.count("up to date, skipped") == 7
    assert main(["rl", *args]) == 0  # the verb runs the same stage: current
    assert "rl model up to date, skipped" in capsys.readouterr().out
