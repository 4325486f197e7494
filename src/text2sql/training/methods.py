"""Fine-tuning methods: which weights train, and how the base model is loaded for them.

`lora`, `dora` and `rslora` wrap the base model in a PEFT LoRA adapter (DoRA adds a learnt magnitude
per output feature; rsLoRA scales by alpha / sqrt(r) instead of alpha / r). `qlora` is LoRA over a
base quantized to 4 or 8 bits by bitsandbytes, which needs a CUDA GPU. `full` trains every weight.

Default target modules: T5 adapts the attention query and value projections (`q`, `v`, as T5 LoRA recipes do);
decoders adapt every linear layer but the output head (`all-linear`, as QLoRA recipes do). A requested name
that matches no layer is an error that lists the layer names the model has.
"""

from __future__ import annotations

import re
from typing import Any

from text2sql.config import Config
from text2sql.errors import ConfigError, MissingExtraError

PEFT_METHODS = ("lora", "qlora", "dora", "rslora")
SEQ2SEQ_DEFAULT_TARGETS = ["q", "v"]
DECODER_DEFAULT_TARGETS = "all-linear"


def is_peft_method(method: str) -> bool:
    return method in PEFT_METHODS


def check_method_available(cfg: Config) -> None:
    """Fail before any model loads when the method cannot run here (qlora without a GPU or bitsandbytes)."""
    if cfg.finetune.method != "qlora":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "finetune.method=qlora quantizes the base model with bitsandbytes, which needs a CUDA GPU and none is "
            "visible; use finetune.method=lora on this machine"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingExtraError("finetune.method=qlora", "bitsandbytes", "qlora") from None


def quantization_config(cfg: Config, compute_dtype: Any):
    """The BitsAndBytesConfig for qlora (4-bit NF4 with double quantization, or 8-bit); None otherwise."""
    if cfg.finetune.method != "qlora":
        return None
    from transformers import BitsAndBytesConfig

    if cfg.finetune.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        # Stored in the compute dtype, so that DeepSpeed ZeRO-3 and FSDP can shard the 4-bit weights.
        bnb_4bit_quant_storage=compute_dtype,
    )


# ------------------------------------------------------------------------------------ target modules


def _adaptable_layers(model) -> dict[str, Any]:
    """Full module name → module, for every layer LoRA can wrap (Linear, and GPT-2's Conv1D)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return {name: mod for name, mod in model.named_modules() if isinstance(mod, (torch.nn.Linear, Conv1D))}


def linear_layer_names(model) -> list[str]:
    """The leaf names of the model's linear layers (`q_proj`, `c_attn`, `q`, ...), sorted."""
    return sorted({name.rsplit(".", 1)[-1] for name in _adaptable_layers(model)})


def default_target_modules(kind: str) -> list[str] | str:
    return list(SEQ2SEQ_DEFAULT_TARGETS) if kind == "seq2seq" else DECODER_DEFAULT_TARGETS


def resolve_target_modules(model, kind: str, requested: list[str] | str | None) -> list[str] | str:
    """The target_modules for LoraConfig: the family default, or the requested names once each is
    known to match at least one linear layer (PEFT's own rule: a full name, or a dotted suffix)."""
    if requested is None or requested == [] or requested == "":
        return default_target_modules(kind)
    if requested == DECODER_DEFAULT_TARGETS:
        return requested
    layers = list(_adaptable_layers(model))
    if isinstance(requested, str):  # PEFT reads a single string as a regex over full module names
        if not any(re.fullmatch(requested, name) for name in layers):
            raise ConfigError(
                f"finetune.target_modules: the pattern {requested!r} matches no linear layer of the model; "
                f"its linear layers are named {', '.join(linear_layer_names(model))}"
            )
        return requested
    missing = [t for t in requested if not any(n == t or n.endswith(f".{t}") for n in layers)]
    if missing:
        raise ConfigError(
            f"finetune.target_modules: {', '.join(repr(m) for m in missing)} "
            f"{'is not a layer' if len(missing) == 1 else 'are not layers'} of the model; "
            f"its linear layers are named {', '.join(linear_layer_names(model))}"
        )
    return list(requested)


def _targets_conv1d(model, targets: list[str] | str) -> bool:
    """GPT-2's Conv1D stores its weight transposed; LoRA must know (fan_in_fan_out)."""
    from transformers.pytorch_utils import Conv1D

    layers = _adaptable_layers(model)
    chosen: list[Any]
    if targets == DECODER_DEFAULT_TARGETS:
        chosen = list(layers.values())
    elif isinstance(targets, str):
        chosen = [m for n, m in layers.items() if re.fullmatch(targets, n)]
    else:
        chosen = [m for n, m in layers.items() if any(n == t or n.endswith(f".{t}") for t in targets)]
    return any(isinstance(m, Conv1D) for m in chosen)


def lora_config(cfg: Config, kind: str, model):
    """peft.LoraConfig for cfg.finetune (dora / rslora switch their flags on); None for full fine-tuning."""
    if not is_peft_method(cfg.finetune.method):
        return None
    from peft import LoraConfig, TaskType

    targets = resolve_target_modules(model, kind, cfg.finetune.target_modules)
    return LoraConfig(
        r=cfg.finetune.r,
        lora_alpha=cfg.finetune.alpha,
        lora_dropout=cfg.finetune.dropout,
        bias=cfg.finetune.bias,
        target_modules=targets,
        fan_in_fan_out=_targets_conv1d(model, targets),
        use_dora=cfg.finetune.method == "dora",
        use_rslora=cfg.finetune.method == "rslora",
        task_type=TaskType.SEQ_2_SEQ_LM if kind == "seq2seq" else TaskType.CAUSAL_LM,
    )


def apply_method(model, cfg: Config, kind: str, *, activation_checkpointing: bool = False):
    """Wrap `model` for cfg.finetune.method: a PeftModel with a fresh adapter, or the model itself (full).

    The adapter records the user's base model spec (`cfg.model.name_or_path`, e.g. `tiny:llama` or a
    hub id), not the local cache path it was loaded from, so that it loads on any machine.
    """
    if cfg.finetune.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=activation_checkpointing)
    peft_cfg = lora_config(cfg, kind, model)
    if peft_cfg is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        # PEFT reads transformers 5's deprecated `is_gradient_checkpointing`; nothing for a user to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated")
        peft_model = get_peft_model(model, peft_cfg)
    for adapter_cfg in peft_model.peft_config.values():
        adapter_cfg.base_model_name_or_path = cfg.model.name_or_path
    return peft_model


# ------------------------------------------------------------------------------------ summary


def parameter_summary(model) -> dict[str, Any]:
    """Trainable and total parameter counts (the usual summary); PEFT counts 4-bit weights right."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    return {"trainable": int(trainable), "total": int(total), "percent": round(100.0 * trainable / max(total, 1), 4)}


def format_summary(summary: dict[str, Any]) -> str:
    return f"trainable parameters: {summary['trainable']:,} of {summary['total']:,} ({summary['percent']:.2f}%)"
