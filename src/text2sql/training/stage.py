"""What every trained stage (`train`, `rl`) does around its trainer, in one order.

A stage checks its inputs, opens the model, takes the prepared data (the run's prepare stage hands
it over; otherwise it is prepared here), skips itself when its folder is current, builds the
trainer, trains with the thread count following the machine, and writes its folder through one
staging writer: whole or not at all, never replacing another run's output without `force`. The
subclasses say only what differs: what the stage depends on, how its trainer is built, and what
goes into its folder.
"""

from __future__ import annotations

import logging
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.data.prepare import PrepareResult, prepare
from text2sql.models.loading import ResolvedModel, open_model
from text2sql.progress import progress_bars_disabled
from text2sql.rundir import RunDir
from text2sql.threads import use_threads
from text2sql.training.callbacks import ThreadFollowCallback
from text2sql.training.methods import format_summary
from text2sql.training.quiet import quiet_library_warnings

log = logging.getLogger("text2sql.train")


@dataclass
class TrainerBuild:
    """A trainer ready to train, and what its stage reads of it afterwards."""

    trainer: Any
    model: Any  # the model being trained (the PEFT model for adapter methods)
    tokenizer: Any
    parameters: dict[str, Any]  # trainable parameters: counts and share


class SingleProcess:
    """The distributed state of a stage that trains in one process."""

    is_main_process = True
    num_processes = 1

    def wait_for_everyone(self) -> None:
        pass


class TrainedStage(ABC):
    """One trained stage: `run` is the order every such stage follows; subclasses fill in the steps."""

    name: str  # the stage folder's name
    log: logging.Logger = log

    def __init__(
        self,
        cfg: Config,
        *,
        model: ResolvedModel | None = None,
        prepared: PrepareResult | None = None,
        force: bool = False,
    ):
        self.cfg = cfg
        self.model = model
        self.prepared = prepared
        self.force = force
        self.run_dir = RunDir(cfg.output_dir)
        self.state: Any = SingleProcess()

    # ------------------------------------------------------------------ what differs between stages

    @abstractmethod
    def check(self) -> None:
        """Refuse bad inputs before anything is prepared or written."""

    @abstractmethod
    def depends_on(self, data_fingerprint: str) -> dict[str, Any]:
        """What the stage's output depends on; any change makes it a different run's."""

    @abstractmethod
    def skipped(self) -> Any:
        """The result of a stage found up to date."""

    @abstractmethod
    def build(self) -> TrainerBuild:
        """The trainer, from `self.model` and `self.prepared`."""

    @abstractmethod
    def finish(self, build: TrainerBuild, output: Any) -> Any:
        """The stage's result, from the trained trainer and `trainer.train()`'s output."""

    @abstractmethod
    def save_weights(self, build: TrainerBuild, staged: Path) -> None:
        """The trained weights into `staged` (every process: a sharded model gathers)."""

    @abstractmethod
    def write(self, build: TrainerBuild, result: Any, staged: Path) -> dict[str, Any]:
        """Everything else of the folder into `staged` (main process); returns the record's extra fields."""

    def open_state(self) -> None:
        """The distributed state; one process unless a stage trains under accelerate."""
        self.state = SingleProcess()

    def before_prepare(self) -> None:
        """Checks that need the opened model but come before data is prepared."""
        return None

    def before_build(self, depends_on: dict[str, Any]) -> None:
        """Work between the up-to-date check and the trainer (for example, which checkpoint resumes)."""
        return None

    def train_kwargs(self) -> dict[str, Any]:
        return {}

    def describe(self, build: TrainerBuild) -> str:
        return format_summary(build.parameters)

    # ------------------------------------------------------------------------------- the one order

    def run(self) -> Any:
        cfg = self.cfg
        self.check()
        self.model = self.model or open_model(cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code)
        self.open_state()
        self.before_prepare()
        if self.prepared is None:
            self.prepared = self.prepare()
        depends_on = self.depends_on((self.run_dir.record("data") or {}).get("fingerprint", ""))
        if not self.run_dir.guard(self.name, depends_on, self.force):
            self.log.info("%s is up to date; nothing to train", self.run_dir.stage_dir(self.name))
            return self.skipped()
        self.before_build(depends_on)
        with quiet_library_warnings():
            build = self.build()
        threads = use_threads(cfg.model.threads)
        self.log.info("%s; %d CPU thread%s", self.describe(build), threads, "" if threads == 1 else "s")
        build.trainer.add_callback(ThreadFollowCallback(cfg.model.threads))  # the count follows idle cores
        # Checkpoint saves would each draw a 'Writing model shards' bar between the progress lines.
        with quiet_library_warnings(), progress_bars_disabled():
            output = build.trainer.train(**self.train_kwargs())
            result = self.finish(build, output)
        with quiet_library_warnings():
            write_stage(
                self.run_dir,
                self.name,
                cfg,
                depends_on,
                save_weights=lambda staged: self.save_weights(build, staged),
                write_rest=lambda staged: self.write(build, result, staged),
                state=self.state,
            )
        return result

    def prepare(self) -> PrepareResult:
        assert self.model is not None  # opened by `run` first
        return prepare(self.cfg, self.model, force=self.force)


def write_stage(
    run: RunDir,
    stage: str,
    cfg: Config,
    depends_on: dict[str, Any],
    *,
    save_weights: Callable[[Path], None],
    write_rest: Callable[[Path], dict[str, Any]],
    state: Any = None,
) -> None:
    """Build stage `stage`'s folder in `.<stage>.staging` and swap it in whole: every process saves the
    weights, the main one writes the rest (`write_rest` returns the record's extra fields) and commits.
    The staging folder is removed whatever happens."""
    state = state or SingleProcess()
    # One fixed staging path for all processes (a per-process temp name would split a sharded save).
    staged = run.root / f".{stage}.staging"
    if state.is_main_process:
        shutil.rmtree(staged, ignore_errors=True)
    state.wait_for_everyone()
    try:
        with progress_bars_disabled():
            save_weights(staged)
        state.wait_for_everyone()
        if state.is_main_process:
            run.commit(stage, staged, cfg, depends_on, extra=write_rest(staged))
    finally:
        if state.is_main_process:
            shutil.rmtree(staged, ignore_errors=True)
    state.wait_for_everyone()
