"""A short run on this machine, measured: what `estimate` turns into the time and memory of a whole run.

The probe works on the real model and the real data, in a temporary folder, through the code the
run uses: `prepare` on a sample of the rows (their token lengths are the run's), optimizer steps of
the run's trainer at the run's batch size (one warm-up step on the shortest rows, then random rows
timed until a few seconds are measured, with the peak memory), a teacher-forced evaluation pass, the
adapter or model saved once, and, on the base model loaded as evaluation loads it, generation of one
batch of real prompts (prefill, and seconds per generated token at two batch sizes), the loss pass,
and the gold SQL of a few rows audited and scored. It takes a few seconds for tiny models and under
a minute for a model of ~100M parameters on 2 quiet CPU cores (a busy machine makes it slower, as it
makes the run).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.errors import Text2SQLError
from text2sql.sizing.memory import PeakRss
from text2sql.sizing.probe_config import (
    label_questions,
    labels_stood_in,
    probe_config,
    quiet,
    stand_ins_unsaid,
)
from text2sql.threads import available_cores

log = logging.getLogger("text2sql.sizing")

TRAIN_SECONDS = 4.0  # timed training steps run until this much time is measured ...
MIN_STEPS, MAX_STEPS = 1, 12  # ... and at least / at most this many of them, after one warm-up step
EVAL_ROWS = 8  # rows of the trainer's evaluation pass the probe times
GENERATION_BATCH = 8  # prompts in the probe's larger generation batch
DECODE_TOKENS = 8  # new tokens the probe generates per prompt (more for fast models, below)
SCORED_ROWS = 20  # rows whose gold SQL is audited and scored


@dataclass
class TrainProbe:
    """Training, measured with the run's trainer: seconds, padded tokens and MiB."""

    build_seconds: float  # loading the model and building the trainer
    start_seconds: float  # from `train()` to the first step
    step_seconds: list[float]  # the timed optimizer steps
    step_tokens: list[int]  # padded tokens of each timed step (all its micro-batches)
    micro_tokens: int  # padded tokens of the largest timed micro-batch
    eval_seconds_per_token: float  # the trainer's evaluation (forward only), per padded token
    save_seconds: float  # saving the trained adapter or model once
    parameters: int
    trainable: int
    rss_before_mb: float | None = None
    peak_mb: float | None = None
    batch: int = 1  # rows per micro-batch of the timed steps

    @property
    def seconds_per_token(self) -> float:
        """The median over the timed steps: a step still paying for warm-up does not count."""
        return _median_rate(self.step_seconds, self.step_tokens)


@dataclass
class GenerationProbe:
    """Evaluation, measured on the base model loaded as evaluation loads it."""

    load_seconds: float
    prefill_seconds_per_token: float  # the first token of a batch, per padded prompt token, none shared
    decode: list[tuple[int, float]]  # (batch size, seconds per further token of the batch)
    loss_seconds_per_token: float  # the teacher-forced loss pass, per padded token
    audit_seconds_per_row: float
    score_seconds_per_row: float
    model_bytes: int
    batch_tokens: int  # batch × (prompt + new tokens) of the batch whose memory was measured
    rss_before_mb: float | None = None
    peak_mb: float | None = None
    # Greedy answers go through shared prefixes, rows decoding together as others finish
    # (`inference.decoding`): evaluation's default path for decoders that allow it.
    split_greedy: bool = False

    def decode_seconds(self, batch: int) -> float:
        """Seconds per generated token of a batch of `batch` prompts: a line through the measured
        batch sizes (a fixed part, reading the weights, and a part per prompt)."""
        points = sorted(self.decode)
        if len(points) == 1 or points[0][0] == points[-1][0]:
            b, s = points[-1]
            return s * max(1.0, batch / b) if batch > b else s
        (b1, s1), (b2, s2) = points[0], points[-1]
        slope = max(0.0, (s2 - s1) / (b2 - b1))
        return max(s1 * 0.5, s1 + slope * (batch - b1))


@dataclass
class Lengths:
    """Token lengths of a sample of a split's prepared rows."""

    prompt: list[int] = field(default_factory=list)
    target: list[int] = field(default_factory=list)
    total: list[int] = field(default_factory=list)
    # Per row, the leading prompt tokens it shares with the prompts of its group (its database's
    # system prompt and schema; 0 alone), and each group's shared tokens once.
    shared: list[int] = field(default_factory=list)
    prefixes: list[int] = field(default_factory=list)


