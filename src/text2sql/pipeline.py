"""`text2sql run`: the stages of `stages.pipeline_stages` in order, under one output_dir: prepare →
train → merge → evaluate (fine-tuned, and the base model as a baseline) → compare.

Each stage skips itself when its output is current, a run stopped halfway continues where it stopped
(training resumes from its last complete checkpoint), and `--force` redoes everything. An `s3://`
or `gs://` output_dir is worked on in a local mirror and every finished stage is uploaded. Under
`accelerate launch` every process runs this; training is distributed, the other stages run on the
main process while the rest wait, and only the main process reports.

With `estimate`, the run first says how long each stage will take and how much memory it will need
here (the estimate `text2sql init` or `validate` kept for this config, else a short probe), and the
summary sets each stage's actual time and peak memory beside its estimate.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import PartialState

from text2sql import storage
from text2sql.config import Config, save_config
from text2sql.models.registry import check_registration
from text2sql.paths import cache_root
from text2sql.sizing import (
    Estimate,
    ProbeError,
    comparison_table,
    estimate_run,
    estimate_table,
    format_duration,
    load_estimate,
    run_probe,
    save_estimate,
)
from text2sql.sizing.memory import PeakRss
from text2sql.stages import (
    Evaluate,
    Say,
    StageContext,
    StageOutcome,
    metrics_of,
    pipeline_stages,
    quiet,
    say_line,
    timed,
)
from text2sql.tracking import RECORD, log_evaluation, tensorboard_dir
from text2sql.tracking.vertex import DRY_RUN_FILE
from text2sql.training.arguments import uses_cpu

HEADLINE = ("execution_accuracy", "exact_match", "f1_score", "valid_sql_rate")


@dataclass
class RunResult:
    output_dir: str
    stages: list[StageOutcome] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Path | None = None
    compare_page: Path | None = None
    estimate: Estimate | None = None  # what the run expected of itself, when asked to estimate
    peaks: dict[str, float | None] = field(default_factory=dict)  # stage → peak resident memory, MiB


def _localize_inputs(cfg: Config) -> Config:
    """Remote data paths are fetched into the local cache; the config keeps working locally."""
    cfg = cfg.model_copy(deep=True)
    for key in ("train", "validation", "test", "db_dir"):
        value = getattr(cfg.data, key)
        if value and storage.is_remote(value):
            setattr(cfg.data, key, str(storage.fetch(value)))
    return cfg


def _local_mirror(url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_root() / "runs" / digest


def run_pipeline(cfg: Config, *, force: bool = False, say: Say = say_line, estimate: bool = False) -> RunResult:
    """Run every stage of `cfg` in order; returns the stages and the headline metrics. `say` takes
    the progress lines (on the main process of a distributed run only). `estimate`: print the run's
    estimate first (`estimate_for_run`); the summary then compares it with what happened."""
    remote = cfg.output_dir if storage.is_remote(cfg.output_dir) else None
    work = cfg.model_copy(deep=True)
    state = PartialState(cpu=uses_cpu(work))
    say = say if state.is_main_process else quiet
    if remote:
        work.output_dir = str(_local_mirror(remote))
        say(f"output_dir {remote} is remote: working in {work.output_dir}, uploading each finished stage")
    if work.launch.register_model:  # before hours of training, not after
        check_registration(work, remote)
    work = _localize_inputs(work)
    ctx = StageContext(work, force=force, say=say, remote=remote)
    result = RunResult(output_dir=cfg.output_dir)
    if estimate and state.is_main_process and state.num_processes == 1:
        result.estimate = estimate_for_run(cfg, work, say)

    for number, stage in enumerate(pipeline_stages(work), start=1):
        if stage.processes == "main":
            state.wait_for_everyone()
            if not state.is_main_process:
                return result
        with state.main_process_first() if stage.processes == "main first" else contextlib.nullcontext():
            with PeakRss() as peak:
                outcome = timed(stage, ctx, number)
        result.stages.append(outcome)
        result.peaks[outcome.name] = peak.mb
        if state.is_main_process and remote and outcome.path is not None:
            rel = outcome.path.relative_to(work.output_dir)
            storage.upload(outcome.path, storage.join(remote, *rel.parts))
        if isinstance(stage, Evaluate):
            result.metrics[stage.label] = metrics_of(outcome)
        elif stage.name == "compare":
            result.compare_page = outcome.path
    result.report = ctx.run.stage_dir("eval/finetuned") / "report.html"
    if work.tracking.backend != "none" and result.metrics.get("finetuned"):
        log_evaluation(work, result.metrics["finetuned"], work.output_dir)
    if remote:
        save_config(cfg, work.output_dir)
        storage.upload(Path(work.output_dir) / "config.yaml", storage.join(remote, "config.yaml"))
        _publish_tracking(work, remote)
    return result


def estimate_for_run(cfg: Config, work: Config, say: Say) -> Estimate | None:
    """The estimate kept for `cfg` on this machine (by `text2sql init` or `validate`, or an earlier
    run), else a new one from a probe of `work` (cfg with local inputs); printed as a table. None,
    with the reason said, when the probe cannot run: the run goes on without it."""
    kept = load_estimate(cfg)
    if kept is not None:
        found, made_by = kept
        probed_at, starts_at = found.machine.get("threads"), _threads_now(work, found)
        if probed_at == starts_at:
            age = format_duration(max(0.0, time.time() - found.created))
            say(estimate_table(found, f"estimate made by {made_by} {age} ago"))
            return found
        # Cores busy at the probe and free now (or the reverse) change every stage's speed.
        say(f"the estimate {made_by} kept was measured at {probed_at} CPU thread(s), this run starts at {starts_at}")
    say("estimating the run: a short probe of the model on this machine ...")
    try:
        probe = run_probe(work)
    except ProbeError as exc:
        say(f"no estimate: {exc}")
        return None
    made = estimate_run(work, probe)
    save_estimate(cfg, made, "text2sql run")
    say(estimate_table(made, f"estimate (probe: {format_duration(probe.seconds)})"))
    return made


def _threads_now(work: Config, kept: Estimate) -> int | None:
    """The torch threads this run starts with, as the probe would choose them now; on a GPU the
    estimate's own (threads do not set the pace there)."""
    from text2sql.threads import choose_threads

    if kept.machine.get("gpu"):
        return kept.machine.get("threads")
    return choose_threads(work.model.threads)


