"""`rl`: reinforcement learning from execution (GRPO) after supervised fine-tuning, into
`<output_dir>/rl/`.

Starts from a model folder (`rl.init_from`, default the run's SFT result: `merged/` for adapter
methods, `model/` for full fine-tuning) and trains it with TRL's `GRPOTrainer`: for each prompt of
the prepared train split, `rl.num_generations` completions are sampled, their SQL is executed
against the gold on the row's database (`text2sql.training.rewards`), and the policy moves toward the
completions that scored above their group's mean. Adapter methods train a fresh LoRA (the
`finetune` section) on top of the merged model and merge it again when saving; full fine-tuning
updates every weight. The stage folder holds a plain model folder (weights, tokenizer, the run's
`config.yaml`, so that `evaluate` and `predict` render the training prompts), `training_log.json`
and a `stage.json` record; it is skipped when current and a different run's folder is never replaced
without `force`.

The prompts are the prepared rows' own prompt tokens (`input_ids[:prompt_length]`), which TRL
generates from as they are (`rl_data.trainer_class`): the very tokens SFT trained on and evaluation
asks with, never text tokenized again. Rows without a database cannot be rewarded and are left out.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.data.prepare import PrepareResult, prepare
from text2sql.data.prompt import PromptBuilder
from text2sql.data.tokenizer_identity import tokenizer_fingerprint
from text2sql.errors import ConfigError, DataError, MissingExtraError, first_line
from text2sql.inference.generate import pad_id, stop_ids
from text2sql.models.adapters import is_adapter_dir
from text2sql.models.loading import ResolvedModel, load_model, open_model
from text2sql.rundir import RunDir, identity_of
from text2sql.training.accuracy import ExecutionAccuracyCallback
from text2sql.training.answer_loss import install_answer_head
from text2sql.training.arguments import mixed_precision, uses_cpu
from text2sql.training.callbacks import (
    ProgressBarCallback,
    ProgressLinesCallback,
    use_progress_lines,
)
from text2sql.training.methods import apply_method, is_peft_method, parameter_summary
from text2sql.training.model_card import dump_json
from text2sql.training.resources import ResourceMonitorCallback
from text2sql.training.rewards import ExecutionReward, format_reward
from text2sql.training.rl_callbacks import RLAccuracyCallback, TimeLimitCallback
from text2sql.training.rl_data import check_gold_runs, grpo_dataset, trainer_class
from text2sql.training.stage import TrainedStage, TrainerBuild
from text2sql.training.train import LOG_FILE, finetuned_path

log = logging.getLogger("text2sql.rl")

STAGE = "rl"
SCRATCH = ".rl.trainer"  # the trainer's output_dir: nothing is saved there (save_strategy "no")


@dataclass
class GRPOResult:
    """What an RL run produced (or found up to date)."""

    path: Path
    skipped: bool
    init_from: Path | None = None
    global_step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # completions by outcome, over the whole run
    history: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0  # training prompts used
    rows_without_database: int = 0  # left out: nothing to execute their SQL on
    stopped_by_time: bool = False
    # rl.keep_best: validation execution accuracy by step (0: the starting model), and the step saved
    accuracy_by_step: list[tuple[int, float]] = field(default_factory=list)
    saved_step: int | None = None


def init_model_path(cfg: Config) -> Path:
    """The model RL starts from: rl.init_from, else the run's SFT result."""
    return Path(cfg.rl.init_from) if cfg.rl.init_from else finetuned_path(cfg)


def completion_length(cfg: Config) -> int:
    return cfg.rl.max_completion_length or cfg.evaluation.max_new_tokens


def keeps_best(cfg: Config) -> bool:
    return bool(cfg.rl.keep_best and cfg.rl.eval_steps)


