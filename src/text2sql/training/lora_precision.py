"""LoRA under bfloat16 autocast: the adapter's contribution added in float32.

Under autocast a frozen layer's product comes out in bfloat16, and PEFT adds the LoRA path to it and
casts the sum back to that dtype. bfloat16 keeps 8 bits of mantissa, so a sum near 1 moves in steps
of ~0.004, and early in training the adapter's contribution is smaller than that: the forward pass
rounds most of it away, while the gradients still treat it as added. The run learns more slowly than
in float32 (SmolLM2-135M, LoRA, batch 8: a mean training loss over 4 steps of 1.4291 in bfloat16
against 1.3858 in float32). `keep_lora_sums_float32` makes the frozen product of every LoRA layer
come out in float32 (a cast of the bfloat16 product, which is exact), so that the adapter is added
and the layer's output kept in float32; the matrix products themselves stay bfloat16. Measured the
same way: 1.3870. The elementwise work after those layers then runs in float32 too, which costs some
time and memory (BENCHMARKS.md, "Training memory on CPU").
"""

from __future__ import annotations

from typing import Any

_HALF = ("bfloat16", "float16")
_HOOKED = "_text2sql_float32_sum"  # set on a LoRA layer once its frozen layer is hooked


def _float_output(module: Any, args: Any, output: Any) -> Any:
    """A forward hook: the layer's half-precision output as float32 while autocast runs, else as is."""
    import torch

    if (
        isinstance(output, torch.Tensor)
        and str(output.dtype).removeprefix("torch.") in _HALF
        and torch.is_autocast_enabled(output.device.type)
    ):
        return output.float()
    return None


def widens(module: Any) -> bool:
    """Whether a LoRA layer maps to more features than it reads (an MLP's gate and up projections)."""
    base = module.get_base_layer()
    return getattr(base, "out_features", 0) > getattr(base, "in_features", 0)


def keep_lora_sums_float32(model: Any, *, widening: bool = True) -> int:
    """Hook the frozen layer under every LoRA layer of `model` so that under autocast its output, and
    so the LoRA sum, is float32; returns how many layers were hooked (0 without LoRA). Without
    `widening`, layers that widen (`widens`) keep PEFT's bfloat16 sum."""
    from peft.tuners.lora import LoraLayer

    hooked = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and not getattr(module, _HOOKED, False):
            if not widening and widens(module):
                continue
            module.get_base_layer().register_forward_hook(_float_output)
            setattr(module, _HOOKED, True)
            hooked += 1
    return hooked
