"""The stages of a run, each with the same entry point: `stage.run(ctx)` over one `StageContext`
(the config, the run directory, `force`, and where progress lines go).

Each stage records what made its output (`stage.json`, see `rundir`) and skips itself when that
output is current, so `text2sql run` is just these stages in order (`pipeline`), and a verb that runs
one stage (`text2sql prepare`, `text2sql train`) behaves exactly as the same stage inside a run.
The base model named by the config is resolved once per context (`ctx.model`: its kind and
tokenizer) and handed to every stage that needs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from text2sql import storage
from text2sql.config import Config
from text2sql.data.prepare import PrepareResult, prepare
from text2sql.data.prepare_report import summarize
from text2sql.data.synth.cached import has_held_out
from text2sql.evaluation.compare_runs import compare_runs, format_table, render_compare_html
from text2sql.evaluation.evaluate import evaluate
from text2sql.inference.label import ANSWERS, label_for_run
from text2sql.inference.openai_model import OpenAIModel
from text2sql.models.loading import ResolvedModel, open_model
from text2sql.models.merge import merge_adapter
from text2sql.models.registry import check_registration, run_upload_request, upload_model
from text2sql.rundir import RunDir
from text2sql.training.grpo import init_model_path, train_grpo
from text2sql.training.methods import is_peft_method
from text2sql.training.train import finetuned_path, train

Say = Callable[[str], None]


def quiet(message: str) -> None:
    """A `Say` that prints nothing (the other processes of a distributed run)."""


def say_line(message: str) -> None:
    print(message, flush=True)


@dataclass
class StageContext:
    """What every stage runs with."""

    cfg: Config
    force: bool = False
    say: Say = say_line
    remote: str | None = None  # the gs:// or s3:// output_dir a local mirror (cfg.output_dir) is uploaded to
    prepared: PrepareResult | None = None  # the prepare stage's data, handed to the stages that train
    _model: ResolvedModel | None = field(default=None, repr=False)

    @property
    def run(self) -> RunDir:
        return RunDir(self.cfg.output_dir)

    @property
    def model(self) -> ResolvedModel:
        """cfg.model resolved (kind, model_type, tokenizer), once for all the stages of a command."""
        if self._model is None:
            m = self.cfg.model
            self._model = open_model(m.name_or_path, trust_remote_code=m.trust_remote_code)
        return self._model


@dataclass
class StageOutcome:
    name: str
    path: Path | None
    skipped: bool
    seconds: float = 0.0
    result: Any = None  # the stage's own result (PrepareResult, TrainResult, MergeResult, EvaluationResult)


class Stage(Protocol):
    name: str
    # Under `accelerate launch`: "all" processes run it together (training), "main first" runs it on
    # the main process while the others wait, then on them (they find it current), "main" runs it on
    # the main process only.
    processes: str

    def run(self, ctx: StageContext) -> StageOutcome: ...


class Prepare:
    """Read, split and tokenize the data into `<output_dir>/data/`; with data.label, first have the
    teacher label its questions into `<output_dir>/label/` (skipped when current)."""

    name = "prepare"
    processes = "main first"

    def run(self, ctx: StageContext) -> StageOutcome:
        if ctx.cfg.data.label is not None:
            pairs, report = label_for_run(ctx.cfg, force=ctx.force)
            ctx.say(f"    label: up to date, skipped -> {pairs}" if report is None else report.table())
        result = prepare(ctx.cfg, ctx.model, force=ctx.force, synth_teacher=synth_teacher(ctx.cfg))
        ctx.prepared = result
        ctx.say(summarize(result.report))  # rows in and out per split, and what was dropped
        return StageOutcome(self.name, result.path, result.skipped, result=result)


def synth_teacher(cfg: Config) -> Callable[[], OpenAIModel] | None:
    """What makes the teacher of data.synth.teacher, called only when its pairs are sampled."""
    spec = cfg.data.synth.teacher if cfg.data.synth is not None else None
    if not spec:
        return None
    ev = cfg.evaluation
    return lambda: OpenAIModel(spec, base_url=ev.base_url, timeout=ev.request_timeout, max_retries=ev.max_retries)


class Train:
    """Train into `<output_dir>/adapter/` (or `model/` for full fine-tuning), preparing data first."""

    name = "train"
    processes = "all"

    def __init__(
        self, *, resume: bool | str = "auto", init_from: str | Path | None = None, callbacks: Sequence[Any] = ()
    ):
        self.resume, self.init_from, self.callbacks = resume, init_from, callbacks

    def run(self, ctx: StageContext) -> StageOutcome:
        result = train(
            ctx.cfg,
            model=ctx.model,
            resume=self.resume,
            init_from=self.init_from,
            force=ctx.force,
            callbacks=self.callbacks,
            prepared=ctx.prepared,
        )
        return StageOutcome(self.name, result.path, result.skipped, result=result)


def final_model(cfg: Config) -> Path:
    """The run's fine-tuned model: the merged folder for adapter methods, else the trained model."""
    return finetuned_path(cfg)


