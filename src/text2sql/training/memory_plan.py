"""How a CPU run spends memory and arithmetic: bfloat16 autocast where the CPU computes it natively,
and activation checkpointing where the activations a step keeps would dominate its memory.

bf16: Linux lists the CPU's features in /proc/cpuinfo; `avx512_bf16` (AVX-512 BF16 dot products) or
`amx_bf16` (AMX tiles) mean bfloat16 matrix products run in hardware, about twice as fast as float32
ones; without them PyTorch emulates bfloat16 and autocast only costs. Autocast also costs a cast per
operation, which small models never win back, so it needs a hidden size of at least
`BF16_MIN_HIDDEN`. Weights stay float32 (the optimizer updates float32 values); matrix products and
the activations they produce are bfloat16.

Checkpointing: a probe runs the model's body on one row at three lengths and counts the bytes of the
tensors autograd keeps for the backward pass (fixed, per token, and per token squared for attention
kernels that keep their scores). Projected onto the run's largest batch (rows × longest prepared row),
the kept activations are held to a budget, a sixteenth of this machine's memory and at least
`CHECKPOINT_ABOVE_BYTES` (the probe counts only what autograd keeps: a step's peak also holds the
backward pass's buffers, bf16 copies of the weights and the kernels' caches, ~3.5 GB more for
SmolLM2-135M at batch 8): under it nothing is checkpointed; over it the layers are, all but the last
u, u the most that keep the projection under the budget, since each checkpointed layer runs its
forward pass again in the backward (SmolLM2-135M with LoRA, every layer checkpointed: 40% more time a
step, measured; the backward computes no weight gradients for frozen layers, so a forward is a large
part of a step). A checkpointed layer keeps only its input. Leaving u layers out rather than every
n-th one (transformers' `every_n_layers`, which the user may still set) fits the budget to the layer.
The user's settings win: `training.bf16` / `fp16`, and `training.activation_checkpointing` (true or
false) or `gradient_checkpointing: true` (its `false` is text2sql's default, which leaves the choice
to the probe). GPUs keep transformers' behaviour: this plan is for CPU runs.

LoRA's dropout keeps a byte per element instead of four on CPU (`lora_dropout.MaskDropout`), and
under bf16 autocast each LoRA layer's sum stays float32 (`lora_precision`); the plan records how
many LoRA paths each applies to, and whether torch puts large tensors on huge pages (`huge_pages`,
which the `text2sql` command turns on before torch loads).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("text2sql.train")

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_MIN_HIDDEN = 512
CHECKPOINT_ABOVE_BYTES = 1 * 2**30
MEMORY_SHARE = 16  # the kept activations may take 1/MEMORY_SHARE of the machine's memory
PROBE_LENGTHS = (16, 32, 64)
PRECISION_KEYS = ("bf16", "fp16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU listed in `cpuinfo` (empty when there is no such file)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86; ARM names them Features
            return frozenset(value.split())
    return frozenset()


def native_bf16_flag(flags: frozenset[str] | None = None) -> str | None:
    """The CPU flag that says bfloat16 runs in hardware, or None."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in NATIVE_BF16_FLAGS if f in flags), None)


@dataclass
class MemoryPlan:
    """What a CPU run does with bf16 and activation checkpointing, and why (recorded in the training log)."""

    bf16: bool
    bf16_reason: str
    activation_checkpointing: bool | None  # None: decided by the probe once the model is loaded
    checkpointing_reason: str = ""
    checkpoint_every: int = 1  # the user's every_n_layers (transformers): every n-th layer checkpointed
    unchecked_layers: int = 0  # with checkpointing on: the last u layers keep their activations
    mask_dropout: int = 0  # LoRA dropouts that keep a one-byte mask (lora_dropout.MaskDropout)
    lora_float32_sums: int = 0  # LoRA layers whose sum stays float32 under bf16 (lora_precision)
    huge_pages: bool = False  # torch's large CPU tensors on transparent huge pages (text2sql.huge_pages)
    answer_only_logits: bool = False
    answer_logits_reason: str = ""
    probe: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        ckpt = "off"
        if self.activation_checkpointing:
            ckpt = "on" if self.checkpoint_every == 1 else f"on every {self.checkpoint_every} layers"
            if self.unchecked_layers:
                ckpt = f"on but the last {self.unchecked_layers} layers"
        logits = "answer positions only" if self.answer_only_logits else "every position"
        return (
            f"bf16 autocast {'on' if self.bf16 else 'off'} ({self.bf16_reason}); activation checkpointing {ckpt} "
            f"({self.checkpointing_reason}); logits on {logits} ({self.answer_logits_reason}); "
            f"large tensors on huge pages: {'yes' if self.huge_pages else 'no'}"
        )


