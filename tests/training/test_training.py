"""Training on tiny models: LoRA changes the adapter and nothing else, every family trains, learning
shows on the bundled data, the model sees exactly the prepared labels, methods and targets resolve."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from text2sql.config import load_config
from text2sql.errors import ConfigError, MissingExtraError, OutputExistsError
from text2sql.training.collator import PaddingCollator
from text2sql.training.train import train
from training_support import run_config, weights

ARCHS = ["llama", "mistral", "qwen2", "gpt2", "t5"]


class Snapshot(TrainerCallback):
    """Copies of every weight when training starts and ends."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.begin = weights(model)
        self.begin_step = state.global_step

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.end = weights(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_changes_the_adapter_and_no_base_weight(arch, tmp_path):
    cfg = run_config(f"tiny:{arch}", tmp_path / "run")
    snap = Snapshot()
    result = train(cfg, callbacks=[snap])

    lora = [k for k in snap.begin if "lora_" in k]
    base = [k for k in snap.begin if "lora_" not in k]
    assert lora and base
    for key in base:  # bit-identical, not just close
        assert torch.equal(snap.begin[key], snap.end[key]), key
    changed = [k for k in lora if not torch.equal(snap.begin[k], snap.end[k])]
    assert set(changed) == set(lora)
    if arch == "t5":
        assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in lora} == {"q", "v"}  # seed 000's default
    else:  # every linear layer (seed 002): attention and MLP
        assert len({k.split(".lora_")[0].rsplit(".", 1)[-1] for k in lora}) >= 3

    out = result.path
    assert out == tmp_path / "run" / "adapter" and result.stage == "adapter" and result.global_step == 3
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == f"tiny:{arch}"  # the user's spec, not a cache path
    for name in ("adapter_model.safetensors", "tokenizer_config.json", "config.yaml", "stage.json", "README.md"):
        assert (out / name).is_file(), name
    params = json.loads((out / "trainable_parameters.json").read_text())
    assert 0 < params["trainable"] < params["total"] and params["trainable"] == result.parameters["trainable"]
    assert f"tiny:{arch}" in (out / "README.md").read_text()
    history = json.loads((out / "training_log.json").read_text())
    assert [e["step"] for e in history if "loss" in e] == [1, 2, 3]
    assert all("peak_rss_mb" in e for e in history if "loss" in e)  # seed 004: memory in every log
    logged = [e for e in history if "loss" in e]
    for key in ("resources/cpu_percent", "resources/rss_mb", "resources/system_memory_percent"):
        assert all(e[key] >= 0 for e in logged), key
    assert all(0 < e["resources/rss_mb"] for e in logged)
    # speed between two logs: every log after the first measures it (tokens counted by the trainer)
    assert all(e["throughput/samples_per_second"] > 0 and e["throughput/tokens_per_second"] > 0 for e in logged)
    assert any("eval_loss" in e for e in history)

    # The saved adapter is the trained one, and loads on top of the base by its recorded name.
    from safetensors.torch import load_file

    from text2sql.models.adapters import load_adapter_model

    saved = load_file(str(out / "adapter_model.safetensors"))
    reloaded = load_adapter_model(out)
    trained = {k.replace(".default", ""): v for k, v in snap.end.items() if "lora_" in k}
    assert set(saved) == set(trained)
    for key, value in saved.items():
        assert torch.equal(value, trained[key])
    for key, value in reloaded.state_dict().items():
        if "lora_" in key:
            assert torch.equal(value, snap.end[key])


def test_rerun_is_up_to_date_and_other_settings_need_force(tmp_path):
    cfg = run_config("tiny:llama", tmp_path / "run", "training.max_steps=1")
    first = train(cfg)
    again = train(cfg)
    assert again.skipped and again.path == first.path and again.global_step == 1
    changed = run_config("tiny:llama", tmp_path / "run", "training.max_steps=1", "training.learning_rate=5e-3")
    with pytest.raises(OutputExistsError, match="different run.*learning_rate.*--force"):
        train(changed)
    forced = train(changed, force=True)
    assert not forced.skipped and json.loads((forced.path / "stage.json").read_text())["depends_on"]["training"][
        "learning_rate"
    ] == pytest.approx(5e-3)


