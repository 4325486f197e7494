"""Merge a LoRA / DoRA adapter into its base model, prove the merge, and save a standalone model.

`merge_adapter` (the `text2sql merge` verb):

1. checks every input before any model loads: the adapter folder holds `adapter_config.json`, the
   output is free (or `force`), the output is neither inside the adapter folder nor holds it, the
   base model and the adapter's `config.yaml` can be read;
2. loads the base model (the one the adapter records, or `base`) in float32 and applies the adapter;
3. runs a few realistic prompts teacher-forced (prompt + gold SQL, so the positions that generate
   SQL are checked too; for seq2seq models the SQL goes in as decoder input), first with the adapter
   switched off, then on, keeping the adapter model's logits;
4. merges with `merge_and_unload()` in float32 and checks the merged logits against the adapter
   logits (`merge_checks.FP32_RTOL`);
5. casts to the dtype asked for and saves model (safetensors), tokenizer and generation config
   (with pad/eos ids) into a temporary sibling of the output; reloads that folder with the plain
   `AutoModelFor...` class, as a user will, and checks its logits against the float32 merge
   (`merge_checks.SAVED_RTOL`: half-precision rounding passes; overflow to inf/nan, which fp16 T5 is known for,
   and weights lost in saving fail);
6. adds the run's config.yaml, a README.md model card and merge_report.json, and renames the folder
   into place (with `force`, the old output is replaced only now).

Any check that fails raises `MergeMismatchError` naming the largest difference, and nothing is
written. A tolerance is relative: the largest |logit| seen (at least 1) times the rate, so it suits
models whose logits are in the tens as well as tiny ones near 1.

Memory: the base model in float32 (4 bytes per parameter) plus the adapter; merging is in place.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from text2sql.atomic import is_populated, make_readable, publish, staged
from text2sql.data.example import Example
from text2sql.errors import ConfigError, OutputExistsError
from text2sql.models import merge_checks as checks
from text2sql.models.adapters import ADAPTER_CONFIG, adapter_base, is_adapter_dir, load_adapter_model, run_config
from text2sql.models.loading import load_config as load_model_config
from text2sql.models.loading import load_tokenizer, resolve_model
from text2sql.models.merge_card import REPORT, write_merge_files
from text2sql.progress import progress_bars_disabled
from text2sql.rundir import StageFolder, identity_of
from text2sql.threads import use_threads

log = logging.getLogger("text2sql.merge")

# Short names (the CLI's) and the torch dtype names they stand for.
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_ALIASES = {**{v: k for k, v in DTYPES.items()}, **{k: k for k in DTYPES}}


@dataclass
class MergeResult:
    """What `merge_adapter` wrote and what its checks measured (also saved as merge_report.json).

    `max_abs_diff` is the largest |merged − adapter| logit (both float32) and `tolerance` its limit;
    `saved_*` compare the saved folder, reloaded in its dtype, with the float32 merge;
    `adapter_effect` is the largest |adapter − base| logit, a sign the adapter changes anything.
    """

    path: Path
    dtype: str
    max_abs_diff: float
    tolerance: float
    saved_max_abs_diff: float
    saved_tolerance: float
    adapter_effect: float
    logit_scale: float
    base: str
    adapter: str
    kind: str  # "decoder" or "seq2seq"
    prompts: list[dict[str, Any]] = field(default_factory=list)
    tokens_checked: int = 0
    seconds: float = 0.0
    skipped: bool = False  # the output already held this merge (same adapter, base and dtype)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data.pop("skipped")
        return data

    @classmethod
    def from_report(cls, folder: Path) -> MergeResult:
        """The result an earlier merge recorded in `folder`'s merge_report.json."""
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in report.items() if k in known}
        return cls(**{**values, "path": folder, "skipped": True})


def merge_depends_on(adapter: Path, base: str | None, dtype: str | None) -> dict[str, Any]:
    """What a merged folder depends on: the adapter (its training fingerprint, else its files), and
    the base and dtype when they were asked for rather than taken from the adapter."""
    depends_on: dict[str, Any] = {"adapter": identity_of(adapter)}
    if base is not None:
        depends_on["base"] = base
    if dtype is not None:
        depends_on["dtype"] = str(dtype)
    return depends_on


# ------------------------------------------------------------------------------------------ API


