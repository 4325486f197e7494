"""`text2sql train`: prepared data → a trained adapter (`<output_dir>/adapter/`) or, for full
fine-tuning, a model (`<output_dir>/model/`), with checkpoints in `<output_dir>/checkpoints/`.

The stage folder holds the PEFT adapter (or the model) and tokenizer, the resolved `config.yaml`,
`trainable_parameters.json`, `training_log.json` (the trainer's log history) and a `README.md` model
card. It appears whole or not at all, and a folder made by a different config is never replaced
without `force`. Rerunning an unchanged config skips training ("up to date").

Runs the same under `accelerate launch` (DDP, DeepSpeed, FSDP): every process trains; only the main
process prepares data first, logs, copies checkpoints and writes the stage folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import PartialState

from text2sql.config import Config
from text2sql.data.prepare import PrepareResult
from text2sql.data.tokenizer_identity import tokenizer_fingerprint
from text2sql.errors import ConfigError, DataError, OutputExistsError
from text2sql.models.loading import ResolvedModel
from text2sql.rundir import RunDir, fingerprint
from text2sql.tracking import log_evaluation
from text2sql.training.arguments import CHECKPOINTS, uses_cpu
from text2sql.training.callbacks import check_sync_destination
from text2sql.training.checkpoints import MARKER, latest_complete_checkpoint, remove_partial_checkpoints
from text2sql.training.methods import check_method_available, is_peft_method
from text2sql.training.model_card import dump_json, render_model_card
from text2sql.training.stage import TrainedStage, TrainerBuild
from text2sql.training.trainer import TrainingSetup, build_trainer

log = logging.getLogger("text2sql.train")

PARAMETERS_FILE = "trainable_parameters.json"
LOG_FILE = "training_log.json"


@dataclass
class TrainResult:
    """What a training run produced (or found up to date)."""

    path: Path
    stage: str  # "adapter" or "model"
    skipped: bool
    global_step: int = 0
    train_loss: float | None = None  # the last logged training loss
    mean_train_loss: float | None = None  # averaged over this run's steps
    metrics: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    resumed_from: Path | None = None
    checkpoints: Path | None = None
    main_process: bool = True  # False on the other processes of a distributed run


def stage_name(cfg: Config) -> str:
    return "adapter" if is_peft_method(cfg.finetune.method) else "model"


def finetuned_path(cfg: Config) -> Path:
    """The run's fine-tuned model as a plain folder: `merged/` for adapter methods, else `model/`."""
    return RunDir(cfg.output_dir).stage_dir("merged" if is_peft_method(cfg.finetune.method) else stage_name(cfg))


def train_depends_on(cfg: Config, data_fingerprint: str, init_from: str | Path | None) -> dict[str, Any]:
    """What a trained stage depends on; any change makes it a different run's output."""
    callbacks = cfg.callbacks.model_dump(mode="json")
    callbacks.pop("progress", None)  # display only
    return {
        "data": data_fingerprint,
        "model": cfg.model.model_dump(mode="json", exclude={"threads"}),  # threads change speed, not results
        "finetune": cfg.finetune.model_dump(mode="json"),
        "training": cfg.training,
        "callbacks": callbacks,
        "init_from": str(Path(init_from).resolve()) if init_from else None,
    }


def _last_loss(history: list[dict[str, Any]]) -> float | None:
    for entry in reversed(history):
        if "loss" in entry:
            return float(entry["loss"])
    return None


