"""Checkpoints: --resume continues at the saved step with optimizer and scheduler restored, a
checkpoint without its completion marker is never resumed from, --init-from starts at step 0 from an
adapter's weights; checkpoint copies, progress lines and early stopping."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pytest
import torch
from transformers import TrainerCallback

from text2sql.errors import ConfigError, OutputExistsError
from text2sql.training.checkpoints import MARKER, latest_complete_checkpoint, write_marker
from text2sql.training.train import train
from training_support import run_config, weights


class Probe(TrainerCallback):
    """What the trainer holds when training starts: step, optimizer and scheduler state, weights."""

    def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        self.step = state.global_step
        # Adam's first moments by parameter index, the way optimizer.pt numbers them.
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.exp_avg = {i: optimizer.state[p]["exp_avg"].clone() for i, p in enumerate(params) if p in optimizer.state}
        self.scheduler_epoch = lr_scheduler.last_epoch
        self.weights = weights(model)


def lora_only(state: dict) -> dict:
    return {k: v for k, v in state.items() if "lora_" in k}


def test_latest_complete_checkpoint_skips_unmarked(tmp_path):
    for step in (2, 4, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_complete_checkpoint(tmp_path) is None
    write_marker(tmp_path / "checkpoint-2", {"step": 2})
    write_marker(tmp_path / "checkpoint-4", {"step": 4})
    # checkpoint-10 was being written when the process died: never the latest.
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert latest_complete_checkpoint(tmp_path / "missing") is None


def test_resume_continues_at_the_saved_step(tmp_path, caplog):
    sync = tmp_path / "sync"
    extra = ("training.max_steps=4", "training.save_steps=2", f"callbacks.checkpoint_sync={sync}")
    cfg = run_config("tiny:llama", tmp_path / "run", *extra)
    with caplog.at_level(logging.INFO, logger="text2sql.train"):
        first = train(cfg)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert first.global_step == 4
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert all((checkpoints / c / MARKER).is_file() for c in ("checkpoint-2", "checkpoint-4"))
    # seed 001/003: every saved checkpoint copied, marker included
    assert sorted(p.name for p in sync.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert (sync / "checkpoint-2" / "adapter_model.safetensors").is_file() and (
        sync / "checkpoint-2" / MARKER
    ).is_file()
    # seed 003: plain progress lines with step, loss, learning rate, speed and ETA
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert any(
        re.fullmatch(r"step 1/4 \| loss \d+\.\d{4} \| lr \d\.\de[-+]\d\d \| .+ \| ETA \d+:\d\d:\d\d \| rss .+", x)
        for x in lines
    ), lines

    # Simulate a crash while checkpoint-4 was being written: no marker, no final adapter.
    (checkpoints / "checkpoint-4" / MARKER).unlink()
    shutil.rmtree(tmp_path / "run" / "adapter")
    with pytest.raises(OutputExistsError, match="unfinished run.*--resume"):
        train(cfg)

    probe = Probe()
    resumed = train(cfg, resume=True, callbacks=[probe])
    assert resumed.resumed_from == checkpoints / "checkpoint-2"
    assert probe.step == 2 and resumed.global_step == 4
    assert probe.scheduler_epoch == 2
    saved_optimizer = torch.load(checkpoints / "checkpoint-2" / "optimizer.pt", weights_only=False)
    assert probe.exp_avg, "the optimizer started empty: its state was not restored"
    assert set(probe.exp_avg) == set(saved_optimizer["state"])
    for index, values in saved_optimizer["state"].items():
        assert torch.equal(values["exp_avg"], probe.exp_avg[index])
    from safetensors.torch import load_file

    at_two = load_file(str(checkpoints / "checkpoint-2" / "adapter_model.safetensors"))
    for key, value in lora_only(probe.weights).items():
        assert torch.equal(value, at_two[key.replace(".default", "")])
    history = json.loads((resumed.path / "training_log.json").read_text())
    assert [e["step"] for e in history if "loss" in e] == [1, 2, 3, 4]  # 1-2 restored, 3-4 trained now
    assert (checkpoints / "checkpoint-4" / MARKER).is_file()


def test_resume_without_a_complete_checkpoint(tmp_path):
    cfg = run_config("tiny:llama", tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "checkpoint-2").mkdir(parents=True)  # partial
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        train(cfg, resume=True)


def test_init_from_starts_at_step_zero_with_the_adapter_weights(tmp_path):
    source = train(run_config("tiny:llama", tmp_path / "a", "training.max_steps=2"))
    from safetensors.torch import load_file

    saved = load_file(str(source.path / "adapter_model.safetensors"))
    probe = Probe()
    result = train(
        run_config("tiny:llama", tmp_path / "b", "training.max_steps=2"), init_from=source.path, callbacks=[probe]
    )
    assert probe.step == 0 and probe.scheduler_epoch == 0 and probe.exp_avg == {}
    lora = lora_only(probe.weights)
    assert len(lora) == len(saved)
    for key, value in lora.items():
        assert torch.equal(value, saved[key.replace(".default", "")])
    assert result.global_step == 2 and result.resumed_from is None
    stage = json.loads((result.path / "stage.json").read_text())
    assert stage["depends_on"]["init_from"] == str(source.path.resolve())

    with pytest.raises(ConfigError, match="do not fit.*finetune.r"):
        train(run_config("tiny:llama", tmp_path / "c", "finetune.r=4"), init_from=source.path)
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        train(run_config("tiny:llama", tmp_path / "d"), init_from=tmp_path)
    with pytest.raises(ConfigError, match="use one"):
        train(run_config("tiny:llama", tmp_path / "e"), init_from=source.path, resume=True)


def test_early_stopping_stops_when_eval_loss_stops_improving(tmp_path):
    cfg = run_config(
        "tiny:llama",
        tmp_path / "run",
        "finetune.method=full",
        "training.max_steps=30",
        "training.learning_rate=0.5",
        "training.eval_strategy=steps",
        "training.eval_steps=1",
        "callbacks.early_stopping_patience=1",
    )
    result = train(cfg)
    assert result.global_step < 30
    evals = [e["eval_loss"] for e in json.loads((result.path / "training_log.json").read_text()) if "eval_loss" in e]
    assert len(evals) >= 2

    bad = run_config("tiny:llama", tmp_path / "other", "callbacks.early_stopping_patience=2")
    with pytest.raises(ConfigError, match="training.eval_strategy=steps"):
        train(bad)
    # The execution-accuracy callback works from the same evaluations, and says so the same way.
    bad = run_config("tiny:llama", tmp_path / "other", "callbacks.execution_accuracy_samples=4")
    with pytest.raises(ConfigError, match="callbacks.execution_accuracy_samples needs evaluations during training"):
        train(bad)