def _user_checkpointing(training: dict[str, Any]) -> bool | None:
    """The user's choice, or None. `gradient_checkpointing: false` is text2sql's default (it keeps TRL's
    default `true` away), so only `true` is a choice under that old name; `activation_checkpointing`
    decides either way."""
    if training.get("activation_checkpointing") is not None:
        return bool(training["activation_checkpointing"])
    return True if training.get("gradient_checkpointing") else None


def plan_precision(training: dict[str, Any], hidden_size: int, flags: frozenset[str] | None = None) -> MemoryPlan:
    """The bf16 half of the plan (known before the model loads) for a CPU run; checkpointing is left
    to the probe unless `training` sets it."""
    if any(k in training for k in PRECISION_KEYS):
        bf16, reason = bool(training.get("bf16", False)), "set by training.bf16/fp16"
    else:
        flag = native_bf16_flag(flags)
        if flag is None:
            bf16, reason = False, "this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag)"
        elif hidden_size < BF16_MIN_HIDDEN:
            bf16, reason = False, f"hidden size {hidden_size} < {BF16_MIN_HIDDEN}: casts would cost more than they save"
        else:
            bf16, reason = True, f"the CPU has {flag}"
    user = _user_checkpointing(training)
    plan = MemoryPlan(bf16=bf16, bf16_reason=reason, activation_checkpointing=user)
    if user is not None:
        plan.checkpointing_reason = "set by training.activation_checkpointing"
        kwargs = training.get("activation_checkpointing_kwargs") or training.get("gradient_checkpointing_kwargs") or {}
        plan.checkpoint_every = int(kwargs.get("every_n_layers", 1))
    return plan


def hidden_size_of(config: Any) -> int:
    """The model's hidden width (d_model for T5, n_embd for GPT-2)."""
    for name in ("hidden_size", "d_model", "n_embd"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return 0


# ------------------------------------------------------------------------------------ the probe


def saved_bytes(model: Any, kind: str, length: int, *, bf16: bool) -> int:
    """Bytes of the distinct tensors autograd keeps for backward after the body's forward pass on one
    row of `length` tokens (parameters excluded; bf16 copies of frozen weights under autocast count)."""
    import contextlib

    import torch

    from text2sql.training.answer_loss import decoder_hidden, seq2seq_hidden, unwrap

    base = unwrap(model)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}
    # Held here until the count is done, so that no freed address is counted twice; the graph gets
    # nothing back (no backward pass follows). Handing the tensor itself back to the graph would
    # leak it: a node that saves its own output then holds itself (~250 MB per call for SmolLM2).
    held: list[Any] = []

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
            held.append(tensor)

    def unpack(_: Any) -> torch.Tensor:
        raise RuntimeError("the probe runs no backward pass")

    device = next(model.parameters()).device
    ids = torch.full((1, length), 1, dtype=torch.long, device=device)
    mask = torch.ones_like(ids)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.enable_grad(), autocast, torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        if kind == "seq2seq":
            out = seq2seq_hidden(base, input_ids=ids, attention_mask=mask, labels=ids)
        else:
            out = decoder_hidden(base, input_ids=ids, attention_mask=mask)
    del out
    held.clear()
    return sum(storages.values())


def probe_activations(model: Any, kind: str, *, bf16: bool) -> dict[str, float]:
    """Activation bytes of the body as fixed + per_token·L + per_token_squared·L² for one row of L
    tokens, fitted exactly through three probe lengths."""
    import numpy as np
    import torch

    was_training = model.training
    model.train()  # dropout masks are kept only in training mode
    # The probe's dropout draws must not shift the run's random numbers.
    with torch.random.fork_rng(devices=[]):
        try:
            sizes = [saved_bytes(model, kind, n, bf16=bf16) for n in PROBE_LENGTHS]
        finally:
            model.train(was_training)
    matrix = np.array([[1.0, n, n * n] for n in PROBE_LENGTHS])
    fixed, per_token, squared = np.linalg.solve(matrix, np.array(sizes, dtype=float))
    return {"fixed": float(fixed), "per_token": float(per_token), "per_token_squared": float(max(squared, 0.0))}


