"""A study's search space checked against the config it tunes: every key must be one a trial can
change (did-you-mean for typos), and the ends of every range and every choice must be values that key
accepts, so a study never fails at trial 12 on a value it could have refused up front. Keys that
change data preparation are refused: all trials share one prepared dataset."""

from __future__ import annotations

from typing import Any

from text2sql.config.keys import check_key, check_value
from text2sql.config.sections import Config
from text2sql.config.space import Choices, FloatRange, SpaceError, Spec, parse_spec


def _not_tunable(key: str) -> str | None:
    top = key.split(".")[0]
    if top in ("data", "prompt") or key in ("model.name_or_path", "model.trust_remote_code"):
        return "changes data preparation, which all trials share; run one study per value instead"
    if key == "evaluation.split":
        return "trials are always scored on the validation split (the test split stays unseen)"
    if top in ("output_dir", "tuning"):
        return "cannot be tuned"
    if top in ("tracking", "launch", "serving"):
        return "does not change how a trial trains or what it scores; remove it"
    return None


def check_search_space(cfg: Config, raw: dict[str, Any]) -> tuple[dict[str, Spec], list[str]]:
    """Parse and check every entry against `cfg`: (specs, one line per problem)."""
    specs: dict[str, Spec] = {}
    problems: list[str] = []
    for key, value in raw.items():
        where = f"tuning.search_space.{key}"
        # The key itself first: a typo gets its "did you mean" before anything else.
        problem = check_key(cfg, key)
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        reason = _not_tunable(key)
        if reason:
            problems.append(f"{where}: {reason}")
            continue
        try:
            spec = parse_spec(value)
        except SpaceError as exc:
            problems.append(f"{where}: {exc}")
            continue
        bad = next(((label, v, p) for label, v in spec.probes() if (p := check_value(cfg, key, v)) is not None), None)
        if bad is not None:
            label, v, reason = bad
            hint = "; use type: int" if isinstance(spec, FloatRange) and "integer" in reason else ""
            problems.append(f"{where}: {label} {v!r} is not a valid {key} ({reason}){hint}")
            continue
        specs[key] = spec
    if cfg.finetune.method == "full" and "finetune.method" not in specs:
        idle = [k for k in specs if k.startswith("finetune.")]
        if idle:
            problems.append(
                f"tuning.search_space.{idle[0]}: has no effect with finetune.method=full; remove it "
                "or choose a LoRA method"
            )
    return specs, problems


def default_space(cfg: Config) -> dict[str, Spec]:
    """Learning rate a decade either side of the configured one (log scale); LoRA rank and dropout
    for LoRA methods. Centred on the config's rate because good rates differ by 100x between
    LoRA on a pretrained model (~2e-4) and training a tiny one from scratch (~6e-3)."""
    lr = float(cfg.training.get("learning_rate", 2e-4))
    space: dict[str, Spec] = {
        "training.learning_rate": FloatRange(float(f"{lr / 10:.3g}"), float(f"{lr * 10:.3g}"), log=True),
    }
    if cfg.finetune.method != "full":
        space["finetune.r"] = Choices((8, 16, 32, 64))
        space["finetune.dropout"] = FloatRange(0.0, 0.2)
    return space


def resolve_space(cfg: Config) -> tuple[dict[str, Spec], bool]:
    """(the study's search space, whether it is the default one)."""
    if cfg.tuning.search_space:
        return {key: parse_spec(raw) for key, raw in cfg.tuning.search_space.items()}, False
    return default_space(cfg), True
