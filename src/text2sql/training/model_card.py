"""The README.md written beside a trained adapter or model: what it is, how it was made, how to load it."""

from __future__ import annotations

import json
from typing import Any

from text2sql.config import Config

_HYPERPARAMETERS = (
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "bf16",
    "fp16",
    "seed",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_model_card(
    cfg: Config,
    *,
    stage: str,
    kind: str,
    model_type: str,
    parameters: dict[str, Any],
    hyperparameters: dict[str, Any],
    metrics: dict[str, Any],
    data_rows: dict[str, int],
    target_modules: Any = None,
) -> str:
    base = cfg.model.name_or_path
    method = cfg.finetune.method
    is_adapter = stage == "adapter"
    front = [
        "---",
        f"base_model: {base}",
        f"library_name: {'peft' if is_adapter else 'transformers'}",
        "tags:",
        "- text2sql",
        "- text-to-sql",
        f"- {method}",
        "---",
        "",
    ]
    title = f"# text-to-SQL {'adapter' if is_adapter else 'model'} for {base}"
    lines = [
        title,
        "",
        f"Trained with `text2sql train` ({method}{'' if not is_adapter else f', r={cfg.finetune.r}, alpha={cfg.finetune.alpha}'}) "
        f"to answer a question about a database with one SQL query and nothing else.",
        "",
        "## Model",
        "",
        f"- base model: `{base}` ({model_type}, {kind})",
        f"- method: {method}" + (f" ({cfg.finetune.bits}-bit base)" if method == "qlora" else ""),
    ]
    if is_adapter:
        shown = target_modules if isinstance(target_modules, str) else ", ".join(sorted(target_modules or []))
        lines += [
            f"- LoRA: r={cfg.finetune.r}, alpha={cfg.finetune.alpha}, dropout={cfg.finetune.dropout}, bias={cfg.finetune.bias}",
            f"- target modules: {shown}",
        ]
    lines += [
        f"- trainable parameters: {parameters['trainable']:,} of {parameters['total']:,} ({parameters['percent']:.2f}%)",
        "",
        "## Data",
        "",
        f"- train: `{cfg.data.train}`" + (f", validation: `{cfg.data.validation}`" if cfg.data.validation else ""),
        "- rows: " + ", ".join(f"{k} {v:,}" for k, v in data_rows.items()),
        f"- prompt: template `{cfg.prompt.template}`, schema format `{cfg.data.schema_format}`",
        "",
        "## Training hyperparameters",
        "",
        "| name | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(hyperparameters[k])} |" for k in _HYPERPARAMETERS if k in hyperparameters]
    lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]
    lines += ["", "## How to use", ""]
    if is_adapter:
        lines += [
            "```bash",
            "text2sql merge --adapter <this folder> --output merged/      # a standalone model",
            "text2sql evaluate --model <this folder> --data <test data> --output eval/",
            "```",
            "",
            "```python",
            "from text2sql.models.adapters import load_adapter_model",
            'model = load_adapter_model("<this folder>")  # base model + this adapter',
            "```",
        ]
    else:
        loader = "AutoModelForSeq2SeqLM" if kind == "seq2seq" else "AutoModelForCausalLM"
        lines += [
            "```bash",
            "text2sql evaluate --model <this folder> --data <test data> --output eval/",
            "```",
            "",
            "```python",
            f"from transformers import AutoTokenizer, {loader}",
            f'model = {loader}.from_pretrained("<this folder>")',
            'tokenizer = AutoTokenizer.from_pretrained("<this folder>")',
            "```",
        ]
    lines += [
        "",
        "Prompts must be built the way training built them (`text2sql.data.prompt.PromptBuilder` with the",
        "settings in `config.yaml` beside this file); `text2sql predict` and `serve` do that for you.",
        "",
        "## Files",
        "",
        "- `config.yaml`: the resolved text2sql config of this run",
        "- `trainable_parameters.json`: trainable / total parameter counts",
        "- `training_log.json`: the trainer's log history (loss and learning rate per logging step)",
        "",
    ]
    return "\n".join(front + lines)


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