def projected_bytes(probe: dict[str, float], rows: int, length: int) -> float:
    """Activation bytes of a batch of `rows` rows padded to `length` tokens."""
    per_row = probe["per_token"] * length + probe["per_token_squared"] * length * length
    return probe["fixed"] + rows * per_row


def activation_budget() -> int:
    """Bytes the kept activations of a step may take: a sixteenth of this machine's memory (or of the
    cgroup's limit, when lower), and at least CHECKPOINT_ABOVE_BYTES."""
    import psutil

    total = psutil.virtual_memory().total
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return max(CHECKPOINT_ABOVE_BYTES, total // MEMORY_SHARE)


def checkpoint_layers(model: Any) -> list[Any]:
    """The repeated blocks transformers checkpoints (its GradientCheckpointingLayer modules)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def kept_with_unchecked(
    probe: dict[str, float], rows: int, length: int, *, layers: int, unchecked: int, input_bytes: int
) -> float:
    """Projected activation bytes when all but the last `unchecked` of `layers` layers are checkpointed:
    those keep only their input (`input_bytes` per token), the rest what the probe measured (spread evenly)."""
    whole = projected_bytes(probe, rows, length)
    if layers == 0:
        return whole
    checkpointed = layers - unchecked
    body = whole - probe["fixed"]
    return probe["fixed"] + body * (1 - checkpointed / layers) + rows * length * input_bytes * checkpointed


def decide_checkpointing(plan: MemoryPlan, model: Any, kind: str, *, rows: int, length: int) -> MemoryPlan:
    """Fill in the checkpointing decision by the probe (unless the user set it or the model cannot)."""
    if plan.activation_checkpointing is not None:
        return plan
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        plan.activation_checkpointing = False
        plan.checkpointing_reason = f"{type(base).__name__} does not support it"
        return plan
    probe = probe_activations(model, kind, bf16=plan.bf16)
    kept = projected_bytes(probe, rows, length)
    budget = activation_budget()
    layers = len(checkpoint_layers(base))
    input_bytes = 4 * hidden_size_of(base.config)  # the float32 residual stream entering a layer
    unchecked = max(
        (
            u
            for u in range(layers)
            if kept_with_unchecked(probe, rows, length, layers=layers, unchecked=u, input_bytes=input_bytes) <= budget
        ),
        default=0,
    )
    plan.probe = {
        **{k: round(v, 1) for k, v in probe.items()},
        "rows": rows,
        "length": length,
        "bytes": round(kept),
        "budget": budget,
        "layers": layers,
    }
    gib, limit = kept / 2**30, budget / 2**30
    plan.activation_checkpointing = kept > budget and layers > 0
    if not plan.activation_checkpointing:
        plan.checkpointing_reason = (
            f"a batch of {rows} x {length} tokens keeps ~{gib:.2f} GiB of activations <= {limit:.2f} GiB, "
            f"1/{MEMORY_SHARE} of this machine's memory (probed)"
        )
        return plan
    plan.unchecked_layers = unchecked
    after = kept_with_unchecked(probe, rows, length, layers=layers, unchecked=unchecked, input_bytes=input_bytes)
    which = (
        f"every layer of {layers}"
        if not unchecked
        else f"{layers - unchecked} of {layers} layers (not the last {unchecked})"
    )
    plan.checkpointing_reason = (
        f"a batch of {rows} x {length} tokens keeps ~{gib:.2f} GiB of activations > {limit:.2f} GiB, "
        f"1/{MEMORY_SHARE} of this machine's memory: checkpointing {which} keeps ~{after / 2**30:.2f} GiB (probed)"
    )
    return plan


def plan_callback(plan: MemoryPlan):
    """A TrainerCallback that writes the plan into the training log (`training_log.json`) at the start."""
    from transformers import TrainerCallback

    class MemoryPlanCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if not any("memory_plan" in entry for entry in state.log_history):  # once, also on resume
                state.log_history.append({"step": state.global_step, "memory_plan": plan.record()})
            # The trainer has just turned checkpointing on for every layer; the last u keep theirs.
            if plan.activation_checkpointing and plan.unchecked_layers and model is not None:
                base = model.get_base_model() if hasattr(model, "get_base_model") else model
                for layer in checkpoint_layers(base)[-plan.unchecked_layers :]:
                    layer.gradient_checkpointing = False

    return MemoryPlanCallback()