def _skipped_result(run: RunDir, stage: str, main_process: bool) -> TrainResult:
    path = run.stage_dir(stage)
    rec = run.record(stage) or {}
    try:
        parameters = json.loads((path / PARAMETERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        parameters = {}
    return TrainResult(
        path=path,
        stage=stage,
        skipped=True,
        global_step=int(rec.get("global_step", 0)),
        train_loss=rec.get("train_loss"),
        metrics=rec.get("metrics", {}),
        parameters=parameters,
        checkpoints=run.root / CHECKPOINTS,
        main_process=main_process,
    )


def _check_tokenizer(cfg: Config, model: ResolvedModel, run: RunDir, force: bool) -> None:
    """Prepared data must come from this model's tokenizer: other token ids would train on garbage."""
    rec = run.record("data")
    if rec is None or force or "tokenizer" not in rec:
        return
    now = tokenizer_fingerprint(model.tokenizer)
    if rec["tokenizer"] != now:
        raise DataError(
            f"{run.stage_dir('data')} was prepared with a different tokenizer than {cfg.model.name_or_path} "
            f"has now ({rec['tokenizer']} vs {now}); prepare it again: text2sql train --force "
            "(or text2sql prepare --force)"
        )


def _check_inputs(cfg: Config, resume: bool | str, init_from: str | Path | None) -> None:
    check_method_available(cfg)
    check_sync_destination(cfg.callbacks.checkpoint_sync)
    if "://" in cfg.output_dir:
        raise ConfigError(
            f"output_dir={cfg.output_dir}: 'text2sql train' needs a local output_dir; use 'text2sql run' "
            "for a remote one, or set callbacks.checkpoint_sync to copy checkpoints to a bucket"
        )
    if resume and init_from:
        raise ConfigError(
            "--resume continues a run with its own weights and optimizer; --init-from starts a new one: use one"
        )
    if init_from is not None:
        if not is_peft_method(cfg.finetune.method):
            raise ConfigError(
                "--init-from loads an adapter; for full fine-tuning set model.name_or_path to the model folder"
            )
        if not Path(init_from).is_dir():
            raise ConfigError(f"--init-from {init_from}: no such folder")


def _marker_fingerprint(checkpoint: Path) -> str | None:
    try:
        return json.loads((checkpoint / MARKER).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None


def _checkpoint_to_resume(run: RunDir, resume: bool | str, force: bool, fp: str, is_main: bool) -> Path | None:
    """The checkpoint to resume from (None: start fresh); clears checkpoints a fresh start replaces.

    `resume="auto"` continues only a checkpoint saved by this same config (an interrupted run of
    it), and otherwise behaves like a fresh start.
    """
    checkpoints = run.root / CHECKPOINTS
    if resume == "auto":
        latest = latest_complete_checkpoint(checkpoints)
        resume = latest is not None and not force and _marker_fingerprint(latest) == fp
    if resume:
        latest = latest_complete_checkpoint(checkpoints)
        if latest is None:
            raise ConfigError(f"--resume: no complete checkpoint in {checkpoints}; train without --resume")
        if _marker_fingerprint(latest) not in (None, fp):
            log.warning("%s was saved with other settings than this run's; resuming anyway", latest)
        if is_main:
            remove_partial_checkpoints(checkpoints)
        return latest
    latest = latest_complete_checkpoint(checkpoints)
    # Checkpoints of a run whose adapter/model was saved are spent; those of an unfinished run are
    # the only way to continue it, so they are kept unless --force.
    finished = {(run.record(s) or {}).get("fingerprint") for s in ("adapter", "model")}
    if latest is not None and not force and _marker_fingerprint(latest) not in finished:
        raise OutputExistsError(
            f"{checkpoints} holds checkpoints of an unfinished run (latest {latest.name}); pass --resume "
            "to continue it, or --force to start over"
        )
    if is_main and checkpoints.exists():
        shutil.rmtree(checkpoints)
    return None


class SFTStage(TrainedStage):
    """Supervised fine-tuning into `adapter/` (adapter methods) or `model/` (full fine-tuning)."""

    def __init__(
        self,
        cfg: Config,
        *,
        resume: bool | str,
        init_from: str | Path | None,
        callbacks: Sequence[Any],
        **common: Any,
    ):
        super().__init__(cfg, **common)
        self.name = stage_name(cfg)
        self.resume, self.init_from, self.callbacks = resume, init_from, callbacks
        self.resume_from: Path | None = None
        self.fingerprint = ""
        self.history: list[dict[str, Any]] = []

    def check(self) -> None:
        _check_inputs(self.cfg, self.resume, self.init_from)
        if self.resume is True and latest_complete_checkpoint(Path(self.cfg.output_dir) / CHECKPOINTS) is None:
            # Before anything is prepared or written: a refused command leaves every file as it was.
            raise ConfigError(
                f"--resume: no complete checkpoint in {Path(self.cfg.output_dir) / CHECKPOINTS}; train without --resume"
            )

    def open_state(self) -> None:
        # The distributed state the trainer will use (gloo processes on CPU), so that only the main
        # process prepares data and writes outputs.
        self.state = PartialState(cpu=uses_cpu(self.cfg))
        if not self.state.is_main_process:
            logging.getLogger("text2sql").setLevel(logging.WARNING)

    def before_prepare(self) -> None:
        assert self.model is not None
        _check_tokenizer(self.cfg, self.model, self.run_dir, self.force)

    def prepare(self) -> PrepareResult:
        with self.state.main_process_first():
            return super().prepare()

    def depends_on(self, data_fingerprint: str) -> dict[str, Any]:
        return train_depends_on(self.cfg, data_fingerprint, self.init_from)

    def skipped(self) -> TrainResult:
        return _skipped_result(self.run_dir, self.name, self.state.is_main_process)

    def before_build(self, depends_on: dict[str, Any]) -> None:
        self.fingerprint = fingerprint(depends_on)  # marks the checkpoints this config saves
        self.resume_from = _checkpoint_to_resume(
            self.run_dir, self.resume, self.force, self.fingerprint, self.state.is_main_process
        )
        if self.resume_from is not None:
            log.info("resuming from %s", self.resume_from)
        self.state.wait_for_everyone()

    def build(self) -> TrainingSetup:
        assert self.model is not None and self.prepared is not None
        return build_trainer(
            self.cfg,
            self.model,
            self.prepared.path,
            init_from=self.init_from,
            extra_callbacks=self.callbacks,
            fingerprint=self.fingerprint,
            resume=self.resume_from is not None,
        )

    def train_kwargs(self) -> dict[str, Any]:
        return {"resume_from_checkpoint": str(self.resume_from) if self.resume_from else None}

    def finish(self, build: TrainerBuild, output: Any) -> TrainResult:
        assert isinstance(build, TrainingSetup)
        trainer = build.trainer
        metrics = {k: v for k, v in output.metrics.items() if isinstance(v, (int, float))}
        if trainer.eval_dataset is not None:
            metrics.update(_final_evaluation(self.cfg, trainer, self.state.is_main_process))
        memory = build.memory.peak if build.memory else {}
        metrics.update({k: v for k, v in memory.items() if v is not None})
        self.history = list(trainer.state.log_history)
        mean_loss = float(output.training_loss) if output.training_loss is not None else None
        last_loss = _last_loss(self.history)
        return TrainResult(
            path=self.run_dir.stage_dir(self.name),
            stage=self.name,
            skipped=False,
            global_step=trainer.state.global_step,
            # Runs shorter than logging_steps log no loss; the run's mean is the best figure then.
            train_loss=last_loss if last_loss is not None else mean_loss,
            mean_train_loss=mean_loss,
            metrics=metrics,
            parameters=build.parameters,
            resumed_from=self.resume_from,
            checkpoints=self.run_dir.root / CHECKPOINTS,
            main_process=self.state.is_main_process,
        )

    def save_weights(self, build: TrainerBuild, staged: Path) -> None:
        # Training turned the KV cache off; the saved model should generate with it.
        base = build.model.get_base_model() if hasattr(build.model, "get_base_model") else build.model
        base.config.use_cache = True
        build.trainer.save_model(str(staged))

    def write(self, build: TrainerBuild, result: TrainResult, staged: Path) -> dict[str, Any]:
        assert isinstance(build, TrainingSetup)
        cfg, trainer = self.cfg, build.trainer
        build.tokenizer.save_pretrained(str(staged))
        (staged / PARAMETERS_FILE).write_text(
            dump_json({**build.parameters, "method": cfg.finetune.method, "target_modules": build.target_modules}),
            encoding="utf-8",
        )
        (staged / LOG_FILE).write_text(dump_json(self.history), encoding="utf-8")
        card = render_model_card(
            cfg,
            stage=self.name,
            kind=build.kind,
            model_type=build.model_type,
            parameters=build.parameters,
            hyperparameters={**cfg.training, **{k: getattr(trainer.args, k) for k in ("bf16", "fp16")}},
            metrics={**result.metrics, "final_train_loss": result.train_loss},
            data_rows={name: len(ds) for name, ds in build.datasets.items()},
            target_modules=build.target_modules,
        )
        (staged / "README.md").write_text(card, encoding="utf-8")
        return {
            "kind": build.kind,
            "model_type": build.model_type,
            "method": cfg.finetune.method,
            "base_model": cfg.model.name_or_path,
            "global_step": result.global_step,
            "num_processes": self.state.num_processes,
            "train_loss": result.train_loss,
            "metrics": result.metrics,
        }


def train(
    cfg: Config,
    *,
    model: ResolvedModel | None = None,
    resume: bool | str = False,
    init_from: str | Path | None = None,
    force: bool = False,
    callbacks: Sequence[Any] = (),
    prepared: PrepareResult | None = None,
) -> TrainResult:
    """Train cfg.model on cfg.data (preparing it first when missing or stale) and save the result.

    `resume` continues from the latest complete checkpoint (weights, optimizer, scheduler, step),
    `"auto"` only when that checkpoint belongs to this same config;
    `init_from` starts from an adapter's weights with a fresh optimizer at step 0; `force` replaces
    outputs of a different run; `callbacks` are extra `TrainerCallback`s. `model` is cfg.model
    resolved (`open_model`), and `prepared` its data (a run's prepare stage), when the caller has
    them already: with `force`, preparing again would redo the same work.
    """
    stage = SFTStage(
        cfg, resume=resume, init_from=init_from, callbacks=callbacks, model=model, prepared=prepared, force=force
    )
    return stage.run()


def _final_evaluation(cfg: Config, trainer, is_main: bool) -> dict[str, Any]:
    """Evaluate once more after training, logged to the tracker run training used.

    The trackers' callbacks close their run at the end of training, and a later `evaluate()` would
    open a second run; so they are detached here and the metrics go to the recorded run.
    """
    from transformers.integrations import INTEGRATION_TO_CALLBACK

    for callback in set(INTEGRATION_TO_CALLBACK.values()):
        trainer.remove_callback(callback)
    metrics = trainer.evaluate()
    if is_main and cfg.tracking.backend != "none":
        log_evaluation(cfg, metrics, prefix="", step=trainer.state.global_step)
    return metrics
