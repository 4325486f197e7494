"""GPU training throughput: a plain transformers + PEFT LoRA loop against text2sql's default and its speed options.

    python benchmarks/gpu_throughput.py [--smoke] [--steps N] [--warmup W] [--batch B] [--seq S]
                                        [--setups a,b,...] [--ref-batches K] [--out results.json]

On the GPU machine (one H200; nothing can be downloaded there, and nothing needs to be: the tokenizer
is text2sql's `tiny:llama` BPE tokenizer, trained locally on the bundled corpus, and the model is built
from a config with random weights), with a CUDA build of torch in the venv:

    HF_HUB_OFFLINE=1 timeout 590 python benchmarks/gpu_throughput.py --out gpu_throughput.json

Defaults (30 measured steps after 5 warm-up steps, batch 16) are sized to finish in about 4-6 minutes,
inside a 10-minute slot. Rough times per setup on an H200: one-time setup (tokenizer build, data, model
build and save, matmul peak) 30-60 s; each plain setup 10-20 s (model load 3-8 s, 35 steps of ~6k tokens);
`torch_compile` 1-3 min (inductor compile falls in the warm-up); `qlora_4bit` 20-40 s (quantizing on
load). If time runs short, drop setups (`--setups hf_default,text2sql_default,...`) or `--steps 15`.
`--smoke` runs a tiny Llama on CPU in fp32, 2 measured steps per setup, to check that the script works:
its numbers are not a measurement.

What is compared (each setup in this process, on the same rows, from the same saved weights):

- data: bundled training rows, each prompt carrying its database's full CREATE TABLE schema, encoded
  by text2sql's `PromptBuilder` (prompt tokens masked with -100 in the labels); rows longer than
  `--seq` tokens are left out (they are 240-377 tokens with this tokenizer);
- model: a TinyLlama-1.1B-shaped `LlamaConfig` (hidden 2048, 22 layers, 32 heads, 4 KV heads,
  intermediate 5632, untied head; vocabulary = the tokenizer's), random weights from a fixed seed,
  saved once in bf16 and loaded by every setup; `--smoke`: hidden 64, 2 layers, fp32, CPU;
- setups:
  `hf_default`        what a user would write: transformers `Trainer`, PEFT LoRA r=16 on q,k,v,o,
                      `DataCollatorForSeq2Seq` padding to the longest row, random batches;
  `text2sql_default`  `text2sql.training.trainer.build_trainer` with the default config (TRL's
                      `SFTTrainer`, `PaddingCollator`, LoRA r=16 on all linear layers, no
                      activation checkpointing, bf16 weights on a GPU);
  then each speed option alone on top of `text2sql_default`: `group_by_length`, `torch_compile`,
  `liger` (Liger kernels, when `liger_kernel` imports), `padding_free` (TRL's padding-free collator:
  rows concatenated, with `position_ids`; flash_attention_2 when flash-attn imports, else sdpa,
  which masks the packed sequences from `position_ids`), `grad_ckpt_on`, `batch_x2`; and
  `qlora_4bit` (text2sql's `finetune.method=qlora`, when bitsandbytes imports and CUDA is present).

Measurements:

- tokens/s: real (non-padding) tokens of the steps after the warm-up, over their wall time (steps
  timed at each step end, after `torch.cuda.synchronize()`);
- MFU: model FLOPs per second over the measured dense peak (a large matmul timed with CUDA events:
  8192^3 in bf16 on GPU; on CPU a small fp32 one). FLOPs per real token, attention scores left out:
  LoRA: 4 * N_base + 6 * N_lora (forward and input-gradient backward through the frozen base, full
  forward and backward through the adapter); full fine-tuning: 6 * N. N_base counts the base model's
  matmul weights (every parameter but the input embedding table; the output head is in); activation
  checkpointing's recomputation is not counted (model FLOPs, not hardware FLOPs);
- peak memory: `torch.cuda.max_memory_allocated` per setup on GPU; on CPU the process's `ru_maxrss`,
  a high-water mark over the whole run so far;
- loss check: before its first step, each setup computes the loss (forward and backward through its
  own prepared model: compiled, patched, checkpointed or quantized as it trains) on the same first K
  batches of the row list (batch size `--batch`, collated by its own collator). Every LoRA adapter
  starts with B = 0, so every setup computes the same function of the same weights, and its losses
  must match hf_default's; a relative difference above 2e-2 (bf16) or 1e-4 (fp32) is flagged
  "MATHS CHANGED", so that a speed-up that changes the maths is caught (4-bit quantization does,
  by design).

A setup that fails records its one-line error; the others still run. Prints a markdown table, and
writes JSON to `--out` with the device, library versions, load average at start and end.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETUPS = (
    "hf_default",
    "text2sql_default",
    "group_by_length",
    "torch_compile",
    "liger",
    "padding_free",
    "grad_ckpt_on",
    "batch_x2",
    "qlora_4bit",
)
SEED = 42
LORA_ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
TINYLLAMA_SHAPE = dict(
    hidden_size=2048,
    num_hidden_layers=22,
    num_attention_heads=32,
    num_key_value_heads=4,
    intermediate_size=5632,
    max_position_embeddings=2048,
)
SMOKE_SHAPE = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=176,
    max_position_embeddings=1024,
)
FLOPS_FORMULA = (
    "FLOPs per real token: LoRA 4*N_base + 6*N_lora, full fine-tuning 6*N "
    "(N_base: base matmul weights, input embedding excluded; attention scores and recomputation not counted)"
)


@dataclass
class Context:
    """What every setup shares: the saved model and data, and the run's sizes."""

    work: Path
    model_dir: Path
    data_dir: Path
    hf_data: Any  # datasets.Dataset with input_ids, attention_mask, labels (a user's tokenized dataset)
    tokenizer: Any
    cuda: bool
    smoke: bool
    steps: int
    warmup: int
    batch: int
    ref_batches: int
    n_base: int
    tolerance: float