def test_loss_goes_down_with_full_finetuning_on_bundled_data(tmp_path):
    # LoRA on a randomly initialised base barely learns (FACTS.md); full fine-tuning shows learning.
    cfg = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            "finetune.method=full",
            "data.schema_format=compact",
            "data.max_samples.train=64",
            "data.max_samples.validation=16",
            "data.max_samples.test=8",
            "training.max_steps=12",
            "training.per_device_train_batch_size=8",
            "training.learning_rate=3e-3",
            "training.warmup_steps=0",
            "training.lr_scheduler_type=constant",
            "training.logging_steps=1",
            "training.save_steps=1000",
            "callbacks.progress=lines",
            # the evaluation stage's callback: generated SQL executed on the bundled databases
            "training.eval_strategy=steps",
            "training.eval_steps=12",
            "callbacks.execution_accuracy_samples=4",
            "evaluation.max_new_tokens=16",
        ],
    )
    result = train(cfg)
    history = json.loads((result.path / "training_log.json").read_text())
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < losses[0] - 1.0, losses
    assert any("eval_execution_accuracy" in e for e in history)
    assert 0 <= result.metrics["eval_execution_accuracy"] <= 1
    assert result.stage == "model" and result.path.name == "model"
    assert (result.path / "config.json").is_file() and not (result.path / "adapter_config.json").exists()
    params = json.loads((result.path / "trainable_parameters.json").read_text())
    assert params["trainable"] == params["total"] and params["method"] == "full"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(result.path)
    assert model.config.model_type == "llama"


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_the_model_sees_exactly_the_prepared_labels(arch, tmp_path):
    from text2sql.models.loading import open_model
    from text2sql.training.trainer import build_trainer

    cfg = run_config(f"tiny:{arch}", tmp_path / "run")
    setup = build_trainer(cfg, open_model(cfg.model.name_or_path), tmp_path / "run" / "data")
    prepared = {tuple(r["input_ids"]): r["labels"] for r in setup.datasets["train"]}
    seen = 0
    for batch in setup.trainer.get_train_dataloader():
        for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
            n = int(mask.sum())
            assert mask[:n].all() and not mask[n:].any()
            row_labels = labels[labels != -100].tolist() if arch == "t5" else labels[:n].tolist()
            expected = prepared[tuple(ids[:n].tolist())]
            assert row_labels == (expected if arch != "t5" else [x for x in expected if x != -100])
            assert (labels[n:] == -100).all() if arch != "t5" else True
            seen += 1
    assert seen == len(prepared)
    if arch == "llama":
        from trl import SFTTrainer

        assert isinstance(setup.trainer, SFTTrainer)
        # TRL skipped its own preparation: same rows, our columns only.
        assert setup.trainer.train_dataset.column_names == ["input_ids", "labels", "length"]
        assert setup.trainer.args.activation_checkpointing is False and setup.trainer.args.bf16 is False
        assert setup.trainer.args.train_sampling_strategy == "random"
    else:
        from transformers import Seq2SeqTrainer

        assert isinstance(setup.trainer, Seq2SeqTrainer)


def test_collator_masks_by_length_when_pad_is_eos():
    eos = 2
    collate = PaddingCollator(pad_token_id=eos)
    batch = collate(
        [
            {"input_ids": [5, 6, 7, eos], "labels": [-100, -100, 7, eos], "length": 4},
            {"input_ids": [5, eos], "labels": [-100, eos], "length": 2},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7, eos], [5, eos, eos, eos]]
    # The real EOS of row 2 is attended to and learnt; only the padding is masked.
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, eos], [-100, eos, -100, -100]]
    assert set(batch) == {"input_ids", "attention_mask", "labels"}


def test_collator_pads_seq2seq_targets_to_their_own_length():
    collate = PaddingCollator(pad_token_id=0, pad_to_multiple_of=4)
    batch = collate([{"input_ids": [4, 5, 6, 7, 8], "labels": [9, 2]}, {"input_ids": [4, 2], "labels": [9, 9, 9, 2]}])
    assert batch["input_ids"].shape == (2, 8) and batch["labels"].shape == (2, 4)
    assert batch["labels"].tolist() == [[9, 2, -100, -100], [9, 9, 9, 2]]


def test_dora_trains_and_rslora_scales_by_sqrt_r(tmp_path):
    cfg = run_config("tiny:llama", tmp_path / "run", "finetune.method=dora", "training.max_steps=1")
    result = train(cfg)
    adapter_cfg = json.loads((result.path / "adapter_config.json").read_text())
    assert adapter_cfg["use_dora"] is True
    from safetensors.torch import load_file

    assert any("lora_magnitude_vector" in k for k in load_file(str(result.path / "adapter_model.safetensors")))

    from text2sql.models.loading import load_model
    from text2sql.training.methods import apply_method

    cfg = run_config("tiny:llama", tmp_path / "other", "finetune.method=rslora", "finetune.r=4", "finetune.alpha=8")
    model = apply_method(load_model("tiny:llama"), cfg, "decoder")
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert model.peft_config["default"].use_rslora and layer.scaling["default"] == pytest.approx(8 / 4**0.5)


def test_target_modules_default_override_and_unknown(tmp_path):
    from text2sql.models.loading import load_model
    from text2sql.training.methods import linear_layer_names, resolve_target_modules

    t5 = load_model("tiny:t5")
    assert resolve_target_modules(t5, "seq2seq", None) == ["q", "v"]
    assert resolve_target_modules(t5, "seq2seq", ["q", "k", "wo"]) == ["q", "k", "wo"]
    assert linear_layer_names(t5) == ["k", "lm_head", "o", "q", "v", "wi", "wo"]
    with pytest.raises(ConfigError, match=r"'q_proj' is not a layer.*named k, lm_head, o, q, v, wi, wo"):
        resolve_target_modules(t5, "seq2seq", ["q_proj", "v"])
    gpt2 = load_model("tiny:gpt2")
    assert resolve_target_modules(gpt2, "decoder", None) == "all-linear"
    assert resolve_target_modules(gpt2, "decoder", ["c_attn"]) == ["c_attn"]  # a Conv1D layer
    with pytest.raises(ConfigError, match="matches no linear layer.*c_attn, c_fc, c_proj, lm_head"):
        resolve_target_modules(gpt2, "decoder", r".*\.q_proj")