def evaluated_model(cfg: Config, label: str) -> str:
    """The model an Evaluate stage scores: `finetuned` is the run's last trained model (the RL model
    when rl.enabled), `sft` the model RL started from (the run's SFT result, or rl.init_from),
    `reference` the endpoint of evaluation.reference, `baseline` the base model."""
    if label == "finetuned":
        return str(RunDir(cfg.output_dir).stage_dir("rl") if cfg.rl.enabled else final_model(cfg))
    if label == "sft":
        return str(init_model_path(cfg))
    if label == "reference" and cfg.evaluation.reference:
        return cfg.evaluation.reference
    return cfg.model.name_or_path


class RL:
    """Reinforcement learning from execution (GRPO) from the fine-tuned model into `<output_dir>/rl/`."""

    name = "rl"
    processes = "main"

    def run(self, ctx: StageContext) -> StageOutcome:
        result = train_grpo(ctx.cfg, force=ctx.force, model=ctx.model, prepared=ctx.prepared)
        if not result.skipped:
            ctx.say(
                f"    rl: {result.global_step} steps on {result.rows} prompts; completions by outcome {result.counts}"
            )
        return StageOutcome(self.name, result.path, result.skipped, result=result)


class Merge:
    """Merge the trained adapter into its base (`<output_dir>/merged/`), verifying the logits."""

    name = "merge"
    processes = "main"

    def run(self, ctx: StageContext) -> StageOutcome:
        run = ctx.run
        result = merge_adapter(
            run.stage_dir("adapter"), final_model(ctx.cfg), force=ctx.force, threads=ctx.cfg.model.threads
        )
        return StageOutcome(self.name, result.path, result.skipped, result=result)


class Evaluate:
    """Evaluate the fine-tuned model (or the base model, as a baseline, or the endpoint of
    evaluation.reference) into `<output_dir>/eval/<label>/`. The reference is asked with the
    fine-tuned model's own prompts (its prompt settings and token budget), and its answers are kept
    in `<output_dir>/answers/`, so a rerun pays for nothing twice."""

    processes = "main"

    def __init__(self, label: str):
        self.label = label
        self.name = f"evaluate {label}"

    def run(self, ctx: StageContext) -> StageOutcome:
        cfg, run = ctx.cfg, ctx.run
        model = evaluated_model(cfg, self.label)
        run.check_root(ctx.force)
        endpoint = self.label == "reference"
        result = evaluate(
            str(run.stage_dir("data")),
            run.stage_dir(f"eval/{self.label}"),
            model=model,
            settings=cfg.evaluation,
            force=ctx.force,
            run_config=cfg,
            prompt_from=evaluated_model(cfg, "finetuned") if endpoint else None,
            answer_cache=run.stage_dir(ANSWERS) if endpoint else None,
        )
        return StageOutcome(self.name, result.output_dir, result.skipped, result=result)


def compared_labels(cfg: Config) -> list[str]:
    """The evaluations Compare puts side by side, first the one the others are measured against:
    reference (evaluation.reference), baseline, sft (when rl is on), finetuned."""
    labels = ["reference"] if cfg.evaluation.reference else []
    labels += ["baseline"] if cfg.evaluation.baseline else []
    if cfg.rl.enabled:
        labels.append("sft")
    return [*labels, "finetuned"]


