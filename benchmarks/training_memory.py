"""Training memory and speed of real-sized models on a CPU: the answer-only head, activation
checkpointing and bf16 autocast, against the same run with them off.

    python benchmarks/training_memory.py smollm2 [--steps 6] [--threads 1] [--variants off,answer,answer+ckpt,on]
    python benchmarks/training_memory.py loss [--steps 50] [--threads 1]
    python benchmarks/training_memory.py qwen [--steps 4] [--threads 1] [--variants on,off]

`smollm2`: SmolLM2-135M-Instruct (`smollm2-135m-instruct`, offline), LoRA r 16 / alpha 32 / dropout
0.05 on every linear layer, batch 8, `data.schema_format: sql` prompts from the bundled data (the
preset `configs/smollm2_lora.yaml` otherwise). Variants, each a fresh process whose peak RSS
(`VmHWM` of /proc/self/status) is its own:

- `off`: TRL's fused head over every position (as before), float32, no activation checkpointing,
  PyTorch's dropout, torch's allocator as it comes (`THP_MEM_ALLOC_ENABLE=0`);
- `answer`: the head on answer positions only, float32, no checkpointing;
- `answer+ckpt`: the same with activation checkpointing;
- `on`: what text2sql now does by itself (the memory plan: bf16 autocast where the CPU has native
  bf16, checkpointing when the probe says so, answer-only head); `on-mmap-128k` and `on-mmap-1m`
  the same with glibc's mmap threshold fixed (`MALLOC_MMAP_THRESHOLD_`: freed blocks above it go
  back to the system at once, at the price of fresh pages for every one), `on-no-ckpt` without
  activation checkpointing, `on-no-huge-pages` without `THP_MEM_ALLOC_ENABLE` (text2sql.huge_pages),
  `on-every-N` checkpointing every N-th layer, `on-torch-dropout` with PyTorch's dropout,
  `on-narrow-sums` with LoRA sums in float32 only on layers that do not widen (not gate / up);
- `eager`: `off` with eager attention instead of PyTorch's SDPA.

Seconds per step are the median over the steps after the first (warm-up). `loss`: `off` and `on`
for `--steps` steps each, then the teacher-forced loss of both trained adapters on the same 32
validation rows, computed the same way (float32, `text2sql.evaluation.loss`). `qwen`: a model
with Qwen2.5-0.5B's shapes (24 layers, hidden 896, 14 heads, 2 KV heads, intermediate 4,864,
151,936-token vocabulary, tied embeddings) and random weights, with SmolLM2's tokenizer, LoRA at
batch 4 on the same prompts cut to rows of at most `--max-length` tokens.

Hold the machine-wide measurement lock while this runs (see BENCHMARKS.md). Prints markdown rows
and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"
MB = 2**20
EVERY = "training.activation_checkpointing_kwargs={every_n_layers: %d}"
VARIANTS = {
    "off": [
        "training.bf16=false",
        "training.activation_checkpointing=false",
        "+full-logits",
        "+torch-dropout",
        "+no-huge-pages",
    ],
    "answer": ["training.bf16=false", "training.activation_checkpointing=false"],
    "answer+ckpt": ["training.bf16=false", "training.activation_checkpointing=true"],
    "on": [],
    "on-mmap-128k": ["+mmap=131072"],
    "on-mmap-1m": ["+mmap=1048576"],
    "on-no-ckpt": ["training.activation_checkpointing=false"],
    "on-every-1": ["training.activation_checkpointing=true"],
    "on-every-2": ["training.activation_checkpointing=true", EVERY % 2],
    "on-every-3": ["training.activation_checkpointing=true", EVERY % 3],
    "on-every-4": ["training.activation_checkpointing=true", EVERY % 4],
    "on-torch-dropout": ["+torch-dropout"],
    "on-no-huge-pages": ["+no-huge-pages"],
    "on-narrow-sums": ["+narrow-sums"],
    # The same runs from another seed (LoRA's initial weights, batch order, dropout): how far two
    # float32 runs, or two bf16 runs, land apart after the same number of steps.
    "answer-seed1": ["training.bf16=false", "training.activation_checkpointing=false", "training.seed=1"],
    "on-seed1": ["training.seed=1"],
    "eager": [
        "training.bf16=false",
        "training.activation_checkpointing=false",
        "model.attn_implementation=eager",
        "+full-logits",
    ],
}
QWEN_SHAPE = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    tie_word_embeddings=True,
)


def overrides(model: str, work: Path, *, batch: int, steps: int, threads: int, max_length: int) -> list[str]:
    return [
        f"output_dir={work}",
        f"model.name_or_path={model}",
        f"model.threads={threads}",
        "data.train=bundled",
        "data.schema_format=sql",
        f"data.max_length={max_length}",
        "data.max_samples.validation=32",
        "data.max_samples.test=4",
        "finetune.method=lora",
        "finetune.r=16",
        "finetune.alpha=32",
        "finetune.dropout=0.05",
        f"training.per_device_train_batch_size={batch}",
        f"training.max_steps={steps}",
        "training.learning_rate=2e-3",
        "training.lr_scheduler_type=cosine",
        "training.warmup_steps=5",
        "training.logging_steps=1",
        "training.save_strategy=no",
        "training.eval_strategy=no",
        "evaluation.loss_samples=32",
        "callbacks.progress=lines",
    ]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------------ the child


def child(spec_path: str) -> None:
    """One training run; writes its measurements as JSON next to the spec."""
    spec = json.loads(Path(spec_path).read_text())
    from text2sql.huge_pages import use_huge_pages

    use_huge_pages()  # as the text2sql command does, before torch loads (the parent set 0 to keep it off)
    if spec["full_logits"]:
        import text2sql.training.answer_loss as answer_loss

        answer_loss.head_is_linear = lambda model: False  # type: ignore[assignment]
    if spec.get("torch_dropout"):  # LoRA's dropout as PEFT makes it (a float noise tensor kept per path)
        import text2sql.training.lora_dropout as lora_dropout

        lora_dropout.install_mask_dropout = lambda model: 0  # type: ignore[assignment]
    if spec.get("narrow_sums"):  # float32 LoRA sums only where a layer does not widen (not gate / up)
        import functools

        import text2sql.training.lora_precision as lora_precision

        narrow = functools.partial(lora_precision.keep_lora_sums_float32, widening=False)
        lora_precision.keep_lora_sums_float32 = narrow  # type: ignore[assignment]
    if spec.get("malloc") is not None:  # glibc's mmap threshold fixed: large freed blocks go back at once
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, int(spec["malloc"]))  # M_MMAP_THRESHOLD
    import psutil
    import torch
    from transformers import TrainerCallback

    from text2sql.config import load_config
    from text2sql.models.loading import open_model
    from text2sql.training.trainer import build_trainer

    torch.set_num_threads(spec["threads"])
    run = Path(spec["run"])
    shutil.copytree(spec["prepared"], run)
    cfg = load_config(None, spec["overrides"] + [f"output_dir={run}"])
    base = open_model(cfg.model.name_or_path)
    setup = build_trainer(cfg, base, run / "data")

    class Steps(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []
            self.rss_begin = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.rss_begin = psutil.Process().memory_info().rss
            self.ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    steps = Steps()
    setup.trainer.add_callback(steps)
    output = setup.trainer.train()
    peak = vm_hwm()
    durations = [b - a for a, b in zip(steps.ends, steps.ends[1:])]
    result = {
        "step_seconds": durations,
        "median_step_s": statistics.median(durations[1:] or durations),
        "peak_rss_mb": peak / MB,
        "rss_begin_mb": steps.rss_begin / MB,
        "train_loss": output.training_loss,
        "plan": setup.memory_plan.record() if setup.memory_plan else None,
        "threads": torch.get_num_threads(),
    }
    if spec.get("validation_loss"):
        result["validation_loss"] = validation_loss(setup, cfg)
    Path(spec["out"]).write_text(json.dumps(result))


def vm_hwm() -> int:
    """This process's peak resident set in bytes, since exec (ru_maxrss would carry the parent's over)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def validation_loss(setup, cfg) -> float:
    """The trained model's teacher-forced loss on the validation rows the trainer evaluated on, in
    float32 through evaluation's own code (the same computation for every variant)."""
    from text2sql.evaluation.loss import teacher_forced_loss

    ds = setup.trainer.eval_dataset
    encoded = [(list(r["input_ids"]), list(r["labels"])) for r in ds]
    setup.model.eval()
    loss = teacher_forced_loss(setup.model, setup.kind, encoded, pad_id=setup.tokenizer.pad_token_id, batch_size=8)
    return float(loss["loss"])


