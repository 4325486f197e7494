"""The time and peak memory of each stage of a run, from a probe (`probe.Probe`) and the config.

Training: the run's optimizer steps × the probe's seconds per padded token × the padded tokens a
step of random batches holds (simulated from the data's token lengths), plus building the trainer,
its evaluations (forward only), checkpoints and the final save. Evaluation: answers as long as the
gold SQL for a fine-tuned model, `max_new_tokens` for a base model (an untuned model rarely stops
on its own). Greedy answers of a decoder that shares prefixes: each database's prompt prefix
prefilled once, each row's own tokens, then the decoding steps `inference.decoding` takes, rows
joining as others finish. Otherwise batches sorted by prompt length as the generator sorts them,
each paying its prompt tokens (prefill) and one decode step per token up to its longest answer.
Plus loading, the loss pass and executing the gold and predicted SQL. Memory: the probe's peaks,
scaled by the tokens of the largest batch the run will see.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from text2sql.config import Config
from text2sql.sizing.probe import GenerationProbe, Lengths, Probe
from text2sql.stages import Evaluate, pipeline_stages

WRITE_MB_PER_SECOND = 400.0  # saving a merged model: safetensors to a local disk
COMPARE_SECONDS = 1.0
DRAWS = 400  # random batches drawn to find the padded tokens of an average training step


@dataclass
class StageEstimate:
    name: str
    seconds: float | None  # None: not estimated (the stage depends on things the probe cannot see)
    peak_mb: float | None = None
    detail: str = ""


@dataclass
class Estimate:
    """Per stage of `text2sql run`, in run order; `machine` is where the probe ran."""

    stages: list[StageEstimate]
    machine: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    created: float = 0.0
    probe_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return sum(s.seconds or 0.0 for s in self.stages)

    @property
    def peak_mb(self) -> float | None:
        peaks = [s.peak_mb for s in self.stages if s.peak_mb is not None]
        return max(peaks) if peaks else None

    def stage(self, name: str) -> StageEstimate | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [vars(s) for s in self.stages],
            "machine": self.machine,
            "notes": self.notes,
            "created": self.created,
            "probe_seconds": self.probe_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Estimate:
        stages = [StageEstimate(**s) for s in data["stages"]]
        return cls(
            stages,
            data["machine"],
            list(data.get("notes", [])),
            data.get("created", 0.0),
            data.get("probe_seconds", 0.0),
        )


def lengths_for(probe: Probe, cfg: Config, split: str) -> Lengths:
    """The token lengths of `split` under cfg's schema format (the probe's own format when it did
    not measure that one: the closest it has)."""
    by_format = probe.lengths.get(cfg.data.schema_format) or next(iter(probe.lengths.values()))
    if split in by_format:
        return by_format[split]
    return by_format.get("test") or by_format.get("validation") or by_format["train"]


def _padded_mean(lengths: list[int], batch: int, seed: int = 0) -> float:
    """The padded tokens of a random batch of `batch` rows: batch × its longest row, on average."""
    if not lengths:
        return 0.0
    rng = random.Random(seed)
    draws = [max(rng.choices(lengths, k=batch)) for _ in range(DRAWS)]
    return batch * sum(draws) / len(draws)


def training_steps(cfg: Config, rows: int) -> int:
    """The optimizer steps a run takes: training.max_steps, else epochs over the training rows."""
    t = cfg.training
    max_steps = int(t.get("max_steps", -1) or -1)
    if max_steps > 0:
        return max_steps
    per_device = int(t.get("per_device_train_batch_size", 8))
    accumulate = int(t.get("gradient_accumulation_steps", 1))
    batches = math.ceil(rows / per_device)
    per_epoch = max(1, math.ceil(batches / accumulate))
    return max(1, math.ceil(float(t.get("num_train_epochs", 3.0)) * per_epoch))


def _count(every: Any, strategy: Any, steps: int, epochs: float) -> int:
    strategy = str(getattr(strategy, "value", strategy))
    if strategy == "epoch":
        return max(1, math.ceil(epochs))
    if strategy == "steps" and every:
        every = float(every)
        interval = every if every >= 1 else max(1.0, every * steps)
        return int(steps // interval)
    return 0


def _scale_mb(before: float | None, peak: float | None, factor: float) -> float | None:
    if before is None or peak is None:
        return peak
    return before + max(0.0, peak - before) * max(1.0, factor)


def estimate_train(cfg: Config, probe: Probe) -> StageEstimate:
    tp, t = probe.train, cfg.training
    train = lengths_for(probe, cfg, "train")
    rows = probe.rows.get("train", len(train.total))
    batch = int(t.get("per_device_train_batch_size", 8))
    accumulate = int(t.get("gradient_accumulation_steps", 1))
    steps = training_steps(cfg, rows)
    step_tokens = accumulate * _padded_mean(train.total, batch)
    step_seconds = tp.seconds_per_token * step_tokens
    seconds = tp.build_seconds + tp.start_seconds + steps * step_seconds + tp.save_seconds
    epochs = steps * batch * accumulate / max(1, rows)
    # Evaluations: one per eval_strategy interval, and one after training when there is a validation split.
    held = lengths_for(probe, cfg, "validation")
    eval_rows = probe.rows.get("validation", 0)
    cap = cfg.evaluation.loss_samples
    eval_rows = eval_rows if cap is None else min(eval_rows, cap)
    evals = _count(t.get("eval_steps") or t.get("logging_steps", 500), t.get("eval_strategy", "no"), steps, epochs)
    evals += 1 if eval_rows else 0
    eval_batch = int(t.get("per_device_eval_batch_size", 8))
    eval_tokens = math.ceil(eval_rows / eval_batch) * _padded_mean(held.total, eval_batch)
    seconds += evals * eval_tokens * tp.eval_seconds_per_token
    # Checkpoints hold the weights and the optimizer's two moments of what trains: about three saves.
    saves = _count(t.get("save_steps", 500), t.get("save_strategy", "steps"), steps, epochs)
    seconds += saves * 3 * tp.save_seconds
    largest = batch * max(train.total, default=0)
    peak = _scale_mb(tp.rss_before_mb, tp.peak_mb, largest / max(1, tp.micro_tokens))
    detail = f"{steps} steps × {step_seconds:.2f} s"
    if evals:
        detail += f", {evals} loss pass{'es' if evals > 1 else ''} on {eval_rows} rows"
    return StageEstimate("train", seconds, peak, detail)


def estimate_generation(
    cfg: Config, probe: Probe, lengths: Lengths, rows: int, *, untuned: bool
) -> tuple[float, float]:
    """(seconds, padded tokens of the largest batch) to generate answers for `rows` rows."""
    gen, ev = probe.generation, cfg.evaluation
    shared = lengths.shared if len(lengths.shared) == len(lengths.prompt) else [0] * len(lengths.prompt)
    pool = list(zip(lengths.prompt, lengths.target, shared)) or [(1, 1, 0)]
    rng = random.Random(0)
    sample = pool[:rows] if rows <= len(pool) else pool + rng.choices(pool, k=rows - len(pool))
    sample.sort(key=lambda row: -row[0])
    batch = max(1, ev.batch_size)
    candidates = max(1, ev.num_samples) * max(1, ev.num_beams)
    if gen.split_greedy and candidates == 1 and any(shared):
        return _shared_greedy(gen, ev.max_new_tokens, batch, sample, lengths.prefixes, untuned=untuned)
    seconds, largest = 0.0, 0
    for i in range(0, len(sample), batch):
        chunk = sample[i : i + batch]
        prompt = max(p for p, _, _ in chunk)
        new = ev.max_new_tokens if untuned else min(ev.max_new_tokens, max(t for _, t, _ in chunk))
        width = len(chunk) * candidates
        seconds += gen.prefill_seconds_per_token * len(chunk) * prompt
        seconds += max(0, new - 1) * gen.decode_seconds(width)
        largest = max(largest, width * (prompt + new))
    return seconds, largest


def _shared_greedy(
    gen: GenerationProbe,
    max_new: int,
    batch: int,
    sample: list[tuple[int, int, int]],
    prefixes: list[int],
    *,
    untuned: bool,
) -> tuple[float, float]:
    """Greedy answers as `inference.decoding` gives them: each group's shared prefix prefilled once
    and each row its own tokens, rows decoding `rows_at_once` together, waiting rows taking the
    places of finished ones (`decoding_steps`)."""
    from text2sql.inference.decoding import decoding_steps, rows_at_once

    own = [prompt - common for prompt, _, common in sample]
    answers = [max_new if untuned else max(1, min(max_new, target)) for _, target, _ in sample]
    slots = rows_at_once(batch, max(p for p, _, _ in sample) + max_new, max(own) + max_new)
    seconds = gen.prefill_seconds_per_token * (sum(own) + sum(prefixes))
    seconds += sum(gen.decode_seconds(rows) for rows in decoding_steps(answers, slots))
    return seconds, slots * (max(own) + max_new) + max(prefixes, default=0)


def estimate_evaluation(cfg: Config, probe: Probe, label: str) -> StageEstimate:
    gen, ev = probe.generation, cfg.evaluation
    lengths = lengths_for(probe, cfg, ev.split)
    rows = probe.rows.get(ev.split, len(lengths.prompt))
    rows = rows if ev.max_samples is None else min(rows, ev.max_samples)
    if label == "reference":
        return StageEstimate(f"evaluate {label}", None, None, "an endpoint: its own speed")
    untuned = label == "baseline"
    generate, largest = estimate_generation(cfg, probe, lengths, rows, untuned=untuned)
    loss_rows = rows if ev.loss_samples is None else min(rows, ev.loss_samples)
    loss_tokens = math.ceil(loss_rows / max(1, ev.batch_size)) * _padded_mean(
        lengths.total, min(ev.batch_size, loss_rows or 1)
    )
    seconds = (
        gen.load_seconds
        + generate
        + loss_tokens * gen.loss_seconds_per_token
        + rows * (gen.audit_seconds_per_row + gen.score_seconds_per_row)
    )
    peak = _scale_mb(gen.rss_before_mb, gen.peak_mb, largest / max(1, gen.batch_tokens))
    answers = "to max_new_tokens (untuned)" if untuned else "answers as long as the gold SQL"
    return StageEstimate(f"evaluate {label}", seconds, peak, f"{rows} rows, {answers}")


def estimate_merge(cfg: Config, probe: Probe) -> StageEstimate:
    gen = probe.generation
    mb = gen.model_bytes / 2**20
    # Load the base and the adapter, merge, save, and load the saved folder back to check its logits.
    seconds = 2 * gen.load_seconds + mb / WRITE_MB_PER_SECOND + 1.0
    peak = probe.train.rss_before_mb + mb if probe.train.rss_before_mb is not None else None
    return StageEstimate("merge", seconds, peak, f"{mb:,.0f} MB written")


def estimate_prepare(cfg: Config, probe: Probe) -> StageEstimate:
    seconds = probe.open_seconds + probe.prepare_seconds * max(1.0, probe.prepare_scale)
    rows = sum(probe.rows.values())
    return StageEstimate("prepare", seconds, probe.prepare_peak_mb, f"{rows:,} rows")


def estimate_run(cfg: Config, probe: Probe) -> Estimate:
    """The estimate of every stage `text2sql run` goes through for `cfg`, from `probe`."""
    stages: list[StageEstimate] = []
    for stage in pipeline_stages(cfg):
        if stage.name == "prepare":
            stages.append(estimate_prepare(cfg, probe))
        elif stage.name == "train":
            stages.append(estimate_train(cfg, probe))
        elif stage.name == "merge":
            stages.append(estimate_merge(cfg, probe))
        elif isinstance(stage, Evaluate):
            stages.append(estimate_evaluation(cfg, probe, stage.label))
        elif stage.name == "compare":
            stages.append(StageEstimate("compare", COMPARE_SECONDS, None))
        else:
            stages.append(StageEstimate(stage.name, None, None, "not estimated"))
    return Estimate(stages, dict(probe.machine), list(probe.notes), probe.created, probe.seconds)
