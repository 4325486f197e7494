"""Build the trainer for a run: base model, fine-tuning method, prepared data, arguments, callbacks.

Decoder models train through TRL's `SFTTrainer`, T5 through transformers' `Seq2SeqTrainer`; both get
the rows exactly as `prepare` wrote them (prompt tokens masked with -100 in the labels) and pad them
per batch with `PaddingCollator`. TRL is told to skip its own dataset preparation, so it neither
re-templates nor re-tokenizes nor truncates.

The language-model head runs on answer positions only, in chunks (`answer_loss`). On CPU the run's
memory plan (`memory_plan`) picks bf16 autocast and activation checkpointing; the plan and its
reasons are logged and written into the training log.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.data.prepare import trainable
from text2sql.data.prompt import PromptBuilder
from text2sql.errors import ConfigError
from text2sql.huge_pages import torch_uses_huge_pages
from text2sql.models.adapters import adapter_base, is_adapter_dir
from text2sql.models.loading import ResolvedModel, load_config, load_model
from text2sql.tracking import TrackingRunCallback, tracking_callbacks
from text2sql.training.accuracy import ExecutionAccuracyCallback
from text2sql.training.answer_loss import install_answer_head, seq2seq_trainer_class
from text2sql.training.arguments import build_training_arguments, uses_cpu
from text2sql.training.callbacks import (
    CheckpointSyncCallback,
    PeakMemoryCallback,
    ProgressBarCallback,
    ProgressLinesCallback,
    early_stopping_callback,
    require_evaluations,
    use_progress_lines,
)
from text2sql.training.checkpoints import CompleteCheckpointCallback
from text2sql.training.collator import PaddingCollator, training_columns
from text2sql.training.memory_plan import (
    MemoryPlan,
    decide_checkpointing,
    hidden_size_of,
    plan_callback,
    plan_precision,
)
from text2sql.training.methods import apply_method, is_peft_method, parameter_summary, quantization_config
from text2sql.training.resources import ResourceMonitorCallback
from text2sql.training.stage import TrainerBuild

log = logging.getLogger("text2sql.train")


@dataclass
class TrainingSetup(TrainerBuild):
    """The SFT trainer and everything `train` needs after it; tests use it to look inside."""

    kind: str = "decoder"
    model_type: str = ""
    datasets: Any = None  # the prepared DatasetDict, text columns included
    target_modules: Any = None
    memory: PeakMemoryCallback | None = None
    callbacks: list[Any] = field(default_factory=list)
    memory_plan: MemoryPlan | None = None  # CPU runs: bf16, checkpointing and logits, with reasons


def model_dtype(cfg: Config):
    """Weights dtype. `auto`: float32 on CPU; on a CUDA GPU with bfloat16, bfloat16 for the frozen
    base of an adapter method, but float32 for full fine-tuning, whose optimizer must update float32
    master weights (bf16 autocast still runs the matrix products in bfloat16)."""
    import torch

    name = cfg.model.dtype
    if name == "auto":
        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 and is_peft_method(cfg.finetune.method) else torch.float32
    return getattr(torch, name)


def check_attention(cfg: Config) -> None:
    if cfg.model.attn_implementation != "flash_attention_2":
        return
    import torch

    if importlib.util.find_spec("flash_attn") is None or not torch.cuda.is_available():
        raise ConfigError(
            "model.attn_implementation=flash_attention_2 needs the flash-attn package and a CUDA GPU; "
            "install flash-attn on a GPU machine or use model.attn_implementation=sdpa"
        )


def load_base_model(cfg: Config, kind: str):
    """The base model for training, in the dtype and attention kernel the config asks for."""
    check_attention(cfg)
    dtype = model_dtype(cfg)
    kwargs: dict[str, Any] = {}
    quant = quantization_config(cfg, _compute_dtype())
    if quant is not None:
        from accelerate import PartialState

        kwargs["quantization_config"] = quant
        if not _sharded_launch():
            # A quantized model cannot be moved after loading: put it on this process's GPU directly.
            kwargs["device_map"] = {"": PartialState().local_process_index}
    model = load_model(
        cfg.model.name_or_path,
        kind=kind,
        dtype=dtype,
        trust_remote_code=cfg.model.trust_remote_code,
        attn_implementation=cfg.model.attn_implementation,
        **kwargs,
    )
    # The KV cache only serves generation; during training it costs memory and warns with checkpointing.
    model.config.use_cache = False
    return model


def _sharded_launch() -> bool:
    """Under DeepSpeed or FSDP (set by `accelerate launch`) the launcher places the weights."""
    return any(os.environ.get(k, "").lower() == "true" for k in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"))


def _compute_dtype():
    """qlora's compute dtype: bfloat16 where the GPU has it, else float16."""
    import torch

    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16