def test_qlora_needs_a_gpu_and_bitsandbytes(tmp_path, monkeypatch):
    from text2sql.training.methods import check_method_available

    cfg = load_config(None, ["finetune.method=qlora", f"output_dir={tmp_path}"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU.*finetune.method=lora"):
        train(cfg)
    assert not (tmp_path / "data").exists()  # refused before any work
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(__import__("sys").modules, "bitsandbytes", None)  # import fails
    with pytest.raises(MissingExtraError, match=r"text2sql\[qlora\]"):
        check_method_available(cfg)
    check_method_available(load_config(None, ["finetune.method=lora"]))  # others need nothing


def test_trust_remote_code_stays_off_unless_configured(tmp_path, monkeypatch):
    from text2sql.training import trainer
    from text2sql.training.trainer import load_base_model

    seen = []
    real = trainer.load_model

    def spy(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "load_model", spy)

    cfg = run_config("tiny:llama", tmp_path / "run")
    model = load_base_model(cfg, "decoder")
    assert seen == [False]
    assert model.dtype == torch.float32 and model.config._attn_implementation == "sdpa"
    with pytest.raises(ConfigError, match="flash-attn package and a CUDA GPU"):
        load_base_model(
            run_config("tiny:llama", tmp_path / "run", "model.attn_implementation=flash_attention_2"), "decoder"
        )


def test_progress_lines_unless_a_terminal():
    import io

    from text2sql.training.callbacks import use_progress_lines

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert use_progress_lines("auto", io.StringIO()) is True  # a log file or a pipe
    assert use_progress_lines("auto", Terminal()) is False
    assert use_progress_lines("lines", Terminal()) is True and use_progress_lines("bar", io.StringIO()) is False


def test_managed_training_arguments(tmp_path, monkeypatch):
    from text2sql.training.arguments import build_training_arguments, mixed_precision

    cfg = load_config(None, [f"output_dir={tmp_path / 'run'}", "training.logging_steps=5"])
    args = build_training_arguments(cfg, "decoder", progress_lines=True, has_validation=False)
    assert args.output_dir == str(tmp_path / "run" / "checkpoints")
    # TRL's SFTConfig would turn on bf16 and activation checkpointing: both off on CPU.
    assert (args.bf16, args.fp16, args.activation_checkpointing) == (False, False, False)
    # Random batches by default: length-grouped ones slow learning on templated data.
    assert args.train_sampling_strategy == "random" and args.length_column_name == "length"
    assert (
        args.packing is False and args.padding_free is False and args.dataset_kwargs == {"skip_prepare_dataset": True}
    )
    assert args.disable_tqdm is True and args.logging_steps == 5 and args.remove_unused_columns is False
    assert args.run_name == "run"
    t5 = build_training_arguments(
        load_config(None, [f"output_dir={tmp_path / 'run'}", "training.gradient_checkpointing=true"]),
        "seq2seq",
        progress_lines=False,
        has_validation=False,
    )
    assert type(t5).__name__ == "Seq2SeqTrainingArguments" and t5.activation_checkpointing is True
    grouped = build_training_arguments(
        load_config(None, ["training.train_sampling_strategy=group_by_length"]),
        "decoder",
        progress_lines=False,
        has_validation=False,
    )
    assert grouped.train_sampling_strategy == "group_by_length" and grouped.length_column_name == "length"
    with pytest.raises(ConfigError, match="needs a validation split"):
        build_training_arguments(
            load_config(None, ["training.eval_strategy=steps"]), "decoder", progress_lines=True, has_validation=False
        )
    # bf16 on GPUs that have it, else fp16; never on CPU; an explicit setting wins.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert mixed_precision({}) == {"bf16": True, "fp16": False}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert mixed_precision({}) == {"bf16": False, "fp16": True}
    assert mixed_precision({"fp16": False}) == {"bf16": False, "fp16": False}


def test_missing_tracker_package_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    from text2sql.training.arguments import build_training_arguments

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = load_config(None, [f"output_dir={tmp_path}", "tracking.backend=wandb"])
    with pytest.raises(MissingExtraError, match=r"text2sql\[wandb\]"):
        build_training_arguments(cfg, "decoder", progress_lines=True, has_validation=False)


def test_tensorboard_tracking_records_the_run(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    # setup_tracking exports the folder for the integration; monkeypatch restores the environment.
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "run" / "logs"))
    cfg = run_config("tiny:llama", tmp_path / "run", "training.max_steps=1", "tracking.backend=tensorboard")
    train(cfg)
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    record = json.loads((tmp_path / "run" / "tracking.json").read_text())
    assert record["global_step"] == 1 and "tensorboard" in record