def _publish_tracking(work: Config, remote: str) -> None:
    """TensorBoard event files and the tracking record belong with the run they describe; they are
    uploaded last because evaluation adds its metrics to them after training."""
    logs = tensorboard_dir(work)
    if logs.is_dir() and any(logs.iterdir()):
        storage.upload(logs, storage.join(remote, logs.name))
    for name in (RECORD, DRY_RUN_FILE):  # the Vertex AI Experiments calls of tracking.dry_run too
        path = Path(work.output_dir) / name
        if path.is_file():
            storage.upload(path, storage.join(remote, name))


def summary(result: RunResult) -> str:
    """The headline metrics of every evaluated model, as a small table."""
    names = list(result.metrics)
    lines = [f"{'metric':<22}" + "".join(f"{n:>12}" for n in names)]
    for key in (*HEADLINE, "num_examples"):
        row = f"{key:<22}"
        for n in names:
            value = result.metrics[n].get(key)
            row += f"{value:>12.3f}" if isinstance(value, float) else f"{str(value if value is not None else '-'):>12}"
        lines.append(row)
    for key, label in (
        ("latency_p50_seconds", "latency p50 (s)"),
        ("seconds_per_question", "s per question"),
        ("cost_per_1000_questions", "cost per 1,000 q"),
    ):
        values = [(result.metrics[n].get("cost") or {}).get(key) for n in names]
        if any(v is not None for v in values):
            lines.append(f"{label:<22}" + "".join(f"{v:>12.4g}" if v is not None else f"{'-':>12}" for v in values))
    where = result.output_dir.rstrip("/")
    if result.report is not None:
        rel = result.report.relative_to(result.report.parents[2])
        lines.append(f"report: {where}/{rel.as_posix()}")
    if result.compare_page is not None:
        lines.append(f"{' vs '.join(names)}: {where}/eval/compare.html")
    if result.estimate is not None:
        actual = [(s.name, s.seconds, s.skipped, result.peaks.get(s.name)) for s in result.stages]
        lines += ["", "time and memory, estimated and actual:", comparison_table(result.estimate, actual)]
    return "\n".join(lines)