@dataclass
class Probe:
    """What the probe measured, and on what machine (`machine`: threads, cores, load, GPU)."""

    created: float
    machine: dict[str, Any]
    open_seconds: float  # resolving the model and loading its tokenizer
    prepare_seconds: float  # `prepare` on the probe's rows
    prepare_scale: float  # rows the run tokenizes / rows the probe tokenized
    prepare_peak_mb: float | None
    rows: dict[str, int]  # rows each prepared split of the run will hold
    lengths: dict[str, dict[str, Lengths]]  # schema format → split → token lengths
    train: TrainProbe
    generation: GenerationProbe
    seconds: float = 0.0  # the probe's own time
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds the probe spent on each part

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        values = dict(data)
        values["train"] = TrainProbe(**values["train"])
        gen = dict(values["generation"])
        gen["decode"] = [tuple(p) for p in gen["decode"]]
        values["generation"] = GenerationProbe(**gen)
        values["lengths"] = {
            fmt: {split: Lengths(**v) for split, v in splits.items()} for fmt, splits in values["lengths"].items()
        }
        return cls(**values)


class ProbeError(Text2SQLError):
    """The probe could not run (a model that cannot be loaded here, data that does not prepare)."""


def machine() -> dict[str, Any]:
    """The machine a probe ran on: torch threads, usable cores, load average, GPU name (None: CPU)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {"threads": torch.get_num_threads(), "cores": available_cores(), "load": load, "gpu": gpu}


def _lengths(ds) -> Lengths:
    from text2sql.inference.prefix import group_prompts

    prompt = [int(v) for v in ds["prompt_length"]]
    groups = group_prompts([ids[:n] for ids, n in zip(ds["input_ids"], prompt)])
    shared = [0] * len(prompt)
    for group in groups:
        for i in group.rows:
            shared[i] = group.prefix
    return Lengths(
        prompt=prompt,
        target=[int(v) for v in ds["target_length"]],
        total=[int(v) for v in ds["length"]],
        shared=shared,
        prefixes=[group.prefix for group in groups if group.prefix],
    )


_LENGTH_DROPS = ("too_long", "prompt_too_long", "source_too_long", "target_too_long")


def _run_rows(cfg: Config, report: dict[str, Any]) -> tuple[dict[str, int], float]:
    """(rows each split of the run will hold, rows the run tokenizes / rows the probe tokenized),
    from the probe's prepare report and the run's own row caps."""
    rows: dict[str, int] = {}
    probe_total = run_total = 0.0
    for split, out in report["rows_out"].items():
        dropped = report["dropped"].get(split, {})
        tokenized = out + sum(dropped.get(k, 0) for k in _LENGTH_DROPS)
        available = tokenized + dropped.get("max_samples", 0)
        cap = getattr(cfg.data.max_samples, split)
        run_tokenized = available if cap is None else min(cap, available)
        rows[split] = round(run_tokenized * (out / tokenized)) if tokenized else 0
        probe_total += tokenized
        run_total += run_tokenized
    return rows, (run_total / probe_total if probe_total else 1.0)


def _prepare(work: Config, model: Any, *, schema_format: str | None = None):
    from datasets import load_from_disk

    from text2sql.data.prepare import prepare

    if schema_format is not None:
        work = work.model_copy(deep=True)
        work.data.schema_format = schema_format  # type: ignore[assignment]
        work.output_dir = f"{work.output_dir}-{schema_format}"
    result = prepare(work, model, force=True)
    return result, load_from_disk(str(result.path))


class _StepTimer:
    """Times the optimizer steps after the first, and stops training once enough are measured."""

    def __init__(self, min_steps: int, max_steps: int, seconds: float):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer.begun = time.perf_counter()

            def on_step_begin(self, args, state, control, **kwargs):
                timer.first = timer.first or time.perf_counter()
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                elapsed = time.perf_counter() - timer._start
                if state.global_step > 1:  # the first step pays for first-time allocations
                    timer.seconds.append(elapsed)
                done = len(timer.seconds)
                if done >= max_steps or (done >= min_steps and sum(timer.seconds) >= seconds):
                    control.should_training_stop = True

        self.callback = Callback()
        self.seconds: list[float] = []
        self.begun = 0.0
        self.first = 0.0
        self._start = 0.0
        self.peak_mb: float | None = None


def _padded(lengths: list[int]) -> int:
    return len(lengths) * max(lengths) if lengths else 0


def _trained(work: Config, model: Any, data: Path, batch: int, accumulate: int) -> tuple[Any, Any, _StepTimer, float]:
    """(trainer setup, peak memory while building, step timer, build seconds) after the probe's
    steps on `data` at `batch` rows per micro-batch."""
    from text2sql.training.callbacks import ProgressBarCallback, ProgressLinesCallback
    from text2sql.training.trainer import build_trainer

    probe = work.model_copy(deep=True)
    probe.training = {
        **work.training,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accumulate,
        "max_steps": 1 + MAX_STEPS,  # the timer stops training sooner
        "train_sampling_strategy": "sequential",  # the steps take the rows picked, in order
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_strategy": "no",
        "load_best_model_at_end": False,
        "report_to": "none",
    }
    probe.training.pop("num_train_epochs", None)
    start = time.perf_counter()
    with PeakRss() as built:
        setup = build_trainer(probe, model, data)
    build_seconds = time.perf_counter() - start
    trainer = setup.trainer
    trainer.remove_callback(ProgressLinesCallback)
    trainer.remove_callback(ProgressBarCallback)
    timer = _StepTimer(MIN_STEPS, MAX_STEPS, TRAIN_SECONDS)
    trainer.add_callback(timer.callback)
    with PeakRss() as peak:
        trainer.train()
    timer.peak_mb = peak.mb
    return setup, built, timer, build_seconds


def _probe_training(work: Config, model: Any, datasets: Any, folder: Path) -> TrainProbe:
    """Optimizer steps of the run's shape (its batch size and accumulation) on rows drawn at random;
    the first, untimed, step takes the shortest rows, so that warming up costs little. The longest
    row comes last (never reached): what the trainer plans for memory from sees the run's longest."""
    from datasets import DatasetDict

    from text2sql.data.prepare import trainable
    from text2sql.training.methods import parameter_summary

    batch = int(work.training.get("per_device_train_batch_size", 8))
    accumulate = int(work.training.get("gradient_accumulation_steps", 1))
    per_step = batch * accumulate
    train = datasets["train"]
    all_lengths = [int(v) for v in train["length"]]
    rng = random.Random(work.data.split_seed)
    shortest = sorted(range(len(train)), key=lambda i: all_lengths[i])
    warm = (shortest * per_step)[:per_step]
    picked = warm + [rng.randrange(len(train)) for _ in range(MAX_STEPS * per_step)]
    picked.append(shortest[-1])
    lengths = [all_lengths[i] for i in picked]
    held = datasets["validation"] if "validation" in datasets and len(datasets["validation"]) else train
    held = trainable(held, work, model.kind)
    held = held.select(range(min(len(held), EVAL_ROWS)))
    data = folder / "probe-data"
    DatasetDict({"train": train.select(picked), "validation": held}).save_to_disk(str(data))

    setup, built, timer, build_seconds = _trained(work, model, data, batch, accumulate)
    step_tokens, micro = [], 0
    for step in range(1, 1 + len(timer.seconds)):
        rows = lengths[step * per_step : (step + 1) * per_step]
        micros = [rows[i : i + batch] for i in range(0, len(rows), batch)]
        step_tokens.append(sum(_padded(m) for m in micros))
        micro = max([micro, *(_padded(m) for m in micros)])
    trainer = setup.trainer
    start = time.perf_counter()
    trainer.evaluate()
    eval_seconds = time.perf_counter() - start
    eval_batch = int(work.training.get("per_device_eval_batch_size", 8))
    held_lengths = [int(v) for v in held["length"]]
    eval_tokens = sum(_padded(held_lengths[i : i + eval_batch]) for i in range(0, len(held_lengths), eval_batch))
    start = time.perf_counter()
    trainer.save_model(str(folder / "saved"))
    save_seconds = time.perf_counter() - start
    counts = parameter_summary(setup.model)
    del trainer, setup
    gc.collect()
    return TrainProbe(
        build_seconds=build_seconds,
        start_seconds=max(0.0, timer.first - timer.begun),
        step_seconds=timer.seconds,
        step_tokens=step_tokens,
        micro_tokens=micro,
        eval_seconds_per_token=eval_seconds / max(1, eval_tokens),
        save_seconds=save_seconds,
        parameters=int(counts.get("total", 0)),
        trainable=int(counts.get("trainable", 0)),
        rss_before_mb=built.mb,
        peak_mb=timer.peak_mb,
        batch=batch,
    )