def load_init_adapter(model, init_from: str | Path, cfg: Config) -> None:
    """Copy an adapter's weights (a trained adapter folder or a checkpoint) into the fresh adapter."""
    path = Path(init_from)
    if not is_adapter_dir(path):
        raise ConfigError(
            f"--init-from {path}: no adapter_config.json there; give an adapter folder written by "
            "'text2sql train' or one of its checkpoints"
        )
    base = adapter_base(path)
    if base != cfg.model.name_or_path:
        log.warning("--init-from %s was trained on %s; this run's base model is %s", path, base, cfg.model.name_or_path)
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    weights = load_peft_weights(str(path), device="cpu")
    try:
        result: Any = set_peft_model_state_dict(model, weights)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(
            f"--init-from {path}: its weights do not fit this run's adapter ({reason}); "
            "use the finetune.r and finetune.target_modules it was trained with"
        ) from None
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        first = (missing or result.unexpected_keys)[0]
        raise ConfigError(
            f"--init-from {path}: its layers differ from this run's adapter (e.g. {first}); "
            "use the finetune.target_modules it was trained with"
        )
    log.info("adapter weights initialised from %s", path)


def execution_accuracy_callback(cfg: Config, datasets: Any, tokenizer: Any, kind: str, model_type: str):
    """When callbacks.execution_accuracy_samples > 0: the live model generates SQL for that many
    validation rows at every evaluation and `eval_execution_accuracy` joins the eval metrics (so that
    `training.metric_for_best_model=eval_execution_accuracy` and early stopping can use it)."""
    n = cfg.callbacks.execution_accuracy_samples
    if n <= 0:
        return None
    has_validation = "validation" in datasets and len(datasets["validation"]) > 0
    require_evaluations(cfg, has_validation, "callbacks.execution_accuracy_samples")
    builder = PromptBuilder.from_config(tokenizer, kind, model_type, cfg)
    try:
        return ExecutionAccuracyCallback(
            datasets["validation"],
            builder,
            num_samples=n,
            batch_size=cfg.evaluation.batch_size,
            max_new_tokens=cfg.evaluation.max_new_tokens,
            timeout=cfg.evaluation.timeout,
            seed=cfg.data.split_seed,
        )
    except ValueError as exc:  # e.g. no validation row has a database to run SQL on
        raise ConfigError(f"callbacks.execution_accuracy_samples: {exc}; set it to 0 for this data") from None


