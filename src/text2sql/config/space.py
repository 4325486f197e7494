"""The search-space language of a study: dotted config keys → ranges or choices (`parse_spec`); the
checks against a config are in `search`.

    tuning:
      search_space:
        training.learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
        training.per_device_train_batch_size: [8, 16, 32]     # a list is shorthand for choices
        finetune.r: {type: int, low: 8, high: 64, step: 8}

Every key must be a config key a trial can change (did-you-mean for typos), and the ends of every
range and every choice must be values that key accepts, so a study never fails at trial 12 on a
value it could have refused up front. Keys that change data preparation are refused: all trials
share one prepared dataset.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

SPEC_KEYS = {"type", "low", "high", "log", "step", "choices"}
_ALLOWED = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}


class SpaceError(ValueError):
    """One search-space entry is unusable; the message says why."""


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False
    step: float | None = None
    type: str = "float"

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def probes(self) -> list[tuple[str, float]]:
        """Values to validate: both ends and one inside (catches an integer key given a float range)."""
        inside = math.sqrt(self.low * self.high) if self.log else self.low + 0.37 * (self.high - self.low)
        ends = [("low", self.low), ("high", self.high)]
        return ends if self.step else [*ends, ("a value inside the range,", float(f"{inside:.3g}"))]

    def describe(self) -> str:
        step = f" step {self.step:g}" if self.step else ""
        return f"float [{self.low:g}, {self.high:g}]" + (" log" if self.log else "") + step

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            **({"step": self.step} if self.step else {}),
        }


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    step: int = 1
    type: str = "int"

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def probes(self) -> list[tuple[str, int]]:
        return [("low", self.low), ("high", self.high)]

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int [{self.low}, {self.high}]" + (" log" if self.log else "") + step

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "low": self.low, "high": self.high, "log": self.log, "step": self.step}


@dataclass(frozen=True)
class Choices:
    choices: tuple[Any, ...]
    type: str = "categorical"

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def probes(self) -> list[tuple[str, Any]]:
        return [("choice", c) for c in self.choices]

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"type": self.type, "choices": list(d["choices"])}


Spec = FloatRange | IntRange | Choices


# ------------------------------------------------------------------------------------------ parsing


def flatten_space(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings (what dotted overrides build) → dotted keys; a list → categorical choices.

    `{training: {learning_rate: {high: 1e-2}}}` and `{"training.learning_rate": {...}}` name the
    same entry; when both are given their fields merge, the later (the override) winning."""
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value

    for key, value in raw.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not SPEC_KEYS & value.keys():
            for sub_key, sub_value in flatten_space(value, f"{path}.").items():
                put(sub_key, sub_value)
        elif isinstance(value, (list, tuple)):
            put(path, {"type": "categorical", "choices": list(value)})
        else:
            put(path, value)
    return out


def _number(name: str, value: Any, integer: bool) -> Any:
    if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpaceError(f"{name} must be a number, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise SpaceError(f"{name} must be a whole number for type: int, got {value!r}")
        return int(value)
    if not math.isfinite(value):
        raise SpaceError(f"{name} must be finite, got {value!r}")
    return float(value)


def parse_spec(raw: Any) -> Spec:
    """One entry's spec; SpaceError names what is wrong with it."""
    if not isinstance(raw, dict):
        raise SpaceError(
            f"expected {{type: float|int, low: .., high: ..}}, {{type: categorical, choices: [..]}} or a list "
            f"of choices, got {raw!r} (to fix a value, set it in the config instead)"
        )
    kind = raw.get("type")
    if kind not in _ALLOWED:
        ints = all(isinstance(raw.get(k), int) for k in ("low", "high"))
        guess = "categorical" if "choices" in raw else ("int" if ints else "float")
        shown = "no type" if kind is None else f"type {kind!r}"
        raise SpaceError(f"{shown}: give type: float, int or categorical (here probably type: {guess})")
    extra = sorted(set(raw) - set(_ALLOWED[kind]))
    if extra:
        import difflib

        match = difflib.get_close_matches(extra[0], _ALLOWED[kind], n=1, cutoff=0.6)
        hint = f"; did you mean '{match[0]}'?" if match else f" (type: {kind} takes {', '.join(_ALLOWED[kind][1:])})"
        raise SpaceError(f"unknown field '{extra[0]}'{hint}")
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError("choices must be a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, (str, int, float, bool)):
                raise SpaceError(f"choices must be plain values (numbers, strings, booleans, null), got {choice!r}")
        if len({repr(c) for c in choices}) != len(choices):
            raise SpaceError(f"choices {choices} repeat a value")
        return Choices(tuple(choices))

    integer = kind == "int"
    for field in ("low", "high"):
        if field not in raw:
            raise SpaceError(f"type: {kind} needs low and high")
    low, high = _number("low", raw["low"], integer), _number("high", raw["high"], integer)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"log must be true or false, got {log!r}")
    step = raw.get("step")
    if step is not None:
        step = _number("step", step, integer)
        if step <= 0:
            raise SpaceError(f"step must be > 0, got {step!r}")
    if low >= high:
        raise SpaceError(f"low ({low}) must be below high ({high}); to fix a value, set it in the config instead")
    if log and low <= 0:
        raise SpaceError(f"log: true needs low > 0, got {low}")
    if log and step not in (None, 1):
        raise SpaceError("log: true and step cannot be combined; drop one")
    if step is not None:
        # Optuna would silently lower `high` to the last step; say so instead.
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
            raise SpaceError(f"high - low ({high - low:g}) must be a whole number of steps ({step:g})")
    if integer:
        return IntRange(low, high, log=log, step=step or 1)
    return FloatRange(low, high, log=log, step=step)
