"""`text2sql run`: prepare → train → merge → evaluate (fine-tuned, and the base model as a baseline)
→ compare, all under one output_dir.

Each stage records what it was made from (`stage.json`); a stage whose record matches the
current config is skipped and says so, a run stopped halfway continues where it stopped (training
resumes from its last complete checkpoint), and `--force` redoes everything. An `s3://` or
`gs://` output_dir is worked on in a local mirror and every finished stage is uploaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from text2sql.config import Config
from text2sql.rundir import RunDir

log = logging.getLogger("text2sql.run")

HEADLINE = ("execution_accuracy", "exact_match", "f1_score", "valid_sql_rate")


@dataclass
class StageOutcome:
    name: str
    path: Path | None
    skipped: bool
    seconds: float


@dataclass
class RunResult:
    output_dir: str
    stages: list[StageOutcome] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Path | None = None
    compare_page: Path | None = None


_SPEAK = {"main": True}  # only the main process of a distributed run reports progress


def _say(message: str) -> None:
    if _SPEAK["main"]:
        print(message, flush=True)


def _timed(result: RunResult, name: str, fn: Callable[[], tuple[Path | None, bool]]) -> Path | None:
    _say(f"[{len(result.stages) + 1}] {name} ...")
    start = time.perf_counter()
    path, skipped = fn()
    seconds = time.perf_counter() - start
    result.stages.append(StageOutcome(name, path, skipped, seconds))
    state = "up to date, skipped" if skipped else f"done in {seconds:.0f} s"
    _say(f"    {name}: {state}" + (f" -> {path}" if path else ""))
    return path


def _fingerprint_of(path: Path) -> str:
    rec = RunDir(path.parent).record(path.name)
    return (rec or {}).get("fingerprint", "")


def _localize_inputs(cfg: Config) -> Config:
    """Remote data paths are fetched into the local cache; the config keeps working locally."""
    from text2sql import storage

    cfg = cfg.model_copy(deep=True)
    for key in ("train", "validation", "test", "db_dir"):
        value = getattr(cfg.data, key)
        if value and storage.is_remote(value):
            setattr(cfg.data, key, str(storage.fetch(value)))
    return cfg


def _local_mirror(url: str) -> Path:
    from text2sql.models.tiny import cache_root

    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_root() / "runs" / digest


def run_pipeline(cfg: Config, *, force: bool = False) -> RunResult:
    """Run every stage of `cfg` in order; returns the stages and the headline metrics."""
    from text2sql import storage

    remote = cfg.output_dir if storage.is_remote(cfg.output_dir) else None
    work = cfg.model_copy(deep=True)
    if remote:
        work.output_dir = str(_local_mirror(remote))
        _say(f"output_dir {remote} is remote: working in {work.output_dir}, uploading each finished stage")
    work = _localize_inputs(work)
    result = RunResult(output_dir=cfg.output_dir)
    run = RunDir(work.output_dir)

    def publish(stage_path: Path | None) -> None:
        if remote and stage_path is not None:
            rel = stage_path.relative_to(work.output_dir)
            storage.upload(stage_path, storage.join(remote, *rel.parts))

    # 1. prepare
    def do_prepare():
        from text2sql.data.prepare import prepare

        res = prepare(work, force=force)
        return res.path, res.skipped

    from accelerate import PartialState

    # Under `accelerate launch` every process runs this function: training is distributed, the
    # other stages run on the main process only while the rest wait.
    from text2sql.training.arguments import uses_cpu

    state = PartialState(cpu=uses_cpu(work))
    _SPEAK["main"] = state.is_main_process
    with state.main_process_first():
        prepared = _timed(result, "prepare", do_prepare)
    if state.is_main_process:
        publish(prepared)

    # 2. train (resumes from the last complete checkpoint of an interrupted run)
    def do_train():
        from text2sql.training.train import train

        res = train(work, resume="auto", force=force)
        return res.path, res.skipped

    trained = _timed(result, "train", do_train)
    state.wait_for_everyone()
    if not state.is_main_process:
        return result
    publish(trained)
    if trained is None:
        raise RuntimeError("training produced no output folder")

    # 3. merge (adapters only; full fine-tuning already wrote a standalone model)
    final_model = trained
    if trained.name == "adapter":
        final_model = run.stage_dir("merged")

        def do_merge():
            from text2sql.models.merge import merge_adapter

            depends_on = {"adapter": _fingerprint_of(trained)}
            if not run.guard("merged", depends_on, force, unfinished_ok=True):
                return final_model, True
            merge_adapter(trained, final_model, force=True)
            run.mark("merged", work, depends_on)
            return final_model, False

        publish(_timed(result, "merge", do_merge))

    # 4. evaluate the fine-tuned model, and the base model as a baseline when asked
    eval_settings = work.evaluation.model_dump(mode="json")
    targets = [("finetuned", str(final_model), {"model": _fingerprint_of(final_model)})]
    if work.evaluation.baseline:
        targets.append(("baseline", work.model.name_or_path, {"model": work.model.name_or_path}))
    for name, model, identity in targets:
        stage = f"eval/{name}"

        def do_eval(name=name, model=model, identity=identity, stage=stage):
            from text2sql.evaluation.evaluate import evaluate_with

            depends_on = {**identity, "data": _fingerprint_of(run.stage_dir("data")), "evaluation": eval_settings}
            if not run.guard(stage, depends_on, force, unfinished_ok=True):
                return run.stage_dir(stage), True
            evaluate_with(work.evaluation, str(run.stage_dir("data")), run.stage_dir(stage), model=model)
            run.mark(stage, work, depends_on)
            return run.stage_dir(stage), False

        path = _timed(result, f"evaluate {name}", do_eval)
        publish(path)
        result.metrics[name] = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    result.report = run.stage_dir("eval/finetuned") / "report.html"
    _log_to_tracker(work, result.metrics.get("finetuned", {}))

    # 5. compare baseline vs fine-tuned
    if "baseline" in result.metrics:
        from text2sql.evaluation.compare_runs import compare_runs, format_table, render_compare_html

        comparison = compare_runs([run.stage_dir("eval/baseline"), run.stage_dir("eval/finetuned")])
        _say(format_table(comparison))
        result.compare_page = render_compare_html(comparison, run.stage_dir("eval") / "compare.html")
        if remote:
            storage.upload(result.compare_page, storage.join(remote, "eval", "compare.html"))
    if remote:
        from text2sql.config import save_config

        save_config(cfg, work.output_dir)
        storage.upload(Path(work.output_dir) / "config.yaml", storage.join(remote, "config.yaml"))
        _publish_tracking(work, remote)
    return result


def _publish_tracking(work: Config, remote: str) -> None:
    """TensorBoard event files and the tracking record belong with the run they describe; they are
    uploaded last because evaluation adds its metrics to them after training."""
    from text2sql import storage
    from text2sql.tracking import RECORD, tensorboard_dir

    logs = tensorboard_dir(work)
    if logs.is_dir() and any(logs.iterdir()):
        storage.upload(logs, storage.join(remote, logs.name))
    record = Path(work.output_dir) / RECORD
    if record.is_file():
        storage.upload(record, storage.join(remote, RECORD))


def _log_to_tracker(cfg: Config, metrics: dict[str, Any]) -> None:
    if cfg.tracking.backend == "none" or not metrics:
        return
    from text2sql.tracking import log_evaluation

    log_evaluation(cfg, metrics, cfg.output_dir)


def summary(result: RunResult) -> str:
    """The headline metrics of every evaluated model, as a small table."""
    names = list(result.metrics)
    lines = [f"{'metric':<22}" + "".join(f"{n:>12}" for n in names)]
    for key in HEADLINE + ("num_examples",):
        row = f"{key:<22}"
        for n in names:
            value = result.metrics[n].get(key)
            row += f"{value:>12.3f}" if isinstance(value, float) else f"{str(value if value is not None else '-'):>12}"
        lines.append(row)
    where = result.output_dir.rstrip("/")
    if result.report is not None:
        rel = result.report.relative_to(result.report.parents[2])
        lines.append(f"report: {where}/{rel.as_posix()}")
    if result.compare_page is not None:
        lines.append(f"baseline vs fine-tuned: {where}/eval/compare.html")
    return "\n".join(lines)
