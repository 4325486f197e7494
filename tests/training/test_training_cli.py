"""`text2sql train` on the command line: seed 000's flags as written there, bad input as one line and
a non-zero exit, and a two-process run under `accelerate launch` (CPU processes over gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import assert_one_line_error, run_cli
from repo import ROOT
from text2sql.cli import build_parser, main
from text2sql.config import save_config
from training_support import data_files, run_config


def test_seed_000_command_works_as_written(capsys, tmp_path, tiny_t5_path):
    train_csv, val_csv = data_files()
    out = tmp_path / "finetuned-model"
    # Seed 000's README, with `text2sql train` for `python train.py` and local paths; both flag forms.
    code, stdout, err = run_cli(
        capsys,
        "train",
        f"--model_dir={tiny_t5_path}",
        f"--train_data={train_csv}",
        f"--val_data={val_csv}",
        f"--output_dir={out}",
        "--num_train_epochs=1",
        "--per_device_train_batch_size=16",
        "--per_device_eval_batch_size",
        "16",
        "--learning_rate=5e-5",
        "--warmup_steps",
        "1",
        "--weight_decay=0.01",
        "--lora_r=16",
        "--lora_alpha=32",
        "--lora_dropout",
        "0.1",
        "--target_modules",
        "q",
        "v",
        "--max_source_length",
        "512",
        "--max_target_length=256",
    )
    assert code == 0, err
    assert "adapter written to" in stdout and "final train loss" in stdout
    cfg = json.loads((out / "adapter" / "stage.json").read_text())["depends_on"]
    assert cfg["model"]["name_or_path"] == str(tiny_t5_path) and cfg["model"]["trust_remote_code"] is False
    assert cfg["finetune"] == {**cfg["finetune"], "r": 16, "alpha": 32, "dropout": 0.1, "target_modules": ["q", "v"]}
    training = cfg["training"]
    assert (
        training["num_train_epochs"],
        training["per_device_train_batch_size"],
        training["per_device_eval_batch_size"],
    ) == (1, 16, 16)
    assert (training["learning_rate"], training["warmup_steps"], training["weight_decay"]) == (5e-5, 1, 0.01)
    data = (out / "config.yaml").read_text()
    assert "max_source_length: 512" in data and "max_target_length: 256" in data and str(val_csv) in data
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q", "v"] and adapter["r"] == 16
    assert json.loads((out / "adapter" / "stage.json").read_text())["global_step"] == 3  # 48 rows / 16

    # Again: nothing to do.
    code, stdout, _ = run_cli(
        capsys,
        "train",
        f"--model_dir={tiny_t5_path}",
        f"--train_data={train_csv}",
        f"--val_data={val_csv}",
        f"--output_dir={out}",
        "--num_train_epochs=1",
        "--per_device_train_batch_size=16",
        "--per_device_eval_batch_size",
        "16",
        "--learning_rate=5e-5",
        "--warmup_steps",
        "1",
        "--weight_decay=0.01",
        "--lora_r=16",
        "--lora_alpha=32",
        "--lora_dropout",
        "0.1",
        "--target_modules",
        "q",
        "v",
        "--max_source_length",
        "512",
        "--max_target_length=256",
    )
    assert code == 0 and "up to date" in stdout


def test_options_may_sit_between_config_and_overrides(tmp_path):
    args = build_parser().parse_args(
        ["train", "cfg.yaml", "--resume", "finetune.r=8", "--target_modules", "q", "v", "data.train=x.csv", "--force"]
    )
    assert args.config_and_overrides == ["cfg.yaml", "finetune.r=8"] and args.resume and args.force
    from text2sql.commands.train import script_flag_overrides

    overrides, stray = script_flag_overrides(args)
    assert overrides == ['finetune.target_modules=["q", "v"]'] and stray == ["data.train=x.csv"]


@pytest.mark.parametrize(
    "override, needle",
    [
        ("training.per_device_train_batch_size=0", "per_device_train_batch_size"),
        ("training.per_device_train_batch_size=-4", "per_device_train_batch_size"),
        ("training.per_device_eval_batch_size=0", "per_device_eval_batch_size"),
        ("training.gradient_accumulation_steps=0", "gradient_accumulation_steps"),
        ("training.max_steps=0", "max_steps"),
        ("training.max_steps=-5", "max_steps"),
        ("training.learning_rate=0", "learning_rate"),
        ("training.learning_rate=-1e-4", "learning_rate"),
        ("training.num_train_epochs=0", "num_train_epochs"),
    ],
)
def test_nonpositive_sizes_steps_and_rates_are_refused(capsys, tmp_path, override, needle):
    code, _, err = run_cli(capsys, "train", f"output_dir={tmp_path / 'run'}", override)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_qlora_without_a_gpu(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(capsys, "train", f"output_dir={tmp_path / 'run'}", "finetune.method=qlora")
    assert_one_line_error(code, err, "qlora", "GPU")


def test_unknown_target_module_lists_the_real_ones(capsys, tmp_path):
    cfg = run_config("tiny:t5", tmp_path / "run")
    save_config(cfg, tmp_path)
    code, _, err = run_cli(capsys, "train", tmp_path / "config.yaml", "--target_modules", "q_proj", "v")
    assert_one_line_error(code, err, "'q_proj'", "k, lm_head, o, q, v, wi, wo")


def test_data_prepared_for_another_tokenizer(capsys, tmp_path, tiny_llama_path, tiny_t5_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_path, model)
    train_csv, val_csv = data_files()
    args = [
        f"model.name_or_path={model}",
        f"data.train={train_csv}",
        f"data.validation={val_csv}",
        f"output_dir={tmp_path / 'run'}",
        "data.test_size=0",
    ]
    assert main(["prepare", *args]) == 0
    for name in ("tokenizer.json", "tokenizer_config.json"):  # the model folder gets another tokenizer
        shutil.copy(tiny_t5_path / name, model / name)
    capsys.readouterr()
    code, _, err = run_cli(capsys, "train", *args)
    assert_one_line_error(code, err, "different tokenizer", "--force")
    assert not (tmp_path / "run" / "adapter").exists()


@pytest.mark.slow
def test_two_processes_under_accelerate_launch(tmp_path):
    accelerate = Path(sys.executable).parent / "accelerate"
    if not accelerate.exists():
        pytest.skip("accelerate launcher not installed beside this python")
    cfg = run_config("tiny:llama", tmp_path / "run", "training.max_steps=2", "training.per_device_train_batch_size=4")
    save_config(cfg, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [
            str(accelerate),
            "launch",
            "--config_file",
            str(ROOT / "configs/accelerate/ddp.yaml"),
            "--num_processes",
            "2",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "text2sql",
            "train",
            str(tmp_path / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("adapter written to") == 1  # the main process reports, the other stays quiet
    stage = json.loads((tmp_path / "run" / "adapter" / "stage.json").read_text())
    assert stage["num_processes"] == 2 and stage["global_step"] == 2
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    # Progress lines come from the main process only.
    assert sum(line.startswith("INFO text2sql.train: step 1/2") for line in proc.stderr.splitlines()) == 1
