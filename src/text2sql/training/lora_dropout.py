"""LoRA's dropout on CPU with a one-byte mask.

PEFT puts an `nn.Dropout` in front of every LoRA path (seven per layer of a Llama-shaped model). On CPU
PyTorch implements dropout as a product with a float noise tensor of the input's size, and keeps that
tensor for the backward pass: four bytes per element of every LoRA input, about a quarter of the
activations a SmolLM2-135M step keeps, and one Mersenne-Twister draw per element, which a single
thread spends seconds a step on. `MaskDropout` is the same inverted dropout (each element kept with
probability 1 - p and scaled by 1 / (1 - p), independently per module and call) with the mask kept as
booleans and drawn sixteen bits at a time, four draws per 64-bit random word. p is rounded to a
multiple of 2^-15 (0.05 becomes 0.04999); the scale uses the rounded value, so the expectation of
every element is unchanged. Activation checkpointing replays the same masks: it restores the random
generator's state before recomputing a layer.
"""

from __future__ import annotations

from typing import Any

import torch

_LEVELS = 1 << 15  # the low 15 bits of each 16-bit draw: uniform on 0..32767
_LOW_BITS = 0x7FFF_7FFF_7FFF_7FFF  # those bits of all four draws of a 64-bit word


class _ScaleByMask(torch.autograd.Function):
    """x · mask · scale, keeping only the boolean mask for the backward pass."""

    @staticmethod
    def forward(ctx, x, mask, scale: float):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return x.mul(mask).mul_(scale)  # (x · mask) · scale, as PyTorch's dropout, in one new tensor

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad.mul(mask).mul_(ctx.scale), None, None


def keep_mask(shape: torch.Size, cut: int, device: torch.device) -> torch.Tensor:
    """Booleans of `shape`, each False with probability cut / 2^15, from the default generator."""
    n = 1
    for size in shape:
        n *= size
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()
    words.bitwise_and_(_LOW_BITS)  # in place: the low 15 bits of each 16-bit draw, with no tensor more
    return (words.view(torch.int16)[:n] >= cut).view(shape)


class MaskDropout(torch.nn.Dropout):
    """`nn.Dropout` (training mode, not in place) with a boolean mask; identity in evaluation."""

    def __init__(self, p: float = 0.5):
        super().__init__(p=p)
        self.cut = round(p * _LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        if self.cut >= _LEVELS:
            return x * 0.0
        mask = keep_mask(x.shape, self.cut, x.device)
        return _ScaleByMask.apply(x, mask, _LEVELS / (_LEVELS - self.cut))


def install_mask_dropout(model: Any) -> int:
    """Replace the plain `nn.Dropout` of every LoRA path in `model` by `MaskDropout` of the same p;
    returns how many were replaced (0 for a model without LoRA dropout)."""
    replaced = 0
    for module in model.modules():
        paths = getattr(module, "lora_dropout", None)
        if not isinstance(paths, torch.nn.ModuleDict):
            continue
        for name, layer in list(paths.items()):
            if type(layer) is torch.nn.Dropout and not layer.inplace:
                paths[name] = MaskDropout(layer.p)
                replaced += 1
    return replaced