def merge_adapter(
    adapter_dir: str | Path,
    output_dir: str | Path,
    *,
    dtype: str | None = None,
    base: str | None = None,
    force: bool = False,
    verify_prompts: Sequence[Example] | None = None,
    threads: int | None = None,
) -> MergeResult:
    """Merge the adapter in `adapter_dir` into its base, verify, and save to `output_dir`.

    `dtype` is the saved dtype: "fp32", "bf16" or "fp16" (or "float32", ...). None picks the run
    config's `model.dtype` when the adapter's config.yaml names one, else the dtype the base
    checkpoint was published in (its config.json; bf16 for most hub models, fp32 for tiny ones),
    else fp32: a merged model is then exactly as large as its base. The merge itself is always float32.
    `base` overrides the base model recorded in the adapter. `force` replaces an existing output,
    only once the new one is complete. `verify_prompts` replaces the default check examples (one
    bundled test question per database, with schema and gold SQL); each needs `question` and `sql`.
    """
    import torch

    started = time.perf_counter()
    adapter, output = Path(adapter_dir).expanduser(), Path(output_dir).expanduser()
    stage = StageFolder(output, "merged")
    depends_on = merge_depends_on(adapter, base, dtype)
    if not force and stage.is_current(depends_on) and (output / REPORT).is_file():
        log.info("%s already holds this merge; nothing to do", output)
        return MergeResult.from_report(output)
    if not force and stage.record() is not None:
        stage.guard(depends_on, force)  # another merge: says which settings differ
    plan = _plan(adapter, output, dtype, base, force)
    examples = list(verify_prompts) if verify_prompts is not None else checks.verification_examples(plan.cfg)
    if not examples:
        raise ConfigError("verify_prompts is empty: give at least one Example to check the merge on")

    with progress_bars_disabled(), torch.no_grad(), staged(plan.output) as tmp:
        peft_model = _load_adapter_model(plan)
        saved_threads = plan.cfg.model.threads if plan.cfg is not None else 0
        use_threads(threads if threads is not None else saved_threads)
        tokenizer = _load_tokenizer(plan)
        seq2seq = plan.seq2seq
        model_type = peft_model.get_base_model().config.model_type
        items, prompts = checks.encode(examples, tokenizer, seq2seq=seq2seq, model_type=model_type, cfg=plan.cfg)

        log.info("checking the adapter model on %d prompts (%d tokens)", len(items), sum(p["tokens"] for p in prompts))
        effect, reference = _adapter_logits(peft_model, items, seq2seq)
        scale = max(1.0, max(float(r.abs().max()) for r in reference))

        model = peft_model.merge_and_unload()
        model.eval()
        merged = [checks.logits(model, item, seq2seq) for item in items]
        diff = max(checks.max_abs_diff(m, r) for m, r in zip(merged, reference))
        tolerance = checks.FP32_RTOL * scale
        checks.check("merged float32 model vs adapter model", diff, tolerance, hint=checks.MERGE_HINT)
        if effect <= tolerance:
            log.warning(
                "the adapter changes no logit by more than %.2g: it looks untrained (LoRA B still zero?)", effect
            )
        del reference

        model.to(getattr(torch, DTYPES[plan.dtype]))
        _fill_generation_ids(model, tokenizer, seq2seq)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model, peft_model

        # Check what a user will load: the saved folder through the plain Auto class (a model cast in
        # memory is not quite that: its rotary tables are cast too, while a fresh load keeps them fp32).
        saved = _reload(tmp, seq2seq, plan.dtype)
        saved_diff = max(checks.max_abs_diff(checks.logits(saved, item, seq2seq), m) for item, m in zip(items, merged))
        saved_tolerance = checks.SAVED_RTOL[plan.dtype] * scale
        checks.check(
            f"saved {plan.dtype} model vs float32 merged model",
            saved_diff,
            saved_tolerance,
            hint=checks.saved_hint(plan.dtype),
        )
        del saved, merged

        result = MergeResult(
            path=plan.output,
            dtype=plan.dtype,
            max_abs_diff=diff,
            tolerance=tolerance,
            saved_max_abs_diff=saved_diff,
            saved_tolerance=saved_tolerance,
            adapter_effect=effect,
            logit_scale=scale,
            base=plan.base,
            adapter=str(plan.adapter),
            kind="seq2seq" if seq2seq else "decoder",
            prompts=prompts,
            tokens_checked=sum(p["tokens"] for p in prompts),
        )
        result.seconds = round(time.perf_counter() - started, 3)
        _publish(tmp, result, plan, stage, depends_on)
    log.info("merged model written to %s", plan.output)
    return result


def _adapter_logits(peft_model, items, seq2seq: bool):
    """(the largest change the adapter makes to any logit, the adapter model's logits per item)."""
    effect, reference = 0.0, []
    for item in items:
        with peft_model.disable_adapter():
            base_logits = checks.logits(peft_model, item, seq2seq)
        adapter_logits = checks.logits(peft_model, item, seq2seq)
        effect = max(effect, checks.max_abs_diff(adapter_logits, base_logits))
        reference.append(adapter_logits)
    return effect, reference


def _publish(tmp: Path, result: MergeResult, plan, stage: StageFolder, depends_on) -> None:
    """The report, card and stage record into the staged folder, then the folder into place."""
    write_merge_files(
        tmp, result, plan.cfg, rates={"fp32_rtol": checks.FP32_RTOL, "saved_rtol": checks.SAVED_RTOL[plan.dtype]}
    )
    make_readable(tmp)
    stage.write_record(tmp, depends_on, {"dtype": plan.dtype, "base": plan.base})
    try:
        publish(tmp, plan.output, replace=plan.force)
    except OSError as exc:
        raise OutputExistsError(f"cannot move the merged model into {plan.output}: {exc}") from exc


