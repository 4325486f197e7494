"""Training throughput: text2sql's default setup against seed 000's recipe, same data, same model.

    python benchmarks/training_throughput.py [--model tiny:t5] [--rows 96] [--batch-size 8]
                                             [--repeats 2] [--schema-format sql] [--threads N]
                                             [--no-checkpointing-baseline]

Both setups train the same LoRA adapter (r=16, alpha=32, q and v: seed 000's) on the same prepared
rows of the bundled data (prompts with CREATE TABLE schemas), for one epoch, in one process:

- seed 000: every example padded to `max_source_length` 512 and `max_target_length` 256 (its
  `preprocess_batch`: `padding="max_length"`, pad labels set to -100), random batches,
  gradient checkpointing on (its "Optimizations applied"), the stock `Trainer` and collator;
- text2sql: `text2sql.training.trainer.build_trainer` with the default config: rows padded per
  batch to their longest row, random batches, no gradient checkpointing;
- text2sql length-grouped: the same with `training.train_sampling_strategy=group_by_length`
  (opt-in: it pads less, but slows learning on templated data; see the README's quickstart).

Throughput is real tokens per second: source tokens plus target tokens of the rows trained on,
padding excluded, over all steps but the first (warm-up). Every example is trained on exactly once
in both setups, so both count the same tokens. Runs alternate between the setups and the median of
`--repeats` runs is reported. Prints markdown for BENCHMARKS.md. Timings on a shared CPU vary
between runs; the ratio is what the benchmark is for.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

SEED_SOURCE, SEED_TARGET = 512, 256  # seed 000's max_source_length / max_target_length defaults


def _make_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    return StepTimer()


class CountingCollator:
    """Wraps a collator and records the real (non-padding) tokens of every batch it builds: the
    attended input tokens, plus for seq2seq the target tokens (a decoder's target is in its input)."""

    def __init__(self, inner, kind: str):
        self.inner = inner
        self.kind = kind
        self.tokens: list[int] = []

    def __call__(self, features):
        batch = self.inner(features)
        real = int(batch["attention_mask"].sum())
        if self.kind == "seq2seq":
            real += int((batch["labels"] != -100).sum())
        self.tokens.append(real)
        return batch


def throughput(timer, counter, output) -> tuple[float, int, float, float]:
    """(real tokens/s over steps 2..n, tokens counted, seconds, mean training loss)."""
    steps = len(timer.ends)
    tokens = sum(counter.tokens[1:steps])
    seconds = timer.ends[-1] - timer.ends[0]
    return tokens / seconds, tokens, seconds, output.training_loss


def config(args, output_dir: Path):
    from text2sql.config import load_config

    return load_config(
        None,
        [
            f"model.name_or_path={args.model}",
            f"output_dir={output_dir}",
            f"data.schema_format={args.schema_format}",
            f"data.max_samples.train={args.rows}",
            "data.max_samples.validation=8",
            "data.max_samples.test=8",
            f"data.max_source_length={SEED_SOURCE}",
            f"data.max_target_length={SEED_TARGET}",
            "finetune.r=16",
            "finetune.alpha=32",
            "finetune.dropout=0.1",
            "finetune.target_modules=[q, v]",
            "training.num_train_epochs=1",
            f"training.per_device_train_batch_size={args.batch_size}",
            "training.learning_rate=5e-5",
            "training.logging_steps=1000",
            "training.save_strategy='no'",
            "training.report_to=none",
            "callbacks.progress=bar",
            "training.disable_tqdm=true",
        ],
    )


def run_text2sql(cfg, data_dir: Path, kind: str, group_by_length: bool = False):
    from text2sql.models.loading import open_model
    from text2sql.training.trainer import build_trainer

    if group_by_length:
        cfg = cfg.model_copy(update={"training": {**cfg.training, "train_sampling_strategy": "group_by_length"}})
    setup = build_trainer(cfg, open_model(cfg.model.name_or_path), data_dir)
    trainer = setup.trainer
    trainer.eval_dataset = None
    counter = CountingCollator(trainer.data_collator, kind)
    trainer.data_collator = counter
    timer = _make_timer()
    trainer.add_callback(timer)
    return throughput(timer, counter, trainer.train())


def run_seed000(cfg, data_dir: Path, kind: str, gradient_checkpointing: bool = True):
    """Seed 000's training: fixed-length padding, stock Trainer, gradient checkpointing."""
    import torch
    from datasets import load_from_disk
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator, set_seed

    from text2sql.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(cfg.model.name_or_path)
    pad = tokenizer.pad_token_id
    train = load_from_disk(str(data_dir))["train"]
    source_len, target_len = (SEED_SOURCE, SEED_TARGET) if kind == "seq2seq" else (SEED_SOURCE + SEED_TARGET,) * 2

    def pad_row(row):
        ids, labels = row["input_ids"], row["labels"]
        # seed 000: padding="max_length" for inputs and targets, pad label ids replaced by -100
        return {
            "input_ids": ids + [pad] * (source_len - len(ids)),
            "attention_mask": [1] * len(ids) + [0] * (source_len - len(ids)),
            "labels": labels + [-100] * (target_len - len(labels)),
        }

    padded = train.map(pad_row, remove_columns=train.column_names, desc="padding (seed 000)")
    set_seed(cfg.training["seed"])
    model = load_model(cfg.model.name_or_path, kind=kind, dtype=torch.float32)
    model.config.use_cache = False
    task = TaskType.SEQ_2_SEQ_LM if kind == "seq2seq" else TaskType.CAUSAL_LM
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.1,
            bias="none",
            task_type=task,
            target_modules=["q", "v"] if kind == "seq2seq" else None,
        ),
    )
    if gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointing through a frozen embedding needs input grads
    args = TrainingArguments(
        output_dir=str(Path(cfg.output_dir) / "seed000"),
        num_train_epochs=1,
        per_device_train_batch_size=cfg.training["per_device_train_batch_size"],
        learning_rate=5e-5,
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        activation_checkpointing=gradient_checkpointing,
        dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.training["seed"],
    )
    counter = CountingCollator(default_data_collator, kind)
    timer = _make_timer()
    trainer = Trainer(model=model, args=args, train_dataset=padded, data_collator=counter, callbacks=[timer])
    return throughput(timer, counter, trainer.train())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:t5", help="model spec (seed 000 trained T5)")
    parser.add_argument("--rows", type=int, default=96, help="training rows (one epoch each run)")
    parser.add_argument("--batch-size", type=int, default=8, help="per-device batch size (seed 000: 8)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setup; the median is reported")
    parser.add_argument(
        "--schema-format", default="sql", choices=("sql", "compact"), help="schema rendering in prompts"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is steadier on a shared machine)",
    )
    parser.add_argument(
        "--no-checkpointing-baseline",
        action="store_true",
        help="also run seed 000's padding without gradient checkpointing, to split the gain",
    )
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from text2sql.data.prepare import prepare
    from text2sql.models.loading import open_model

    work = Path(tempfile.mkdtemp(prefix="text2sql-bench-train-"))
    try:
        cfg = config(args, work / "run")
        model = open_model(args.model)
        prepared = prepare(cfg, model)
        kind = model.kind
        report = prepared.report["token_lengths"]["train"]
        results: dict[str, list[tuple[float, int, float, float]]] = {"seed000": [], "text2sql": [], "grouped": []}
        if args.no_checkpointing_baseline:
            results["seed000_no_ckpt"] = []
        for _ in range(args.repeats):
            results["seed000"].append(run_seed000(cfg, prepared.path, kind))
            results["text2sql"].append(run_text2sql(cfg, prepared.path, kind))
            results["grouped"].append(run_text2sql(cfg, prepared.path, kind, group_by_length=True))
            if args.no_checkpointing_baseline:
                results["seed000_no_ckpt"].append(run_seed000(cfg, prepared.path, kind, gradient_checkpointing=False))

        median = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
        ratio = median["text2sql"] / median["seed000"]
        steps = -(-args.rows // args.batch_size)
        print()
        print(
            f"model {args.model} ({kind}), {args.rows} bundled train rows, batch {args.batch_size}, {steps} steps, "
            f"LoRA r=16 on q,v; torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
        print(
            f"real tokens per row: source p50 {report['prompt']['p50']} / max {report['prompt']['max']}, "
            f"target p50 {report['target']['p50']} / max {report['target']['max']}"
        )
        print()
        print("| setup | padding | real tokens/s (median) | runs | mean loss |")
        print("|---|---|---:|---|---:|")
        names = {
            "seed000": ("seed 000 recipe", f"every row to {SEED_SOURCE} + {SEED_TARGET}, gradient checkpointing"),
            "seed000_no_ckpt": ("seed 000 padding only", f"every row to {SEED_SOURCE} + {SEED_TARGET}"),
            "text2sql": ("text2sql default", "per batch, random batches"),
            "grouped": ("text2sql, length-grouped (opt-in)", "per batch, length-grouped"),
        }
        for key, runs in results.items():
            label, padding = names[key]
            shown = ", ".join(f"{r[0]:,.0f}" for r in runs)
            # Same rows, same initial adapter, same loss: only the padding and its cost differ.
            print(f"| {label} | {padding} | {median[key]:,.0f} | {shown} | {runs[0][3]:.4f} |")
        print()
        print(
            f"**text2sql / seed 000: {ratio:.1f}x** real tokens per second "
            f"(length-grouped: {median['grouped'] / median['seed000']:.1f}x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
