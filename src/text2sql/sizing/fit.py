"""Settings sized for the machine: what a run on a CPU should change, and what a time budget cuts.

Without a GPU (`cpu_settings`): one line per table in the prompt instead of CREATE TABLE statements
(time is roughly proportional to tokens), room for the longest SQL of the data rather than 256
tokens (an untuned baseline writes prose until the limit), the loss passes on 32 rows, and at most
200 test rows scored.

A budget (`fit_budget`) is met by giving up what costs the model least first:

1. the compact schema (every table and column stays in the prompt; types and keys go);
2. loss passes on 32 rows (a loss figure needs few rows; it never changes the model);
3. fewer test rows scored, down to 100 (the score gets noisier, ±~9 points at 95%; the model is the same);
4. fewer training steps, down to 20 (this is what makes the model good, so it goes late);
5. no baseline evaluation (an untuned model is scored only to compare with);
6. fewer steps again, down to 5; what still does not fit is said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from text2sql.config import Config, build_config, set_dotted
from text2sql.sizing.budget import format_duration
from text2sql.sizing.estimate import Estimate, estimate_run, lengths_for, training_steps
from text2sql.sizing.probe import Probe

CPU_LOSS_SAMPLES = 32
CPU_TEST_ROWS = 200
MIN_TEST_ROWS = 100
MIN_STEPS, LAST_STEPS = 20, 5
# Schema renderings, shortest prompts last: a budget only moves towards a shorter one.
LONG_SCHEMAS = ("sql",)


@dataclass
class Change:
    """One setting changed: its dotted key, the old and new value, and why."""

    key: str
    old: Any
    new: Any
    reason: str

    def line(self) -> str:
        return f"{self.key}: {self.old} -> {self.new} ({self.reason})"

    def override(self) -> str:
        return f"{self.key}={self.new}"


@dataclass
class Sized:
    """A config sized for a machine, with its estimate and what was changed."""

    cfg: Config
    estimate: Estimate
    changes: list[Change] = field(default_factory=list)
    budget: float | None = None  # seconds
    fits: bool = True
    original: Estimate | None = None  # the config as it was given, before any change

    def overrides(self) -> list[str]:
        """The changes as `key=value` overrides of the given config (`text2sql run CFG k=v ...`)."""
        return [c.override() for c in self.changes]

    def summary(self) -> list[str]:
        lines = [c.line() for c in self.changes]
        if self.budget is not None:
            state = "fits" if self.fits else "does NOT fit"
            lines.append(
                f"estimated {format_duration(self.estimate.seconds)}: {state} the budget of {format_duration(self.budget)}"
            )
        return lines


def current(cfg: Config, key: str) -> Any:
    """The value of a dotted key (`training.max_steps`: None when unset)."""
    section, _, name = key.partition(".")
    if section == "training":
        return cfg.training.get(name)
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def with_value(cfg: Config, key: str, value: Any) -> Config:
    """A copy of `cfg` with one dotted key set, validated as a config file would be."""
    raw = cfg.model_dump(mode="json")
    set_dotted(raw, key.split("."), value)
    return build_config(raw)


class _Sizer:
    def __init__(self, cfg: Config, probe: Probe):
        self.cfg, self.probe = cfg, probe
        self.changes: list[Change] = []

    def total(self, cfg: Config | None = None) -> float:
        return estimate_run(cfg or self.cfg, self.probe).seconds

    def set(self, key: str, value: Any, reason: str) -> None:
        old = current(self.cfg, key)
        if old == value:
            return
        self.cfg = with_value(self.cfg, key, value)
        for change in self.changes:
            if change.key == key:  # the first old value, the last new one
                change.new, change.reason = value, reason
                return
        self.changes.append(Change(key, old, value, reason))

    def largest(self, key: str, low: int, high: int, budget: float) -> int:
        """The largest value in [low, high] whose run fits `budget` (low when none does)."""
        if high <= low:
            return high

        def fits(value: int) -> bool:
            trial = with_value(self.cfg, key, value)
            if key == "training.max_steps":
                for other, setting, _ in _schedule(trial, value):
                    trial = with_value(trial, other, setting)
            return self.total(trial) <= budget

        if fits(high):
            return high
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        return low

    def set_steps(self, steps: int, reason: str) -> None:
        """training.max_steps, with a warm-up and checkpoint interval that stay inside the shorter run."""
        self.set("training.max_steps", steps, reason)
        for key, value, why in _schedule(self.cfg, steps):
            self.set(key, value, why)


def _schedule(cfg: Config, steps: int) -> list[tuple[str, int, str]]:
    """Warm-up and checkpoint intervals given in steps that a run of `steps` steps would outgrow."""
    t, out = cfg.training, []
    warmup = t.get("warmup_steps")
    if isinstance(warmup, (int, float)) and warmup >= 1 and warmup > steps // 10:
        out.append(("training.warmup_steps", max(1, steps // 10), "a tenth of the steps"))
    save = t.get("save_steps")
    if isinstance(save, (int, float)) and save >= 1 and save > steps:
        out.append(("training.save_steps", max(1, steps // 2), "a checkpoint halfway, to resume from"))
    return out


def _longest_sql(probe: Probe, cfg: Config) -> int:
    lengths = [n for split in ("train", "test", "validation") for n in lengths_for(probe, cfg, split).target]
    return max(lengths, default=0)


def cpu_settings(cfg: Config, probe: Probe) -> tuple[Config, list[Change]]:
    """`cfg` with the settings a CPU run should have (see the module docstring), and what changed."""
    sizer = _Sizer(cfg, probe)
    if cfg.data.schema_format in LONG_SCHEMAS and "compact" in probe.lengths:
        sizer.set("data.schema_format", "compact", "one line per table: shorter prompts, faster steps on a CPU")
    longest = _longest_sql(probe, sizer.cfg)
    if longest:
        room = min(cfg.evaluation.max_new_tokens, 16 * math.ceil(longest * 1.25 / 16))
        sizer.set("evaluation.max_new_tokens", room, f"the longest SQL of the data is {longest} tokens")
    if cfg.evaluation.loss_samples is None:
        sizer.set(
            "evaluation.loss_samples", CPU_LOSS_SAMPLES, "a loss pass over a whole split costs more than it tells"
        )
    test_rows = probe.rows.get(cfg.evaluation.split, 0)
    if cfg.evaluation.max_samples is None and test_rows > CPU_TEST_ROWS:
        sizer.set(
            "evaluation.max_samples",
            CPU_TEST_ROWS,
            f"{CPU_TEST_ROWS} of {test_rows} test rows: generation is slow on a CPU",
        )
    return sizer.cfg, sizer.changes


def fit_budget(cfg: Config, probe: Probe, budget: float, changes: list[Change] | None = None) -> Sized:
    """`cfg` cut to run within `budget` seconds here, in the order of the module docstring."""
    sizer = _Sizer(cfg, probe)
    sizer.changes = list(changes or [])
    if sizer.total() > budget and cfg.data.schema_format in LONG_SCHEMAS and "compact" in probe.lengths:
        sizer.set("data.schema_format", "compact", "one line per table: shorter prompts")
    if sizer.total() > budget and (cfg.evaluation.loss_samples or math.inf) > CPU_LOSS_SAMPLES:
        sizer.set("evaluation.loss_samples", CPU_LOSS_SAMPLES, "the loss on a sample")
    test_rows = probe.rows.get(cfg.evaluation.split, 0)
    scored = min(test_rows, sizer.cfg.evaluation.max_samples or test_rows)
    if sizer.total() > budget and scored > MIN_TEST_ROWS:
        rows = sizer.largest("evaluation.max_samples", MIN_TEST_ROWS, scored, budget)
        sizer.set("evaluation.max_samples", rows, f"{rows} test rows scored, to fit the budget")
    steps = training_steps(sizer.cfg, probe.rows.get("train", 0))
    if sizer.total() > budget and steps > MIN_STEPS:
        fitted = sizer.largest("training.max_steps", MIN_STEPS, steps, budget)
        sizer.set_steps(fitted, f"{steps} steps do not fit the budget")
    if sizer.total() > budget and sizer.cfg.evaluation.baseline:
        sizer.set("evaluation.baseline", False, "the untuned model is not scored, to fit the budget")
        steps_now = training_steps(sizer.cfg, probe.rows.get("train", 0))
        if steps_now < steps:  # the time the baseline took goes back to training
            fitted = sizer.largest("training.max_steps", steps_now, steps, budget)
            sizer.set_steps(fitted, f"{steps} steps do not fit the budget")
    steps_now = training_steps(sizer.cfg, probe.rows.get("train", 0))
    if sizer.total() > budget and steps_now > LAST_STEPS:
        fitted = sizer.largest("training.max_steps", LAST_STEPS, steps_now, budget)
        sizer.set_steps(fitted, f"{steps} steps do not fit the budget")
    estimate = estimate_run(sizer.cfg, probe)
    return Sized(sizer.cfg, estimate, sizer.changes, budget, estimate.seconds <= budget)