@dataclass
class Outcome:
    """What one setup's function hands back: its trainer and notes, or why it did not run."""

    trainer: Any = None
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None


# ------------------------------------------------------------------------------------ measuring


def matmul_peak(cuda: bool, smoke: bool) -> tuple[float, str]:
    """Dense matmul FLOP/s on this device: (flops per second, what was measured)."""
    import torch

    if cuda:
        n, dtype, iters = 8192, torch.bfloat16, 20
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(5):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            a @ b
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000
        del a, b
        torch.cuda.empty_cache()
    else:
        n, dtype, iters = (256, torch.float32, 10) if smoke else (1024, torch.float32, 10)
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(3):
            a @ b
        t0 = time.perf_counter()
        for _ in range(iters):
            a @ b
        seconds = time.perf_counter() - t0
    name = str(dtype).replace("torch.", "")
    return 2 * n**3 * iters / seconds, f"{n}^3 {name} matmul, {iters} timed after warm-up"


def _callbacks():
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time at the end of every step (after the GPU has finished it)."""

        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    class ReferenceLoss(TrainerCallback):
        """At the start of training, once the trainer has wrapped (compiled, prepared) the model: the
        loss, forward and backward, on the first K batches of the rows; no optimizer step."""

        def __init__(self, trainer, collator, rows: list[list[dict]]):
            self.trainer, self.collator, self.rows = trainer, collator, rows
            self.losses: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            trainer = self.trainer
            model = trainer.model_wrapped
            model.train()
            for rows in self.rows:
                inputs = trainer._prepare_inputs(self.collator(rows))
                with trainer.compute_loss_context_manager():
                    loss = trainer.compute_loss(model, inputs)
                trainer.accelerator.backward(loss)
                self.losses.append(float(loss.detach().float()))
            model.zero_grad(set_to_none=True)

    return StepTimer, ReferenceLoss


class CountingCollator:
    """Wraps a collator and records the real tokens (rows' own lengths, no padding) of each batch."""

    def __init__(self, inner):
        self.inner = inner
        self.tokens: list[int] = []

    def __call__(self, features):
        self.tokens.append(sum(len(f["input_ids"]) for f in features))
        return self.inner(features)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ------------------------------------------------------------------------------------ shared inputs


def build_rows(tokenizer, needed: int, max_len: int) -> list[dict]:
    """The first `needed` bundled training rows (file order) of at most `max_len` tokens, encoded by
    text2sql's PromptBuilder with each database's full CREATE TABLE schema; prompt labels are -100."""
    from text2sql.data import bundled
    from text2sql.data.example import Example
    from text2sql.data.prompt import PromptBuilder
    from text2sql.data.schema import schema_text

    builder = PromptBuilder(tokenizer, "decoder", model_type="llama")
    rows: list[dict] = []
    source = bundled.iter_rows("train")
    while len(rows) < needed:
        chunk: list[Example] = []
        for raw in source:
            path = bundled.db_path(raw["db_id"])
            chunk.append(
                Example(
                    question=raw["question"],
                    sql=raw["sql"],
                    schema=schema_text(path, "sql"),
                    db_id=raw["db_id"],
                    db_path=str(path),
                )
            )
            if len(chunk) == 256:
                break
        if not chunk:
            break
        for enc in builder.encode_batch(chunk, gold=True):
            if len(enc.input_ids) <= max_len:
                rows.append({"input_ids": enc.input_ids, "labels": enc.labels, "length": len(enc.input_ids)})
    if len(rows) < needed:  # fewer rows than steps * batch: the sampler goes round again (epochs)
        print(f"note: {len(rows)} rows of <= {max_len} tokens (wanted {needed}); trained over more than one epoch")
    return rows[:needed]


def build_model(tokenizer, shape: dict, out: Path, cuda: bool) -> int:
    """A Llama with random weights (seeded) saved with the tokenizer in `out`; returns N_base."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **shape,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
    )
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(SEED)
    with torch.device("cuda" if cuda else "cpu"):
        model = LlamaForCausalLM(config)
    model.to(dtype)
    model.config.dtype = dtype
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    embedding = model.get_input_embeddings().weight.numel()
    n_base = sum(p.numel() for p in model.parameters()) - embedding
    del model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return n_base


# ------------------------------------------------------------------------------------ setups


def hf_default(ctx: Context) -> Outcome:
    """transformers Trainer + PEFT LoRA (r=16, q/k/v/o), pad to longest: what a user would write."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(ctx.model_dir, dtype=torch.bfloat16 if ctx.cuda else torch.float32)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=LORA_ATTENTION, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    args = TrainingArguments(
        output_dir=str(ctx.work / "hf_default"),
        per_device_train_batch_size=ctx.batch,
        max_steps=ctx.warmup + ctx.steps,
        learning_rate=2e-4,
        bf16=ctx.cuda,
        logging_steps=100_000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=SEED,
        use_cpu=not ctx.cuda,
    )
    collator = DataCollatorForSeq2Seq(ctx.tokenizer, padding="longest", label_pad_token_id=-100)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ctx.hf_data,
        data_collator=collator,
        processing_class=ctx.tokenizer,
    )
    return Outcome(trainer, ["LoRA r=16 on q,k,v,o; DataCollatorForSeq2Seq"])