def build_trainer(
    cfg: Config,
    base: ResolvedModel,
    data_path: str | Path,
    *,
    init_from: str | Path | None = None,
    extra_callbacks: Sequence[Any] = (),
    fingerprint: str | None = None,
    resume: bool = False,
) -> TrainingSetup:
    """Load `base` (cfg.model, resolved) and the prepared data and return a ready trainer (nothing
    trained yet)."""
    from datasets import load_from_disk
    from transformers import set_seed

    kind, model_type, tokenizer = base.kind, base.model_type, base.tokenizer
    datasets = load_from_disk(str(data_path))
    has_validation = "validation" in datasets and len(datasets["validation"]) > 0
    lines = use_progress_lines(cfg.callbacks.progress)
    plan = None
    if uses_cpu(cfg):
        config = load_config(base.path, trust_remote_code=cfg.model.trust_remote_code)
        plan = plan_precision(cfg.training, hidden_size_of(config))
    args = build_training_arguments(
        cfg, kind, progress_lines=lines, has_validation=has_validation, resume=resume, plan=plan
    )

    callbacks = _run_callbacks(cfg, datasets, base, fingerprint, has_validation)

    # Seeded before the adapter exists: LoRA's A matrices start random (PEFT, TRL do the same).
    set_seed(args.seed)
    model = load_base_model(cfg, kind)
    model = apply_method(model, cfg, kind, activation_checkpointing=args.activation_checkpointing)
    if init_from is not None:
        load_init_adapter(model, init_from, cfg)
    target_modules = None
    if is_peft_method(cfg.finetune.method):
        target_modules = model.peft_config["default"].target_modules
        if isinstance(target_modules, set):
            target_modules = sorted(target_modules)

    train_ds = training_columns(datasets["train"])
    if plan is not None:
        from text2sql.training.lora_dropout import install_mask_dropout  # torch at import: loaded here

        plan.mask_dropout = install_mask_dropout(model)  # before the probe, which counts what it keeps
        plan.huge_pages = torch_uses_huge_pages()
        if plan.bf16:
            from text2sql.training.lora_precision import keep_lora_sums_float32

            plan.lora_float32_sums = keep_lora_sums_float32(model)
        longest = max(train_ds["length"]) if len(train_ds) else 0
        decide_checkpointing(plan, model, kind, rows=args.per_device_train_batch_size, length=int(longest))
        # Read by the trainer when it is built, below.
        args.activation_checkpointing = args.gradient_checkpointing = bool(plan.activation_checkpointing)
        if plan.activation_checkpointing and plan.checkpoint_every > 1:
            kwargs = dict(args.activation_checkpointing_kwargs or {})
            kwargs.setdefault("every_n_layers", plan.checkpoint_every)
            args.activation_checkpointing_kwargs = kwargs
    eval_ds = _validation_rows(cfg, datasets, kind) if has_validation else None
    collator = PaddingCollator(pad_token_id=tokenizer.pad_token_id)
    common = dict(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if kind == "seq2seq":
        trainer: Any = seq2seq_trainer_class()(**common)
    else:
        from trl import SFTTrainer

        trainer = SFTTrainer(**common)
    # After TRL has fitted its own fused head, which this one serves on CPU.
    answer_only = install_answer_head(model)
    if plan is not None:
        plan.answer_only_logits = answer_only
        plan.answer_logits_reason = (
            "the head is a plain projection" if answer_only else "the head transforms its logits: computed whole"
        )
        log.info("memory plan: %s", plan.summary())
        trainer.add_callback(plan_callback(plan))
    memory = _add_reporting(trainer, extra_callbacks, lines)

    return TrainingSetup(
        trainer=trainer,
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        model_type=model_type,
        datasets=datasets,
        parameters=parameter_summary(model),
        target_modules=target_modules,
        memory=memory,
        callbacks=list(trainer.callback_handler.callbacks),
        memory_plan=plan,
    )


def _run_callbacks(cfg: Config, datasets, base: ResolvedModel, fingerprint: str | None, has_validation: bool):
    """The callbacks a run's config asks for, in the order they must see each event."""
    callbacks: list[Any] = [CompleteCheckpointCallback(fingerprint)]
    if cfg.tracking.backend != "none":
        # After the trainer's own reporting integration: records its run in <output_dir>/tracking.json.
        callbacks.append(TrackingRunCallback(cfg.output_dir))
        callbacks.extend(tracking_callbacks(cfg))
    if cfg.callbacks.checkpoint_sync:
        callbacks.append(CheckpointSyncCallback(cfg.callbacks.checkpoint_sync))
    # Execution accuracy must enter the eval metrics before early stopping reads them.
    accuracy = execution_accuracy_callback(cfg, datasets, base.tokenizer, base.kind, base.model_type)
    if accuracy is not None:
        callbacks.append(accuracy)
    stopper = early_stopping_callback(cfg, has_validation)
    if stopper is not None:
        callbacks.append(stopper)
    return callbacks


def _validation_rows(cfg: Config, datasets, kind: str):
    """The validation rows the trainer's loss is computed on: a seeded sample of evaluation.loss_samples."""
    eval_ds = training_columns(trainable(datasets["validation"], cfg, kind))
    cap = cfg.evaluation.loss_samples
    if cap is not None and len(eval_ds) > cap:
        eval_ds = eval_ds.shuffle(seed=cfg.data.split_seed).select(range(cap))
    return eval_ds


def _add_reporting(trainer, extra_callbacks: Sequence[Any], lines: bool) -> ResourceMonitorCallback:
    """The caller's callbacks, our progress display, and the resource monitor (returned)."""
    from transformers import PrinterCallback, ProgressCallback

    for cb in extra_callbacks:
        trainer.add_callback(cb)
    # transformers' own bar has no label and prints each log as a dict: ours instead.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(ProgressLinesCallback() if lines else ProgressBarCallback())
    # First in line, so that trackers and progress lines see the resource figures in each log entry.
    memory = ResourceMonitorCallback()
    trainer.callback_handler.callbacks.insert(0, memory)
    return memory