def grpo_depends_on(cfg: Config, data_fingerprint: str, init: Path) -> dict[str, Any]:
    """What the RL stage depends on; logging and evaluation cadence change nothing it learns."""
    ignored = {"enabled", "init_from", "logging_steps"}
    if not keeps_best(cfg):  # then evaluation during RL only logs: the saved weights do not depend on it
        ignored |= {"eval_steps", "eval_samples", "keep_best"}
    rl = cfg.rl.model_dump(mode="json", exclude=ignored)
    rl["max_completion_length"] = completion_length(cfg)
    return {
        "data": data_fingerprint,
        "init_from": identity_of(init),
        "rl": rl,
        "finetune": cfg.finetune.model_dump(mode="json") if is_peft_method(cfg.finetune.method) else "full",
        "seed": cfg.training.get("seed", 42),
        "sql": {"timeout": cfg.evaluation.timeout, "max_steps": cfg.evaluation.max_steps},
        "model": cfg.model.model_dump(mode="json", include={"dtype", "attn_implementation"}),
    }


def _check_inputs(cfg: Config, init: Path) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "the rl stage runs in one process; run it without accelerate launch / torchrun (text2sql run skips "
            "the stages already done)"
        )
    if "://" in cfg.output_dir:
        raise ConfigError(f"output_dir={cfg.output_dir}: the rl stage needs a local output_dir; use 'text2sql run'")
    if not init.is_dir():
        hint = "set rl.init_from to a model folder" if cfg.rl.init_from else "train first (text2sql train)"
        raise ConfigError(f"rl: the model to start from, {init}, is not a folder; {hint}")
    if is_adapter_dir(init):
        raise ConfigError(
            f"rl.init_from {init} is an adapter; give the merged model folder (text2sql merge {init} --output DIR)"
        )


