"""LoRA's dropout with a one-byte mask: the same inverted dropout as `nn.Dropout` (rate, scale,
gradient, identity in evaluation), a quarter of the bytes kept for the backward pass, the same masks
when activation checkpointing replays a layer, and only LoRA's plain dropouts replaced."""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from text2sql.training.lora_dropout import MaskDropout, install_mask_dropout


def test_it_drops_at_the_rate_and_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    drop = MaskDropout(0.05).train()
    out = drop(x)
    dropped = float((out == 0).float().mean())
    assert abs(dropped - 0.05) < 4 * (0.05 * 0.95 / 1e6) ** 0.5  # binomial: four standard deviations
    kept_value = float(out[out != 0][0])
    assert kept_value == pytest.approx(1 / (1 - drop.cut / 2**15))
    assert float(out.mean()) == pytest.approx(1.0, abs=2e-3)
    assert drop.eval()(x) is x
    assert MaskDropout(0.0).train()(x) is x
    assert torch.equal(MaskDropout(1.0).train()(x), torch.zeros_like(x))


def test_the_gradient_passes_where_the_mask_keeps():
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    weights = torch.randn(64, 32)
    drop = MaskDropout(0.3).train()
    out = drop(x)
    (out * weights).sum().backward()
    kept = out != 0
    scale = 1 / (1 - drop.cut / 2**15)
    assert torch.allclose(x.grad, weights * kept * scale)
    assert 0.2 < 1 - float(kept.float().mean()) < 0.4


def _kept_bytes(module, x) -> int:
    sizes: dict[int, int] = {}

    def pack(tensor):
        sizes[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(sizes.values())


def test_it_keeps_a_quarter_of_the_bytes_of_torch_dropout():
    x = torch.randn(256, 576, requires_grad=True)
    torch_bytes = _kept_bytes(torch.nn.Dropout(0.05).train(), x)
    mask_bytes = _kept_bytes(MaskDropout(0.05).train(), x)
    assert mask_bytes == x.numel()  # one byte per element
    assert mask_bytes <= torch_bytes / 4


def test_checkpointing_replays_the_same_masks():
    """A checkpointed layer draws its masks again in the backward pass: the gradients must be those
    of the masks its forward pass used."""
    layer = torch.nn.Sequential(MaskDropout(0.2), torch.nn.Linear(32, 32), MaskDropout(0.2)).train()
    x = torch.randn(16, 32, requires_grad=True)

    def grads(checkpointed: bool):
        torch.manual_seed(7)
        layer.zero_grad()
        x.grad = None
        out = checkpoint(layer, x, use_reentrant=False) if checkpointed else layer(x)
        out.square().sum().backward()
        return out.detach(), x.grad.clone(), layer[1].weight.grad.clone()

    plain, replayed = grads(False), grads(True)
    for a, b in zip(plain, replayed):
        assert torch.equal(a, b)


def test_only_loras_plain_dropouts_are_replaced():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        attention_dropout=0.1,
    )  # fmt: skip
    model = get_peft_model(
        LlamaForCausalLM(config), LoraConfig(r=4, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert install_mask_dropout(model) == 14  # 7 LoRA paths in each of 2 layers
    drops = [m for m in model.modules() if isinstance(m, MaskDropout)]
    assert len(drops) == 14 and all(d.p == 0.05 for d in drops)
    assert model.state_dict().keys() == before.keys()  # nothing saved changes
    assert install_mask_dropout(model) == 0  # twice is once
    no_dropout = get_peft_model(
        LlamaForCausalLM(config), LoraConfig(r=4, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    assert install_mask_dropout(no_dropout) == 0


def test_each_mask_element_is_one_16_bit_draw_against_the_cut():
    # Four 15-bit draws per 64-bit word from the default generator, in order: the masks a run draws
    # stay the same whichever way they are computed (measured runs compare against them).
    from text2sql.training.lora_dropout import keep_mask

    torch.manual_seed(3)
    mask = keep_mask(torch.Size([7, 9]), 1638, torch.device("cpu"))
    torch.manual_seed(3)
    words = torch.empty(16, dtype=torch.int64).random_()
    draws = [int(d) & 0x7FFF for d in words.view(torch.int16)[:63]]
    assert mask.flatten().tolist() == [d >= 1638 for d in draws]