# ------------------------------------------------------------------------------------------ checks up front


@dataclass
class _Plan:
    adapter: Path
    output: Path
    dtype: str
    base: str
    base_path: str
    force: bool
    seq2seq: bool
    cfg: Any  # text2sql.config.Config or None


def _plan(adapter: Path, output: Path, dtype: str | None, base: str | None, force: bool) -> _Plan:
    if dtype is not None and str(dtype).lower() not in (*_ALIASES, "auto"):
        raise ConfigError(f"unknown merge dtype '{dtype}': use one of {', '.join(DTYPES)}")
    if not adapter.is_dir():
        raise ConfigError(f"adapter folder {adapter} does not exist: give the folder 'text2sql train' wrote")
    if not is_adapter_dir(adapter):
        raise ConfigError(
            f"{adapter} holds no {ADAPTER_CONFIG}, so it is not a PEFT adapter: give the adapter folder "
            "'text2sql train' wrote (a full fine-tune needs no merge)"
        )
    adapter, output_abs = adapter.resolve(), output.resolve()
    if output_abs == adapter or adapter in output_abs.parents:
        raise ConfigError(f"output {output} is inside the adapter folder {adapter}: choose a folder outside it")
    if output_abs in adapter.parents:
        raise ConfigError(f"output {output} holds the adapter folder {adapter}: choose a folder outside it")
    if output_abs.exists() and not output_abs.is_dir():
        raise OutputExistsError(f"output {output} is a file: choose a folder path")
    if is_populated(output_abs) and not force:
        raise OutputExistsError(f"output {output} already exists and is not empty: pass --force to replace it")
    base_spec = base or adapter_base(adapter)
    cfg = run_config(adapter)
    base_path = resolve_model(base_spec)
    base_config = load_model_config(base_path)
    chosen = _ALIASES[str(dtype).lower()] if dtype not in (None, "auto") else default_dtype(cfg, base_config)
    seq2seq = bool(getattr(base_config, "is_encoder_decoder", False))
    return _Plan(adapter, output_abs, chosen, base_spec, base_path, force, seq2seq, cfg)


def default_dtype(cfg, base_config) -> str:
    """The dtype to save when none is asked for: the run config's explicit `model.dtype`, else the
    dtype in the base's config.json, else fp32 (see `merge_adapter`)."""
    if cfg is not None and cfg.model.dtype != "auto":
        return _ALIASES[cfg.model.dtype]
    published = getattr(base_config, "dtype", None)
    name = str(published).removeprefix("torch.") if published is not None else "float32"
    return _ALIASES.get(name, "fp32")


# ------------------------------------------------------------------------------------------ loading


def _load_adapter_model(plan: _Plan):
    import torch

    log.info("loading %s in float32 and applying adapter %s", plan.base, plan.adapter)
    try:
        with warnings.catch_warnings():
            # peft 0.21 calls a transformers 5 API deprecated in favour of another; nothing to act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            model = load_adapter_model(plan.adapter, base=plan.base_path, dtype=torch.float32)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"cannot apply adapter {plan.adapter} to base {plan.base}: {_reason(exc)}; "
            "is the base the model the adapter was trained on? (--base overrides it)"
        ) from exc
    peft_config = model.peft_config[model.active_adapter]
    if peft_config.is_prompt_learning or not hasattr(model, "merge_and_unload"):
        raise ConfigError(
            f"adapter {plan.adapter} is a {peft_config.peft_type} adapter, which cannot be merged into "
            "the weights: serve it with its base model instead"
        )
    return model.eval()


def _load_tokenizer(plan: _Plan):
    """The adapter folder's tokenizer when training saved one there (it is what the model was
    trained with), else the base's."""
    has_own = any((plan.adapter / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json"))
    return load_tokenizer(str(plan.adapter) if has_own else plan.base_path)


def _reload(folder: Path, seq2seq: bool, dtype: str):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto_class = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    return auto_class.from_pretrained(folder, dtype=DTYPES[dtype]).eval()


def _fill_generation_ids(model, tokenizer, seq2seq: bool) -> None:
    """Generation must know pad and eos, or the merged model never stops at the end of the SQL."""
    gen = model.generation_config
    if gen.eos_token_id is None:
        gen.eos_token_id = tokenizer.eos_token_id
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    if seq2seq and gen.decoder_start_token_id is None:
        start = getattr(model.config, "decoder_start_token_id", None)
        gen.decoder_start_token_id = start if start is not None else tokenizer.pad_token_id


def _reason(exc: BaseException, limit: int = 240) -> str:
    """One short line from a library error: its first line, and the line after when the first only
    introduces it (torch's "Error(s) in loading state_dict for PeftModel:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