def text2sql_trainer(ctx: Context, name: str, *overrides: str, batch: int | None = None) -> Any:
    """text2sql's own trainer (`build_trainer`) on the shared model and rows, default config + overrides."""
    from text2sql.config import load_config
    from text2sql.models.loading import open_model
    from text2sql.training.callbacks import ProgressBarCallback
    from text2sql.training.trainer import build_trainer

    cfg = load_config(
        None,
        [
            f"model.name_or_path={ctx.model_dir}",
            f"output_dir={ctx.work / name}",
            f"training.max_steps={ctx.warmup + ctx.steps}",
            f"training.per_device_train_batch_size={batch or ctx.batch}",
            f"training.seed={SEED}",
            "training.logging_steps=100000",
            "training.save_strategy='no'",
            "training.report_to=none",
            "callbacks.progress=bar",
            "training.disable_tqdm=true",
            *overrides,
        ],
    )
    trainer = build_trainer(cfg, open_model(str(ctx.model_dir)), ctx.data_dir).trainer
    trainer.eval_dataset = None
    trainer.remove_callback(ProgressBarCallback)  # the script prints one line per setup instead
    return trainer


def text2sql_default(ctx: Context) -> Outcome:
    return Outcome(text2sql_trainer(ctx, "text2sql_default"), ["build_trainer defaults (LoRA all-linear)"])


def group_by_length(ctx: Context) -> Outcome:
    trainer = text2sql_trainer(ctx, "group_by_length", "training.train_sampling_strategy=group_by_length")
    return Outcome(trainer, ["train_sampling_strategy=group_by_length"])


def torch_compile(ctx: Context) -> Outcome:
    overrides = ["training.torch_compile=true"]
    notes = ["torch_compile=true (inductor)"]
    if not ctx.cuda:
        # CPU inductor codegen takes minutes on a small machine; aot_eager still traces with dynamo.
        overrides.append("training.torch_compile_backend=aot_eager")
        notes = ["torch_compile=true, backend aot_eager on CPU (no inductor codegen)"]
    return Outcome(text2sql_trainer(ctx, "torch_compile", *overrides), notes)