def _median_rate(seconds: list[float], tokens: list[int]) -> float:
    rates = sorted(s / max(1, t) for s, t in zip(seconds, tokens))
    if not rates:
        return 0.0
    middle = len(rates) // 2
    return rates[middle] if len(rates) % 2 else (rates[middle - 1] + rates[middle]) / 2


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _probe_generation(work: Config, data_path: Path, datasets: Any) -> GenerationProbe:
    from text2sql.evaluation.evalset import load_eval_set
    from text2sql.evaluation.gold_audit import audit_rows
    from text2sql.evaluation.loss import teacher_forced_loss
    from text2sql.evaluation.scoring import score_predictions
    from text2sql.inference.generate import HFGenerator
    from text2sql.inference.loading import load_for_inference
    from text2sql.threads import use_threads

    load_seconds, im = _timed(lambda: load_for_inference(work.model.name_or_path, threads=work.model.threads or None))
    use_threads(work.model.threads)
    split = work.evaluation.split if work.evaluation.split in datasets else next(iter(datasets))
    ds = datasets[split]
    rng = random.Random(0)
    order = list(range(len(ds)))
    rng.shuffle(order)
    rows = [ds[i] for i in order[: max(GENERATION_BATCH, 1)]]
    prompts = [r["input_ids"][: r["prompt_length"]] if im.kind == "decoder" else r["input_ids"] for r in rows]
    generator = im.generator("hf")
    big = prompts[: min(len(prompts), GENERATION_BATCH, work.evaluation.batch_size)]
    small = big[:1]
    generator.generate(small, 2)  # warm-up: first calls allocate
    one_small, _ = _timed(lambda: generator.generate(small, 1))
    some_small, out = _timed(lambda: generator.generate(small, DECODE_TOKENS))
    per_small = (some_small - one_small) / max(1, max(len(o.token_ids) for o in out) - 1)
    # Fast models get more tokens, so that the timing is well above the clock's noise.
    tokens = DECODE_TOKENS if per_small * DECODE_TOKENS > 0.5 else 8 * DECODE_TOKENS
    if tokens != DECODE_TOKENS:
        some_small, out = _timed(lambda: generator.generate(small, tokens))
        per_small = (some_small - one_small) / max(1, max(len(o.token_ids) for o in out) - 1)
    one_big, _ = _timed(lambda: generator.generate(big, 1))
    with PeakRss() as peak:
        some_big, out = _timed(lambda: generator.generate(big, tokens))
    steps_big = max(len(o.token_ids) for o in out)
    per_big = (some_big - one_big) / max(1, steps_big - 1)
    # Prefill per prompt token with every token computed: the estimate adds what is shared itself.
    every_token = HFGenerator(im.model, im.tokenizer, im.kind, share_prefix=False)
    one_plain, _ = _timed(lambda: every_token.generate(big, 1))
    prefill = one_plain / max(1, _padded([len(p) for p in big]))
    decode = [(len(small), max(per_small, 1e-6)), (len(big), max(per_big, 1e-6))]

    encoded = [(list(r["input_ids"]), list(r["labels"])) for r in rows[: len(big)]]
    pad = im.tokenizer.pad_token_id if im.tokenizer.pad_token_id is not None else im.tokenizer.eos_token_id
    loss_seconds, _ = _timed(
        lambda: teacher_forced_loss(im.model, im.kind, encoded, pad_id=pad, batch_size=len(encoded))
    )
    loss_tokens = _padded([len(ids) for ids, _ in encoded])

    evalset = load_eval_set(str(data_path), split=split, read_options=im.read_options(), max_samples=SCORED_ROWS)
    audit_seconds, _ = _timed(lambda: audit_rows(evalset.rows, timeout=work.evaluation.timeout))
    score_seconds, _ = _timed(
        lambda: score_predictions(evalset.rows, [r.sql for r in evalset.rows], timeout=work.evaluation.timeout)
    )
    n = max(1, len(evalset.rows))
    model_bytes = sum(p.numel() * p.element_size() for p in im.model.parameters())
    return GenerationProbe(
        load_seconds=load_seconds,
        prefill_seconds_per_token=prefill,
        decode=decode,
        loss_seconds_per_token=loss_seconds / max(1, loss_tokens),
        audit_seconds_per_row=audit_seconds / n,
        score_seconds_per_row=score_seconds / n,
        model_bytes=int(model_bytes),
        batch_tokens=len(big) * (max(len(p) for p in big) + steps_big),
        rss_before_mb=peak.start_mb,
        peak_mb=peak.mb,
        split_greedy=generator.answers_greedy_with_shared_prefixes(),
    )