def _grpo_arguments(cfg: Config, run: RunDir, progress_lines: bool):
    from trl import GRPOConfig

    from text2sql.tracking import setup_tracking

    rl = cfg.rl
    values: dict[str, Any] = dict(
        output_dir=str(run.root / SCRATCH),
        max_steps=rl.max_steps,
        per_device_train_batch_size=rl.per_device_train_batch_size,
        per_device_eval_batch_size=rl.per_device_train_batch_size,
        gradient_accumulation_steps=1,
        num_generations=rl.num_generations,
        learning_rate=rl.learning_rate,
        beta=rl.beta,
        temperature=rl.temperature,
        max_completion_length=completion_length(cfg),
        logging_steps=rl.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        seed=cfg.training.get("seed", 42),
        use_cpu=uses_cpu(cfg),
        activation_checkpointing=bool(
            cfg.training.get("activation_checkpointing") or cfg.training.get("gradient_checkpointing") or False
        ),
        dataloader_num_workers=0,
        dataloader_pin_memory=not uses_cpu(cfg),
        remove_unused_columns=False,
        disable_tqdm=progress_lines,
        report_to="none",
        run_name=f"{cfg.tracking.run_name or Path(cfg.output_dir).name}-rl",
        **mixed_precision(cfg.training),
    )
    if rl.use_vllm:
        values.update(_vllm_arguments(cfg))
    if cfg.tracking.backend != "none":
        values["report_to"] = setup_tracking(cfg, resume=False)
    try:
        return GRPOConfig(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid rl settings: {first_line(exc)}") from exc


def _vllm_arguments(cfg: Config) -> dict[str, Any]:
    """GRPOConfig settings that generate the completions with vLLM, in the training process (colocated)."""
    import importlib.util

    import torch

    if uses_cpu(cfg) or not torch.cuda.is_available():
        raise ConfigError("rl.use_vllm generates on a GPU and none is available here; set rl.use_vllm=false")
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtraError("rl.use_vllm", "vllm", "vllm")
    return {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": cfg.rl.vllm_gpu_memory_utilization,
    }


def _skipped(run: RunDir) -> GRPOResult:
    rec = run.record(STAGE) or {}
    return GRPOResult(
        path=run.stage_dir(STAGE),
        skipped=True,
        init_from=Path(rec["init_from"]) if rec.get("init_from") else None,
        global_step=int(rec.get("global_step", 0)),
        metrics=rec.get("metrics", {}),
        counts=rec.get("counts", {}),
        rows=int(rec.get("rows", 0)),
        rows_without_database=int(rec.get("rows_without_database", 0)),
    )


@dataclass
class GRPOBuild(TrainerBuild):
    """The GRPO trainer and the parts of it the stage reads after training."""

    reward: Any = None  # the ExecutionReward, counting completions by outcome
    timer: Any = None  # the TimeLimitCallback
    accuracy: RLAccuracyCallback | None = None
    generation_config: Any = None  # the starting model's, saved instead of RL's sampling settings
    rows: int = 0
    rows_without_database: int = 0


class RLStage(TrainedStage):
    """GRPO from the run's fine-tuned model into `rl/`."""

    name = STAGE
    log = log

    def __init__(self, cfg: Config, *, callbacks: Sequence[Any], extra_rewards: Sequence[Any], **common: Any):
        super().__init__(cfg, **common)
        self.init = init_model_path(cfg)
        self.callbacks, self.extra_rewards = callbacks, extra_rewards

    def check(self) -> None:
        _check_inputs(self.cfg, self.init)

    def prepare(self) -> PrepareResult:
        assert self.model is not None
        return prepare(self.cfg, self.model)  # --force replaces the rl stage, not the prepared data

    def depends_on(self, data_fingerprint: str) -> dict[str, Any]:
        return grpo_depends_on(self.cfg, data_fingerprint, self.init)

    def skipped(self) -> GRPOResult:
        return _skipped(self.run_dir)

    def build(self) -> GRPOBuild:
        from datasets import load_from_disk

        cfg, init = self.cfg, self.init
        assert self.prepared is not None
        start = open_model(str(init), trust_remote_code=cfg.model.trust_remote_code)
        if start.kind != "decoder":
            raise ConfigError(f"rl: GRPO trains decoder models; {init} is a {start.kind} model")
        data_rec = self.run_dir.record("data") or {}
        if data_rec.get("tokenizer") and data_rec["tokenizer"] != tokenizer_fingerprint(start.tokenizer):
            raise DataError(
                f"{self.prepared.path} was prepared with another tokenizer than {init}'s; set model.name_or_path "
                "to the model RL starts from's base, or prepare again (text2sql prepare --force)"
            )
        datasets = load_from_disk(str(self.prepared.path))
        train_rows, without_db = grpo_dataset(datasets["train"], start.tokenizer)
        if len(train_rows) == 0:
            raise DataError(
                f"rl: none of the {without_db} training rows has a database to execute SQL on; set data.db or "
                "data.db_dir so that rows get their database (or rl.enabled=false)"
            )
        if without_db:
            log.warning("rl: %d training rows have no database and are left out", without_db)
        check_gold_runs(train_rows, cfg.evaluation.timeout)
        build = _build(cfg, self.run_dir, init, start, datasets, train_rows, self.callbacks, self.extra_rewards)
        build.rows_without_database = without_db
        return build

    def describe(self, build: TrainerBuild) -> str:
        assert isinstance(build, GRPOBuild)
        return f"rl from {self.init}: {build.rows} prompts, {super().describe(build)}"

    def finish(self, build: TrainerBuild, output: Any) -> GRPOResult:
        assert isinstance(build, GRPOBuild)
        trainer = build.trainer
        saved_step = trainer.state.global_step
        if build.accuracy is not None:
            restored = build.accuracy.restore_best(trainer.model, trainer.state.global_step)
            saved_step = saved_step if restored is None else restored
        return GRPOResult(
            path=self.run_dir.stage_dir(STAGE),
            skipped=False,
            init_from=self.init,
            global_step=trainer.state.global_step,
            metrics={k: v for k, v in output.metrics.items() if isinstance(v, (int, float))},
            counts=vars(build.reward.counts).copy(),
            history=list(trainer.state.log_history),
            rows=build.rows,
            rows_without_database=build.rows_without_database,
            stopped_by_time=build.timer.stopped,
            accuracy_by_step=list(build.accuracy.values) if build.accuracy is not None else [],
            saved_step=saved_step,
        )

    def save_weights(self, build: TrainerBuild, staged: Path) -> None:
        """The model as a plain folder, LoRA merged in."""
        assert isinstance(build, GRPOBuild)
        model = build.trainer.accelerator.unwrap_model(build.trainer.model)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.config.use_cache = True
        model.generation_config = build.generation_config  # not the sampling settings RL generated with
        model.save_pretrained(str(staged))

    def write(self, build: TrainerBuild, result: GRPOResult, staged: Path) -> dict[str, Any]:
        cfg = self.cfg
        build.tokenizer.save_pretrained(str(staged))
        (staged / LOG_FILE).write_text(dump_json(result.history), encoding="utf-8")
        (staged / "README.md").write_text(_card(cfg, result), encoding="utf-8")
        return {
            "init_from": str(result.init_from),
            "method": cfg.finetune.method if is_peft_method(cfg.finetune.method) else "full",
            "base_model": cfg.model.name_or_path,
            "global_step": result.global_step,
            "stopped_by_time": result.stopped_by_time,
            "saved_step": result.saved_step,
            "accuracy_by_step": result.accuracy_by_step,
            "rows": result.rows,
            "rows_without_database": result.rows_without_database,
            "counts": result.counts,
            "metrics": result.metrics,
        }


def train_grpo(
    cfg: Config,
    *,
    force: bool = False,
    model: ResolvedModel | None = None,
    prepared: PrepareResult | None = None,
    callbacks: Sequence[Any] = (),
    extra_rewards: Sequence[Any] = (),
) -> GRPOResult:
    """GRPO from the run's fine-tuned model (or rl.init_from) on the prepared train split, rewarded by
    execution; the model is saved (merged, for adapter methods) into `<output_dir>/rl/`. `model` is
    cfg.model resolved and `prepared` its data (a run's prepare stage), when the caller has them
    (otherwise the data is prepared when missing); `callbacks` are extra TrainerCallbacks;
    `extra_rewards` are extra TRL reward functions added to the execution (and format) reward (their
    names should be stable: they are not part of the stage's fingerprint)."""
    stage = RLStage(cfg, callbacks=callbacks, extra_rewards=extra_rewards, model=model, prepared=prepared, force=force)
    result = stage.run()
    shutil.rmtree(stage.run_dir.root / SCRATCH, ignore_errors=True)
    return result


def _build(
    cfg: Config, run: RunDir, init: Path, start: ResolvedModel, datasets, train_rows, callbacks, extra_rewards
) -> GRPOBuild:
    from transformers import PrinterCallback, ProgressCallback, set_seed

    from text2sql.tracking import tracking_callbacks
    from text2sql.training.trainer import check_attention, model_dtype

    lines = use_progress_lines(cfg.callbacks.progress)
    args = _grpo_arguments(cfg, run, lines)
    set_seed(args.seed)  # before the adapter exists: LoRA's A matrices start random
    check_attention(cfg)
    policy = load_model(
        str(init),
        kind="decoder",
        dtype=model_dtype(cfg),
        trust_remote_code=cfg.model.trust_remote_code,
        attn_implementation=cfg.model.attn_implementation,
    )
    generation_config = copy.deepcopy(policy.generation_config)
    policy.config.use_cache = True  # generation dominates an RL step
    # Completions end and are padded by the rule evaluation generates with (HFGenerator): the
    # tokenizer's EOS and the generation config's EOS ids stop, the pad token (else EOS) pads.
    # vLLM takes SamplingParams, where the stop ids are `stop_token_ids` (it pads nothing).
    stops = sorted(stop_ids(policy, start.tokenizer))
    rule = (
        {"stop_token_ids": stops} if args.use_vllm else {"eos_token_id": stops, "pad_token_id": pad_id(start.tokenizer)}
    )
    args.generation_kwargs = {**(args.generation_kwargs or {}), **rule}
    if is_peft_method(cfg.finetune.method):
        lora_cfg = cfg
        if cfg.finetune.method == "qlora":  # the merged model is not quantized: a plain LoRA on it
            lora_cfg = cfg.model_copy(deep=True)
            lora_cfg.finetune.method = "lora"
        policy = apply_method(policy, lora_cfg, "decoder")
    else:
        policy = apply_method(policy, cfg, "decoder")

    reward = ExecutionReward(
        partial_credit=cfg.rl.partial_credit,
        forbidden_penalty=cfg.rl.forbidden_penalty,
        timeout=cfg.evaluation.timeout,
        max_steps=cfg.evaluation.max_steps,
        result_match=cfg.evaluation.result_match,
    )
    reward_funcs: list[Any] = [reward]
    if cfg.rl.format_reward > 0:
        reward_funcs.append(format_reward(cfg.rl.format_reward))
    reward_funcs += list(extra_rewards)

    timer = TimeLimitCallback(cfg.rl.max_minutes)
    trainer_callbacks: list[Any] = [timer]  # the stage adds the thread-following callback
    accuracy: RLAccuracyCallback | None = None
    if cfg.rl.eval_steps:
        sample = _accuracy_callback(cfg, datasets, start)
        if sample is not None:
            accuracy = RLAccuracyCallback(sample, cfg.rl.eval_steps, keep_best=keeps_best(cfg))
    # RL's curves restart at step 1: a tracker run of their own (`<run>-rl`), as for every tracker.
    rl_run = cfg.model_copy(deep=True)
    rl_run.tracking.run_name = args.run_name
    trainer_callbacks += tracking_callbacks(rl_run)
    trainer = trainer_class()(
        model=policy,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_rows,
        processing_class=start.tokenizer,
        callbacks=trainer_callbacks,
    )
    if hasattr(trainer, "eos_token_ids"):  # TRL masks each completion after its first stop id: the same ids
        trainer.eos_token_ids = stops
    # TRL asks for the completions' log-probabilities through its fused head, which on CPU projects
    # every position (the prompt too) onto the vocabulary: completion positions only, in chunks.
    for scored in (trainer.model, getattr(trainer, "ref_model", None)):
        if scored is not None:
            install_answer_head(scored, temperature=args.temperature, entropy_grad=True)
    if uses_cpu(cfg):
        from text2sql.training.lora_dropout import install_mask_dropout  # torch at import: loaded here

        install_mask_dropout(trainer.model)  # a byte per element kept for LoRA's dropout, not four
    for cb in callbacks:
        trainer.add_callback(cb)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(ProgressLinesCallback() if lines else ProgressBarCallback())
    # First in line, before the trackers (transformers puts its integrations before the callbacks
    # given to the trainer): they add their values to each log entry the trackers then read.
    trainer.callback_handler.callbacks.insert(0, ResourceMonitorCallback())
    if accuracy is not None:
        trainer.callback_handler.callbacks.insert(0, accuracy)
    return GRPOBuild(
        trainer=trainer,
        model=policy,
        tokenizer=start.tokenizer,
        parameters=parameter_summary(policy),
        reward=reward,
        timer=timer,
        accuracy=accuracy,
        generation_config=generation_config,
        rows=len(train_rows),
    )


def _accuracy_callback(cfg: Config, datasets, start: ResolvedModel) -> ExecutionAccuracyCallback | None:
    if "validation" not in datasets or len(datasets["validation"]) == 0:
        log.warning("rl.eval_steps: no validation split; execution accuracy is not measured during RL")
        return None
    builder = PromptBuilder.from_config(start.tokenizer, start.kind, start.model_type, cfg)
    try:
        return ExecutionAccuracyCallback(
            datasets["validation"],
            builder,
            num_samples=cfg.rl.eval_samples,
            batch_size=cfg.evaluation.batch_size,
            max_new_tokens=cfg.evaluation.max_new_tokens,
            timeout=cfg.evaluation.timeout,
            seed=cfg.data.split_seed,
        )
    except ValueError as exc:
        log.warning("rl.eval_steps: %s; execution accuracy is not measured during RL", exc)
        return None


def _card(cfg: Config, result: GRPOResult) -> str:
    rewards = [e["reward"] for e in result.history if isinstance(e.get("reward"), (int, float))]
    settings = json.dumps(cfg.rl.model_dump(mode="json"), indent=2)
    return (
        f"# {Path(cfg.output_dir).name}: RL from execution (GRPO)\n\n"
        f"Started from `{result.init_from}` and trained {result.global_step} steps with TRL's GRPOTrainer on "
        f"{result.rows} training prompts; each completion's SQL was executed against the gold query.\n\n"
        f"- completions by outcome: {result.counts}\n"
        f"- weights saved: step {result.saved_step} (validation execution accuracy by step: "
        f"{result.accuracy_by_step or 'not measured'})\n"
        f"- mean reward, first and last log: {rewards[0] if rewards else '-'} → {rewards[-1] if rewards else '-'}\n\n"
        f"```json\n{settings}\n```\n"
    )
