"""Experiment tracking: a real 2-step transformers Trainer logs to MLflow (local file store) or
TensorBoard, then `log_evaluation` adds evaluation metrics and the config to the same run, read
back with each tracker's own reader."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from text2sql.config import load_config
from text2sql.errors import MissingExtraError
from text2sql.tracking import (
    RECORD,
    TrackingRunCallback,
    flatten_metrics,
    log_evaluation,
    report_to,
    setup_tracking,
    tracking_env,
)
from text2sql.training.resources import ResourceMonitorCallback

EVAL_METRICS = {
    "execution_accuracy": 0.75,
    "exact_match": 0.5,
    "n": 8,
    "model": "runs/x/model",  # not a number: left out
    "by_complexity": {"join": {"execution_accuracy": 0.25}, "basic SQL": {"execution_accuracy": 1.0}},
}


def _config(tmp_path, backend):
    return load_config(
        None, [f"output_dir={tmp_path / 'run'}", f"tracking.backend={backend}", "tracking.project=t2s-test"]
    )


def _isolated_env(monkeypatch, cfg):
    # setup_tracking writes os.environ; delenv first so that monkeypatch restores these keys afterwards.
    for key in [*tracking_env(cfg), "MLFLOW_RUN_ID", "WANDB_RUN_ID"]:
        monkeypatch.delenv(key, raising=False)


def _train_two_steps(cfg, report):
    """A real Trainer run: 2 optimizer steps of a 1-layer Llama (hidden 16) on random tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=32,
        )
    )
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 64, (4, 8)).tolist()]
    args = TrainingArguments(
        output_dir=str(cfg.output_dir) + "/checkpoints",
        max_steps=2,
        per_device_train_batch_size=2,
        logging_steps=1,
        save_strategy="no",
        report_to=report,
        run_name="tiny",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[TrackingRunCallback(cfg.output_dir)])
    # as build_trainer registers it: first, so that the trackers read its figures
    trainer.callback_handler.callbacks.insert(0, ResourceMonitorCallback())
    trainer.train()
    return trainer


def test_report_to_and_env(tmp_path, monkeypatch):
    assert report_to(_config(tmp_path, "none")) == []
    assert report_to(_config(tmp_path, "mlflow")) == ["mlflow"]
    assert tracking_env(_config(tmp_path, "mlflow")) == {"MLFLOW_EXPERIMENT_NAME": "t2s-test"}
    assert tracking_env(_config(tmp_path, "tensorboard")) == {"TENSORBOARD_LOGGING_DIR": str(tmp_path / "run" / "logs")}
    assert tracking_env(_config(tmp_path, "wandb")) == {"WANDB_PROJECT": "t2s-test"}
    # --resume continues the recorded run instead of starting another.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RECORD).write_text(json.dumps({"mlflow": {"run_id": "abc"}}))
    assert tracking_env(_config(tmp_path, "mlflow"), resume=True)["MLFLOW_RUN_ID"] == "abc"


def test_flatten_metrics_keeps_numbers_only():
    flat = flatten_metrics(EVAL_METRICS, "test/")
    assert flat == {
        "test/execution_accuracy": 0.75,
        "test/exact_match": 0.5,
        "test/n": 8.0,
        "test/by_complexity/join/execution_accuracy": 0.25,
        "test/by_complexity/basic SQL/execution_accuracy": 1.0,
    }
    assert flatten_metrics({"a": True, "b": float("nan"), "c(x)": 1}) == {"c_x_": 1.0}


def test_missing_backend_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    message = r"tracking.backend=wandb needs the 'wandb' package: pip install 'text2sql\[wandb\]'"
    with pytest.raises(MissingExtraError, match=message):
        setup_tracking(_config(tmp_path, "wandb"))


def test_mlflow_training_and_evaluation_share_one_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    cfg = _config(tmp_path, "mlflow")
    _isolated_env(monkeypatch, cfg)
    uri = f"file://{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    trainer = _train_two_steps(cfg, setup_tracking(cfg))

    record = json.loads((tmp_path / "run" / RECORD).read_text())
    assert record["global_step"] == 2 and record["mlflow"]["tracking_uri"] == uri
    logged = log_evaluation(cfg, EVAL_METRICS)
    assert logged["test/execution_accuracy"] == 0.75

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("t2s-test")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [record["mlflow"]["run_id"]]  # one run, not two
    run = client.get_run(record["mlflow"]["run_id"])
    assert "loss" in run.data.metrics  # from the trainer's MLflowCallback
    for key in ("resources/cpu_percent", "resources/rss_mb", "throughput/samples_per_second"):
        assert key in run.data.metrics, sorted(run.data.metrics)
    assert run.data.metrics["resources/rss_mb"] > 0
    assert run.data.metrics["test/execution_accuracy"] == 0.75
    assert run.data.metrics["test/by_complexity/join/execution_accuracy"] == 0.25
    history = client.get_metric_history(run.info.run_id, "test/exact_match")
    assert [(m.step, m.value) for m in history] == [(trainer.state.global_step, 0.5)]
    assert run.data.params["text2sql.tracking.backend"] == "mlflow"
    assert run.data.params["learning_rate"]  # the trainer's own parameters are still there
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "text2sql")]
    assert artifacts == ["text2sql/config.yaml"]
    # Evaluating again (another split) adds to the same run; params already there are kept.
    log_evaluation(cfg, {"execution_accuracy": 0.5}, prefix="validation/")
    assert client.get_run(run.info.run_id).data.metrics["validation/execution_accuracy"] == 0.5