# ------------------------------------------------------------------------------------ the parent


def prepare_once(model: str, work: Path, args) -> Path:
    from text2sql.config import load_config
    from text2sql.data.prepare import prepare
    from text2sql.models.loading import open_model

    cfg = load_config(
        None,
        overrides(model, work / "prepared", batch=8, steps=1, threads=args.threads, max_length=args.max_length),
    )
    result = prepare(cfg, open_model(model))
    return result.path.parent


def run_variant(name: str, model: str, prepared: Path, work: Path, args, *, batch: int, validation=False) -> dict:
    extra = [x for x in VARIANTS[name] if not x.startswith("+")]
    spec = {
        "run": str(work / f"run-{name}"),
        "prepared": str(prepared),
        "out": str(work / f"{name}.json"),
        "threads": args.threads,
        "full_logits": "+full-logits" in VARIANTS[name],
        "torch_dropout": "+torch-dropout" in VARIANTS[name],
        "narrow_sums": "+narrow-sums" in VARIANTS[name],
        "malloc": next((x.split("=", 1)[1] for x in VARIANTS[name] if x.startswith("+mmap=")), None),
        "validation_loss": validation,
        "overrides": overrides(
            model, work, batch=batch, steps=args.steps, threads=args.threads, max_length=args.max_length
        )
        + extra,
    }
    spec_path = work / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    before = load_average()
    started = time.perf_counter()
    env = dict(os.environ)
    env.pop("THP_MEM_ALLOC_ENABLE", None)
    if "+no-huge-pages" in VARIANTS[name]:
        env["THP_MEM_ALLOC_ENABLE"] = "0"
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(spec_path)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"variant {name} failed")
    result = json.loads(Path(spec["out"]).read_text())
    result.update(name=name, wall_s=time.perf_counter() - started, load_before=before, load_after=load_average())
    print(json.dumps({k: v for k, v in result.items() if k != "step_seconds"}), file=sys.stderr, flush=True)
    return result