class Compare:
    """The reference endpoint, the baseline, the SFT model (when rl.enabled) and the fine-tuned model
    side by side (`<output_dir>/eval/compare.html`), each against the first."""

    name = "compare"
    processes = "main"

    def run(self, ctx: StageContext) -> StageOutcome:
        run = ctx.run
        runs = [run.stage_dir(f"eval/{label}") for label in compared_labels(ctx.cfg)]
        comparison = compare_runs(runs)
        ctx.say(format_table(comparison))
        page = run.stage_dir("eval") / "compare.html"
        # The page is made from the two metrics files alone: current when it is newer than both.
        newest = max((folder / "metrics.json").stat().st_mtime_ns for folder in runs)
        if not ctx.force and page.is_file() and page.stat().st_mtime_ns >= newest:
            return StageOutcome(self.name, page, True, result=comparison)
        render_compare_html(comparison, page)
        return StageOutcome(self.name, page, False, result=comparison)


class Register:
    """Register the run's fine-tuned model, uploaded already, in the Vertex AI Model Registry
    (`launch.register_model`); `<output_dir>/registry/registered.json` keeps its resource name."""

    name = "register"
    processes = "main"

    def run(self, ctx: StageContext) -> StageOutcome:
        cfg = ctx.cfg
        check_registration(cfg, ctx.remote)
        rel = Path(evaluated_model(cfg, "finetuned")).relative_to(cfg.output_dir)
        uri = storage.join(str(ctx.remote), *rel.parts)
        scored = ctx.run.stage_dir("eval/finetuned") / "metrics.json"
        metrics = json.loads(scored.read_text(encoding="utf-8")) if scored.is_file() else None
        request = run_upload_request(cfg, uri, metrics)
        folder = ctx.run.stage_dir("registry")
        record = folder / "registered.json"
        if not ctx.force and record.is_file():
            done = json.loads(record.read_text(encoding="utf-8"))
            if done.get("request") == request:
                return StageOutcome(self.name, folder, True, result=done["model"])
        name = upload_model(request)
        folder.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"model": name, "request": request}, indent=2), encoding="utf-8")
        ctx.say(f"    registered {name} (evaluate it: text2sql evaluate --model {name} --data ...)")
        return StageOutcome(self.name, folder, False, result=name)


def pipeline_stages(cfg: Config) -> list[Stage]:
    """The stages `text2sql run` goes through for `cfg`, in order."""
    stages: list[Stage] = [Prepare()]
    if not (cfg.rl.enabled and cfg.rl.init_from):  # RL from a model trained elsewhere: no SFT here
        stages.append(Train())
        if is_peft_method(cfg.finetune.method):
            stages.append(Merge())
    if cfg.rl.enabled:
        stages += [RL(), Evaluate("sft")]
    if not has_held_out(cfg.data):  # data.synth alone: sampled pairs are never scored, so nothing to evaluate
        return stages
    stages.append(Evaluate("finetuned"))
    if cfg.evaluation.baseline:
        stages.append(Evaluate("baseline"))
    if cfg.evaluation.reference:
        stages.append(Evaluate("reference"))
    if len(compared_labels(cfg)) > 1:
        stages.append(Compare())
    if cfg.launch.register_model:
        stages.append(Register())
    return stages


def timed(stage: Stage, ctx: StageContext, number: int) -> StageOutcome:
    """Run one stage with its progress lines: `[n] name ...`, then how it ended."""
    ctx.say(f"[{number}] {stage.name} ...")
    start = time.perf_counter()
    outcome = stage.run(ctx)
    outcome.seconds = time.perf_counter() - start
    state = "up to date, skipped" if outcome.skipped else f"done in {outcome.seconds:.0f} s"
    ctx.say(f"    {stage.name}: {state}" + (f" -> {outcome.path}" if outcome.path else ""))
    return outcome


def metrics_of(outcome: StageOutcome) -> dict[str, Any]:
    """The metrics an evaluate stage wrote."""
    return json.loads((Path(outcome.path or "") / "metrics.json").read_text(encoding="utf-8"))