def liger(ctx: Context) -> Outcome:
    if importlib.util.find_spec("liger_kernel") is None:
        return Outcome(skipped="skipped: liger-kernel not installed")
    trainer = text2sql_trainer(ctx, "liger", "training.use_liger_kernel=true")
    return Outcome(trainer, ["use_liger_kernel=true"])


def attention_for_padding_free(cuda: bool) -> tuple[str, str]:
    """(attn_implementation, note): flash_attention_2 when it can run, else sdpa, saying why."""
    import torch

    if cuda and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2", "flash_attention_2 (varlen)"
    why = "no CUDA" if not cuda else "flash-attn not installed"
    sdpa_ok = hasattr(torch.nn.functional, "scaled_dot_product_attention")
    if not sdpa_ok:
        raise RuntimeError(f"neither flash_attention_2 ({why}) nor sdpa is available")
    return "sdpa", f"flash_attention_2 unavailable ({why}): sdpa with a packed-sequence mask from position_ids"


def padding_free(ctx: Context) -> Outcome:
    """TRL's padding-free collator (rows concatenated, position_ids restart per row)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    attn, note = attention_for_padding_free(ctx.cuda)
    trainer = text2sql_trainer(ctx, "padding_free", f"model.attn_implementation={attn}")
    # text2sql pins padding_free=False and its PaddingCollator; swap in what SFTConfig(padding_free=True) uses.
    trainer.data_collator = DataCollatorForLanguageModeling(pad_token_id=ctx.tokenizer.pad_token_id, padding_free=True)
    trainer.padding_free = True
    trainer.args.padding_free = True
    return Outcome(trainer, [note])


def grad_ckpt_on(ctx: Context) -> Outcome:
    trainer = text2sql_trainer(ctx, "grad_ckpt_on", "training.gradient_checkpointing=true")
    return Outcome(trainer, ["activation checkpointing on"])


def batch_x2(ctx: Context) -> Outcome:
    trainer = text2sql_trainer(ctx, "batch_x2", batch=2 * ctx.batch)
    return Outcome(trainer, [f"batch {2 * ctx.batch} (same step count: twice the rows)"])


def qlora_4bit(ctx: Context) -> Outcome:
    if not ctx.cuda:
        return Outcome(skipped="skipped: no CUDA GPU (bitsandbytes 4-bit needs one)")
    if importlib.util.find_spec("bitsandbytes") is None:
        return Outcome(skipped="skipped: bitsandbytes not installed")
    trainer = text2sql_trainer(ctx, "qlora_4bit", "finetune.method=qlora", "finetune.bits=4")
    return Outcome(trainer, ["NF4 base, double quantization; loss differs by design (quantized weights)"])


SETUP_FUNCTIONS = {
    "hf_default": hf_default,
    "text2sql_default": text2sql_default,
    "group_by_length": group_by_length,
    "torch_compile": torch_compile,
    "liger": liger,
    "padding_free": padding_free,
    "grad_ckpt_on": grad_ckpt_on,
    "batch_x2": batch_x2,
    "qlora_4bit": qlora_4bit,
}


# ------------------------------------------------------------------------------------ running one


def trainable_counts(model) -> tuple[int, bool]:
    """(trainable parameters, whether they are all of them, i.e. full fine-tuning)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, _ = model.get_nb_trainable_parameters()
        return int(trainable), False
    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, trainable == sum(p.numel() for p in params)


def peak_memory(cuda: bool) -> tuple[int, str]:
    import torch

    if cuda:
        return int(torch.cuda.max_memory_allocated()), "cuda max_memory_allocated"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "process ru_maxrss (high-water mark)"