def qwen_model(work: Path) -> Path:
    """Random weights in Qwen2.5-0.5B's shapes, SmolLM2's tokenizer (its ids fit the larger vocabulary)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from text2sql.models.loading import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MODEL))
    config = Qwen2Config(
        **QWEN_SHAPE,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = work / "qwen-shaped"
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    print(f"qwen-shaped model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters", file=sys.stderr)
    return folder


def table(results: list[dict], baseline: dict) -> str:
    lines = [
        "| variant | plan | s/step (median) | peak RSS MB | RSS at start MB | speed vs off | peak vs off |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        plan = r["plan"] or {}
        every = plan.get("checkpoint_every", 1)
        ckpt = "off" if not plan.get("activation_checkpointing") else "every layer" if every == 1 else f"every {every}"
        if plan.get("activation_checkpointing") and plan.get("unchecked_layers"):
            ckpt = f"all but the last {plan['unchecked_layers']} layers"
        what = (
            f"bf16 {'on' if plan.get('bf16') else 'off'}, ckpt {ckpt}, "
            f"{'answer-only' if plan.get('answer_only_logits') else 'all positions'}, "
            f"{'byte' if plan.get('mask_dropout') else 'float'} dropout masks, "
            f"huge pages {'on' if plan.get('huge_pages') else 'off'}"
        )
        lines.append(
            f"| {r['name']} | {what} | {r['median_step_s']:.2f} | {r['peak_rss_mb']:,.0f} | {r['rss_begin_mb']:,.0f} | "
            f"{baseline['median_step_s'] / r['median_step_s']:.2f}x | {r['peak_rss_mb'] / baseline['peak_rss_mb']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("smollm2", "loss", "qwen"))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=None, help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--max-length", type=int, default=None, help="longest prepared row, in tokens")
    parser.add_argument("--work", default=None, help="a folder to keep the runs in (default: a temporary one)")
    parser.add_argument("--model", default=MODEL, help="the model of smollm2 and loss (e.g. tiny:llama for a dry run)")
    args = parser.parse_args()
    defaults = {"smollm2": (6, "off,answer,answer+ckpt,on", 512), "loss": (50, "off,on", 512), "qwen": (4, "on", 320)}
    steps, variants, max_length = defaults[args.what]
    args.steps = args.steps or steps
    args.max_length = args.max_length or max_length
    names = (args.variants or variants).split(",")
    work = Path(args.work or tempfile.mkdtemp(prefix="training-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {load_average()}; {args.threads} thread(s); work in {work}", file=sys.stderr)

    model, batch = args.model, 8
    if args.what == "qwen":
        model, batch = str(qwen_model(work)), 4
    prepared = prepare_once(args.model, work, args)  # SmolLM2's tokenizer for both models
    results = [run_variant(n, model, prepared, work, args, batch=batch, validation=args.what == "loss") for n in names]
    baseline = next((r for r in results if r["name"] == "off"), results[0])
    print(f"\n{args.what}: batch {batch}, {args.steps} steps, {args.threads} thread(s)\n")
    print(table(results, baseline))
    if args.what == "loss":
        off = baseline["validation_loss"]
        print(f"\n| variant | validation loss after {args.steps} steps | vs {baseline['name']} |\n|---|---:|---:|")
        for r in results:
            loss = r["validation_loss"]
            print(f"| {r['name']} | {loss:.4f} | {100 * (loss - off) / off:+.2f}% |")
    print(f"\nload average after: {load_average()}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
