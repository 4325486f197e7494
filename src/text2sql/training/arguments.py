"""Trainer arguments from `cfg.training` plus the keys text2sql manages itself.

`cfg.training` holds transformers `TrainingArguments` names (checked by `text2sql.config`). On top of
them text2sql sets: where checkpoints go (`<output_dir>/checkpoints`), mixed precision when the user
left it unset (bf16 on a CUDA GPU that supports it, else fp16 on CUDA; on CPU what the run's memory
plan says, else off), activation checkpointing off unless asked or planned (TRL's `SFTConfig` turns
it on by default: ~20% slower on CPU for small models), the tracker from `cfg.tracking`, and plain
progress lines instead of a bar when the output is not a terminal. Decoders get TRL's `SFTConfig`,
T5 `Seq2SeqTrainingArguments`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.errors import ConfigError, first_line
from text2sql.tracking import setup_tracking
from text2sql.training.memory_plan import MemoryPlan

CHECKPOINTS = "checkpoints"


def mixed_precision(training: dict[str, Any]) -> dict[str, bool]:
    """bf16/fp16 as the user set them; when neither is set, what the hardware does best."""
    if "bf16" in training or "fp16" in training:
        return {"bf16": bool(training.get("bf16", False)), "fp16": bool(training.get("fp16", False))}
    import torch

    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return {"bf16": True, "fp16": False}
        return {"bf16": False, "fp16": True}
    return {"bf16": False, "fp16": False}


def uses_cpu(cfg: Config) -> bool:
    """Whether this run trains on CPU: asked for (training.use_cpu), or no CUDA GPU is visible."""
    return bool(cfg.training.get("use_cpu", not _has_cuda()))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _training_values(cfg: Config) -> dict[str, Any]:
    values = dict(cfg.training)
    # transformers 5 renamed gradient_checkpointing → activation_checkpointing (old name deprecated).
    for old, new in (
        ("gradient_checkpointing", "activation_checkpointing"),
        ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
    ):
        if old in values:
            old_value = values.pop(old)
            if values.get(new) is None:
                values[new] = old_value
    values["activation_checkpointing"] = bool(values.get("activation_checkpointing") or False)
    return values


def managed_values(
    cfg: Config, *, progress_lines: bool, has_validation: bool, resume: bool = False, plan: MemoryPlan | None = None
) -> dict[str, Any]:
    """The arguments text2sql sets, merged over the user's (user values win where it makes sense);
    `plan` is a CPU run's memory plan (bf16 and checkpointing, the user's settings already in it)."""
    values = _training_values(cfg)
    values["output_dir"] = str(Path(cfg.output_dir) / CHECKPOINTS)
    values.update(mixed_precision(cfg.training))
    if plan is not None:
        values["bf16"] = plan.bf16
        if plan.activation_checkpointing is not None:
            values["activation_checkpointing"] = plan.activation_checkpointing
    values["remove_unused_columns"] = False  # the collator picks its columns; keep `length` for grouping
    # Batches are drawn at random (transformers' default). Length-grouped batches pad less and run
    # ~30% faster on CPU, but on templated data they fill each batch with one question shape, and a
    # tiny model then learns several times slower (quickstart: execution accuracy 0.21 instead of
    # 0.78 after 1,500 steps). `train_sampling_strategy: group_by_length` opts in; it reads `length`.
    values.setdefault("length_column_name", "length")
    values.setdefault("include_num_input_tokens_seen", "non_padding")
    values.setdefault("label_names", ["labels"])
    # LoRA and full fine-tuning use every trainable parameter in each step: skip DDP's unused search.
    values.setdefault("ddp_find_unused_parameters", False)
    values.setdefault("dataloader_pin_memory", _has_cuda())  # pinning only helps copies to a GPU
    # Without a GPU, train on CPU, and under `accelerate launch` / torchrun as gloo processes.
    values.setdefault("use_cpu", not _has_cuda())
    if "disable_tqdm" not in cfg.training:
        values["disable_tqdm"] = progress_lines

    tracking = cfg.tracking
    if tracking.backend != "none":
        # Checks the package (MissingExtraError naming the extra), exports what the integration reads.
        values["report_to"] = setup_tracking(cfg, resume=resume)
    values.setdefault("project", tracking.project)
    if tracking.run_name or "run_name" not in values:
        values["run_name"] = tracking.run_name or Path(cfg.output_dir).name

    if str(values.get("eval_strategy", "no")) != "no" and not has_validation:
        raise ConfigError(
            f"training.eval_strategy={values['eval_strategy']} needs a validation split; set data.validation "
            "or data.validation_size > 0, or training.eval_strategy=no"
        )
    if cfg.callbacks.early_stopping_patience:
        values.setdefault("metric_for_best_model", "eval_loss")
    return values


def build_training_arguments(
    cfg: Config,
    kind: str,
    *,
    progress_lines: bool,
    has_validation: bool,
    resume: bool = False,
    plan: MemoryPlan | None = None,
):
    """`SFTConfig` (decoders) or `Seq2SeqTrainingArguments` (T5) for this run; `resume` continues the
    tracker's run too; `plan` is a CPU run's memory plan."""
    values = managed_values(cfg, progress_lines=progress_lines, has_validation=has_validation, resume=resume, plan=plan)
    if kind == "seq2seq":
        from transformers import Seq2SeqTrainingArguments as Args

        values.setdefault("predict_with_generate", False)
    else:
        from trl import SFTConfig as Args  # type: ignore[assignment]

        # The data is already tokenized, prompt-masked and length-filtered by `prepare`: TRL must not
        # re-tokenize, truncate, pack or flatten it (padding-free batches are 2x slower on CPU).
        values.update(
            max_length=None,
            packing=False,
            padding_free=False,
            dataset_kwargs={"skip_prepare_dataset": True},
        )
    known = {f.name for f in dataclasses.fields(Args) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"training.{unknown[0]} is not an argument of {Args.__name__} "
            f"({'T5 models' if kind == 'seq2seq' else 'decoder models'}); remove it"
        )
    try:
        return Args(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid training arguments: {first_line(exc)}") from exc