def run_probe(cfg: Config, *, schema_formats: tuple[str, ...] = ()) -> Probe:
    """Measure a short run of `cfg` here (see the module docstring); `schema_formats`: other schema
    renderings whose token lengths are measured too (for sizing). Raises ProbeError when it cannot."""
    from text2sql.models.loading import open_model
    from text2sql.threads import use_threads

    started = time.perf_counter()
    # The thread count the run will train with (its stage sets the same): torch's default is every
    # core, and two threads on a core another job holds measured 4-5x slower steps than one.
    use_threads(cfg.model.threads)
    with tempfile.TemporaryDirectory(prefix="text2sql-probe-") as tmp, quiet(), stand_ins_unsaid(cfg):
        folder = Path(tmp)
        questions = label_questions(cfg) if labels_stood_in(cfg) else None
        work = probe_config(cfg, folder, questions)
        try:
            open_seconds, model = _timed(
                lambda: open_model(work.model.name_or_path, trust_remote_code=work.model.trust_remote_code)
            )
            with PeakRss() as prepared_peak:
                prepare_seconds, (result, datasets) = _timed(lambda: _prepare(work, model))
            lengths: dict[str, dict[str, Lengths]] = {
                str(work.data.schema_format): {s: _lengths(datasets[s]) for s in datasets}
            }
            for fmt in schema_formats:
                if fmt not in lengths:
                    _, other = _prepare(work, model, schema_format=fmt)
                    lengths[fmt] = {s: _lengths(other[s]) for s in other}
            rows, scale = _run_rows(cfg, result.report)
            if questions is not None:  # one training row per question the teacher is to label
                cap = cfg.data.max_samples.train
                rows["train"] = questions[0] if cap is None else min(cap, questions[0])
            lap = time.perf_counter()
            train = _probe_training(work, model, datasets, folder)
            phases = {"prepare": lap - started, "train": time.perf_counter() - lap}
            lap = time.perf_counter()
            generation = _probe_generation(work, result.path, datasets)
            phases["generation"] = time.perf_counter() - lap
            gc.collect()  # the probe's models go before the run's load
        except Text2SQLError as exc:
            raise ProbeError(f"the probe of {cfg.model.name_or_path} could not run: {exc}") from None
        except Exception as exc:  # a measurement that fails must not stop the command that asked for it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ProbeError(f"the probe of {cfg.model.name_or_path} failed: {type(exc).__name__}: {first}") from None
    notes = []
    if cfg.data.label is not None or (cfg.data.synth is not None and cfg.data.synth.teacher):
        notes.append("the teacher's labelling is not estimated (it depends on the endpoint)")
    if labels_stood_in(cfg):
        notes.append("training rows: one per question of data.label (as if the teacher keeps them all)")
    return Probe(
        created=time.time(),
        machine=machine(),
        open_seconds=open_seconds,
        prepare_seconds=prepare_seconds,
        prepare_scale=scale,
        prepare_peak_mb=prepared_peak.mb,
        rows=rows,
        lengths=lengths,
        train=train,
        generation=generation,
        seconds=time.perf_counter() - started,
        notes=notes,
        phases=phases,
    )
