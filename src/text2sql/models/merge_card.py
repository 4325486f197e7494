"""What a merged model folder holds besides weights and tokenizer: the run's config.yaml, a README.md
model card and merge_report.json (see `text2sql.models.merge`)."""

from __future__ import annotations

import json
from pathlib import Path

from text2sql.paths import is_hub_id

REPORT = "merge_report.json"


def write_merge_files(folder: Path, result, cfg=None, *, rates: dict[str, float] | None = None) -> None:
    """Write config.yaml (when the adapter came with one), README.md and merge_report.json for a
    `MergeResult` into `folder`. `rates` (the relative tolerances used) go into the report."""
    import peft
    import torch
    import transformers

    if cfg is not None:
        cfg = cfg.model_copy(deep=True)
        # The base actually merged into: the adapter's own, or the --base that replaced it.
        cfg.model.name_or_path = result.base
        header = (
            f"# text2sql merge: adapter {result.adapter} merged into {result.base}, saved as {result.dtype}.\n"
            "# This folder is the merged model; model.name_or_path is the base it was merged from.\n"
        )
        (folder / "config.yaml").write_text(header + cfg.to_yaml(), encoding="utf-8")
    report = {
        **result.to_dict(),
        **(rates or {}),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(model_card(result, has_config=cfg is not None), encoding="utf-8")


def model_card(result, *, has_config: bool) -> str:
    """A Hugging Face style model card: metadata, what was merged, how it was verified, how to load."""
    auto_class = "AutoModelForSeq2SeqLM" if result.kind == "seq2seq" else "AutoModelForCausalLM"
    front = ["---", "library_name: transformers", "tags:", "- text2sql", "- merged-adapter"]
    if is_hub_id(result.base):  # only a hub id is valid `base_model` metadata
        front.insert(1, f"base_model: {result.base}")
    if has_config:
        prompt_note = (
            "Prompts must be built as in training: `config.yaml` holds the run's prompt settings\n"
            "(template, system prompt, schema format), and text2sql reads them from this folder."
        )
    else:
        prompt_note = "Prompts must be built exactly as in training (the adapter came without a config.yaml)."
    return (
        "\n".join(front + ["---", ""])
        + f"""
# Merged text-to-SQL model

A standalone model: the adapter `{result.adapter}` merged into `{result.base}` by `text2sql merge`,
saved as **{result.dtype}**. It needs no PEFT to load.

## Verification

Logits on {len(result.prompts)} teacher-forced prompts ({result.tokens_checked} tokens), largest |logit| {result.logit_scale:.3g}:

- merged vs adapter model, both float32: largest difference {result.max_abs_diff:.3g} (tolerance {result.tolerance:.3g})
- this folder loaded in {result.dtype} vs the float32 merge: largest difference {result.saved_max_abs_diff:.3g} (tolerance {result.saved_tolerance:.3g})
- the adapter's own effect on the base: largest difference {result.adapter_effect:.3g}

Details in `{REPORT}`.

## Use

```python
from transformers import AutoTokenizer, {auto_class}

tokenizer = AutoTokenizer.from_pretrained("{result.path}")
model = {auto_class}.from_pretrained("{result.path}")
```

{prompt_note}
"""
    )