def run_setup(name: str, ctx: Context, peak_flops: float) -> dict[str, Any]:
    import torch

    StepTimer, ReferenceLoss = _callbacks()
    result: dict[str, Any] = {"setup": name, "status": "ok", "notes": []}
    outcome = Outcome()
    if ctx.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        outcome = SETUP_FUNCTIONS[name](ctx)
        result["notes"] = outcome.notes
        if outcome.skipped:
            result.update(status="skipped", reason=outcome.skipped)
            return result
        trainer = outcome.trainer
        dataset = trainer.train_dataset
        k, b = ctx.ref_batches, ctx.batch
        reference_rows = [[dataset[i * b + j] for j in range(b)] for i in range(k)]
        reference = ReferenceLoss(trainer, trainer.data_collator, reference_rows)
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        timer = StepTimer()
        trainer.add_callback(reference)
        trainer.add_callback(timer)
        trainable, full = trainable_counts(trainer.model)
        trainer.train()

        w, m = ctx.warmup, ctx.steps
        if len(timer.ends) < w + m:
            raise RuntimeError(f"trained {len(timer.ends)} steps, expected {w + m}")
        tokens = sum(counter.tokens[w : w + m])
        seconds = timer.ends[w + m - 1] - timer.ends[w - 1]
        flops_per_token = 6 * (ctx.n_base + trainable) if full else 4 * ctx.n_base + 6 * trainable
        tokens_per_s = tokens / seconds
        memory, memory_kind = peak_memory(ctx.cuda)
        result.update(
            tokens_per_s=tokens_per_s,
            measured_tokens=tokens,
            measured_seconds=seconds,
            seconds_per_step=seconds / m,
            trainable_parameters=trainable,
            full_finetuning=full,
            flops_per_token=flops_per_token,
            mfu_percent=100 * flops_per_token * tokens_per_s / peak_flops,
            peak_memory_bytes=memory,
            peak_memory_kind=memory_kind,
            reference_losses=reference.losses,
        )
    except Exception as exc:  # one setup's failure must not stop the others
        result.update(status="failed", error=one_line(exc))
    finally:
        result["wall_seconds"] = time.perf_counter() - t0
        outcome.trainer = None
        gc.collect()
        if ctx.cuda:
            torch.cuda.empty_cache()
    return result


def check_losses(results: list[dict], tolerance: float) -> None:
    """Each setup's reference losses against hf_default's, batch by batch (max relative difference)."""
    base = next((r for r in results if r["setup"] == "hf_default" and r["status"] == "ok"), None)
    for r in results:
        if r["status"] != "ok":
            continue
        if base is None:
            r["loss_check"] = {"passed": None, "flag": "n/a: no hf_default reference"}
            continue
        ref, own = base["reference_losses"], r["reference_losses"]
        diffs = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(own, ref)]
        worst = max(diffs) if diffs else float("nan")
        passed = bool(diffs) and worst <= tolerance
        r["loss_check"] = {
            "max_rel_diff": worst,
            "tolerance": tolerance,
            "passed": passed,
            "flag": "ok" if passed else "MATHS CHANGED",
            "hf_default_losses": ref,
        }
        r["vs_hf_default"] = r["tokens_per_s"] / base["tokens_per_s"]


# ------------------------------------------------------------------------------------ report