def test_tensorboard_scalars_from_training_and_evaluation(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _config(tmp_path, "tensorboard")
    _isolated_env(monkeypatch, cfg)
    _train_two_steps(cfg, setup_tracking(cfg))
    log_evaluation(cfg, EVAL_METRICS)

    log_dir = tmp_path / "run" / "logs"
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 2  # trainer's file + evaluation's file
    events = EventAccumulator(str(log_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss" in tags
    for key in (
        "resources/cpu_percent",
        "resources/rss_mb",
        "throughput/samples_per_second",
        "throughput/tokens_per_second",
    ):
        assert f"train/{key}" in tags, key
    assert [(e.step, e.value) for e in events.Scalars("test/execution_accuracy")] == [(2, 0.75)]
    assert "test/by_complexity/basic SQL/execution_accuracy" in tags
    assert "text2sql/config/text_summary" in events.Tags()["tensors"]


def test_no_backend_logs_nothing(tmp_path):
    assert log_evaluation(_config(tmp_path, "none"), EVAL_METRICS) == {}
    assert not (tmp_path / "run").exists()


def test_unknown_mlflow_run_is_one_line_error(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from text2sql.errors import Text2SQLError

    cfg = _config(tmp_path, "mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"file://{tmp_path / 'mlruns'}"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RECORD).write_text(json.dumps({"mlflow": {"run_id": "0" * 32, "tracking_uri": uri}}))
    with pytest.raises(Text2SQLError, match=f"cannot log evaluation metrics to MLflow at {uri}: ") as info:
        log_evaluation(cfg, EVAL_METRICS)
    assert "\n" not in str(info.value) and "tracking.json" in str(info.value)


def test_vertex_experiments_dry_run_records_every_call(tmp_path, monkeypatch):
    """tracking.backend=vertex with tracking.dry_run: training's time series and evaluation's metrics
    go to one experiment run; each SDK call is written down instead of sent."""
    from text2sql.tracking import tracking_callbacks
    from text2sql.tracking.vertex import DRY_RUN_FILE

    cfg = load_config(
        None,
        [f"output_dir={tmp_path / 'run'}", "tracking.backend=vertex", "tracking.dry_run=true",
         "tracking.project=queryhub-experiments", "tracking.run_name=T5_Large LoRA", "launch.project=my-proj"],
    )  # fmt: skip
    assert setup_tracking(cfg) == []  # no transformers integration: our callback instead
    callbacks = tracking_callbacks(cfg)
    trainer = _train_two_steps(cfg, [])
    for cb in callbacks:  # a second short run, tracked (the helper builds its own trainer)
        trainer.add_callback(cb)
    trainer.args.max_steps = 4
    trainer.train()
    log_evaluation(cfg, EVAL_METRICS)

    calls = [json.loads(line) for line in (tmp_path / "run" / DRY_RUN_FILE).read_text().splitlines()]
    names = [c["call"] for c in calls]
    assert names[:3] == ["aiplatform.init", "aiplatform.start_run", "aiplatform.log_params"]
    assert calls[0]["kwargs"] == {"project": "my-proj", "location": "us-central1", "experiment": "queryhub-experiments"}
    assert calls[1]["kwargs"] == {"run": "t5-large-lora", "resume": False}
    series = [c["kwargs"] for c in calls if c["call"] == "aiplatform.log_time_series_metrics"]
    assert [s["step"] for s in series if "loss" in s["metrics"]] == [1, 2, 3, 4]
    assert all("resources/rss_mb" in s["metrics"] for s in series if "loss" in s["metrics"])
    # evaluation resumes the same run and logs its numbers (only numbers) as the run's metrics
    end = names.index("aiplatform.end_run")
    assert names[end + 1 : end + 3] == ["aiplatform.init", "aiplatform.start_run"]
    assert calls[end + 2]["kwargs"] == {"run": "t5-large-lora", "resume": True}
    logged = next(c["kwargs"]["metrics"] for c in calls if c["call"] == "aiplatform.log_metrics")
    assert logged["test/execution_accuracy"] == 0.75 and "test/model" not in logged
    assert names[-1] == "aiplatform.end_run"
    params = calls[2]["kwargs"]["params"]  # the resolved config, as the values log_params takes
    assert params["text2sql.tracking.project"] == "queryhub-experiments"
    assert all(isinstance(v, (str, int, float)) for v in params.values())


def test_vertex_names_and_sdk_are_checked_before_training(tmp_path, monkeypatch):
    cfg = load_config(None, [f"output_dir={tmp_path / 'run'}", "tracking.backend=vertex", "tracking.project=Bad_Name"])
    with pytest.raises(Exception) as err:
        setup_tracking(cfg)
    assert "tracking.project" in str(err.value) and "\n" not in str(err.value)
    cfg = load_config(None, [f"output_dir={tmp_path / 'run'}", "tracking.backend=vertex", "launch.project=p"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("google.cloud") else real(name, *a)
    )
    with pytest.raises(MissingExtraError) as err:
        setup_tracking(cfg)
    assert "pip install 'text2sql[vertex]'" in str(err.value)