def fmt_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def table(results: list[dict]) -> str:
    lines = [
        "| setup | tokens/s | MFU % | vs hf_default | peak memory | loss check | notes |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        notes = "; ".join(r.get("notes") or [])
        if r["status"] == "skipped":
            lines.append(f"| {r['setup']} | - | - | - | - | - | {r['reason']} |")
        elif r["status"] == "failed":
            lines.append(f"| {r['setup']} | - | - | - | - | - | FAILED: {r['error'].replace('|', '/')} |")
        else:
            check = r.get("loss_check", {})
            diff = check.get("max_rel_diff")
            shown = check.get("flag", "n/a") + (f" ({diff:.1e})" if diff is not None else "")
            ratio = r.get("vs_hf_default")
            lines.append(
                f"| {r['setup']} | {r['tokens_per_s']:,.0f} | {r['mfu_percent']:.1f} | "
                f"{f'{ratio:.2f}x' if ratio is not None else '-'} | {fmt_bytes(r['peak_memory_bytes'])} | "
                f"{shown} | {notes} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny Llama on CPU, fp32, 2 steps: checks the script")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per setup (default 30; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; smoke 1)")
    parser.add_argument("--batch", type=int, default=None, help="rows per batch (default 16; smoke 4)")
    parser.add_argument("--seq", type=int, default=1024, help="longest row kept, in tokens (rows are 240-377)")
    parser.add_argument("--ref-batches", type=int, default=None, help="batches in the loss check (default 3; smoke 2)")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, from: {', '.join(SETUPS)}")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    args.steps = args.steps or (2 if args.smoke else 30)
    args.warmup = args.warmup or (1 if args.smoke else 5)
    args.batch = args.batch or (4 if args.smoke else 16)
    args.ref_batches = args.ref_batches or (2 if args.smoke else 3)
    args.setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = [s for s in args.setups if s not in SETUPS]
    if unknown:
        parser.error(f"unknown setup(s) {', '.join(unknown)}; choose from {', '.join(SETUPS)}")
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_start = os.getloadavg()
    started = time.perf_counter()

    import datasets
    import peft
    import torch
    import transformers
    import trl

    from text2sql.models.loading import load_tokenizer, resolve_model

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated")
    cuda = torch.cuda.is_available() and not args.smoke
    if args.smoke:
        torch.set_num_threads(1)
    if cuda:
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    print(f"device: {device}; torch {torch.__version__}; load average {load_start[0]:.2f}", flush=True)

    peak_flops, peak_how = matmul_peak(cuda, args.smoke)
    print(f"measured peak: {peak_flops / 1e12:.2f} TFLOP/s ({peak_how})", flush=True)

    work = Path(tempfile.mkdtemp(prefix="text2sql-gpu-bench-"))
    try:
        tokenizer = load_tokenizer(resolve_model("tiny:llama"))
        needed = max((args.warmup + args.steps) * args.batch * 2, args.ref_batches * args.batch)
        rows = build_rows(tokenizer, needed, args.seq)
        if len(rows) < args.ref_batches * args.batch:
            raise SystemExit(f"only {len(rows)} rows of <= {args.seq} tokens: raise --seq")
        from datasets import Dataset, DatasetDict

        DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(work / "data"))
        hf_rows = [
            {"input_ids": r["input_ids"], "attention_mask": [1] * r["length"], "labels": r["labels"]} for r in rows
        ]
        shape = SMOKE_SHAPE if args.smoke else TINYLLAMA_SHAPE
        n_base = build_model(tokenizer, shape, work / "model", cuda)
        ctx = Context(
            work=work,
            model_dir=work / "model",
            data_dir=work / "data",
            hf_data=Dataset.from_list(hf_rows),
            tokenizer=tokenizer,
            cuda=cuda,
            smoke=args.smoke,
            steps=args.steps,
            warmup=args.warmup,
            batch=args.batch,
            ref_batches=args.ref_batches,
            n_base=n_base,
            tolerance=2e-2 if cuda else 1e-4,
        )
        lengths = sorted(r["length"] for r in rows)
        print(
            f"model: Llama {shape['hidden_size']}x{shape['num_hidden_layers']}, N_base {n_base / 1e6:.1f}M, "
            f"{'bf16' if cuda else 'fp32'}; {len(rows)} rows, tokens p50 {lengths[len(lengths) // 2]} max {lengths[-1]}; "
            f"batch {args.batch}, {args.warmup} warm-up + {args.steps} measured steps",
            flush=True,
        )

        results = []
        for name in args.setups:
            print(f"[{time.perf_counter() - started:6.0f}s] {name} ...", flush=True)
            r = run_setup(name, ctx, peak_flops)
            results.append(r)
            status = r.get("error") or r.get("reason") or f"{r['tokens_per_s']:,.0f} tokens/s"
            print(f"[{time.perf_counter() - started:6.0f}s] {name}: {status} ({r['wall_seconds']:.0f}s)", flush=True)
        check_losses(results, ctx.tolerance)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load_end = os.getloadavg()
    report = {
        "device": device,
        "smoke": args.smoke,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "load_average_start": list(load_start),
        "load_average_end": list(load_end),
        "peak_flops": peak_flops,
        "peak_measurement": peak_how,
        "flops_formula": FLOPS_FORMULA,
        "model_shape": shape,
        "n_base": n_base,
        "dtype": "bfloat16" if cuda else "float32",
        "rows": len(rows),
        "batch": args.batch,
        "warmup_steps": args.warmup,
        "measured_steps": args.steps,
        "ref_batches": args.ref_batches,
        "loss_tolerance": ctx.tolerance,
        "wall_seconds": time.perf_counter() - started,
        "setups": results,
    }
    print()
    if args.smoke:
        print("SMOKE RUN (tiny model, CPU): these numbers check the script; they are not a measurement.")
    print(
        f"{device}; torch {torch.__version__}; peak {peak_flops / 1e12:.2f} TFLOP/s ({peak_how}); "
        f"load average {load_start[0]:.2f} -> {load_end[0]:.2f}"
    )
    print(f"MFU: {FLOPS_FORMULA}; loss check: max relative difference vs hf_default, tolerance {ctx.tolerance:g}")
    print()
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nJSON: {args.out}")
    return report


if __name__ == "__main__":
    main()
