"""LoRA under bf16 autocast: the frozen layer's product comes out in float32, so the adapter's small
contribution is added exactly instead of rounded into bfloat16; outside autocast nothing changes."""

from __future__ import annotations

import torch

from text2sql.training.lora_precision import keep_lora_sums_float32


def _lora_layer(seed: int = 0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256))
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["0"]))
    for name, p in lora.named_parameters():
        if "lora_B" in name:  # a trained adapter: small next to the frozen product
            torch.nn.init.normal_(p, std=1e-3)
    return lora


def test_the_adapter_is_added_in_float32_under_autocast():
    x = torch.randn(64, 256)
    plain, hooked = _lora_layer(), _lora_layer()
    assert keep_lora_sums_float32(hooked) == 1
    assert keep_lora_sums_float32(hooked) == 0  # twice is once
    with torch.no_grad():
        exact = plain(x)  # float32 throughout
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded, kept = plain(x), hooked(x)
        with plain.disable_adapter():
            delta = exact - plain(x)  # what the adapter adds, in float32
            with torch.autocast("cpu", dtype=torch.bfloat16):
                base_bf16 = plain(x).float()  # the frozen product as bf16 computes it
    assert rounded.dtype == torch.bfloat16 and kept.dtype == torch.float32
    assert delta.abs().mean() < 0.05 * exact.abs().mean()  # small next to the frozen product
    # Both carry the bf16 error of the frozen product; the hooked one adds the adapter's part to it
    # with the adapter's own (bf16, relative) error only, the plain one rounds the sum to bf16.
    kept_error = (kept - base_bf16 - delta).abs().mean()
    rounded_error = (rounded.float() - base_bf16 - delta).abs().mean()
    assert kept_error < 0.02 * delta.abs().mean()
    assert rounded_error > 5 * kept_error


def test_outside_autocast_the_output_is_untouched():
    x = torch.randn(8, 256)
    plain, hooked = _lora_layer(), _lora_layer()
    keep_lora_sums_float32(hooked)
    with torch.no_grad():
        assert torch.equal(plain(x), hooked(x))


def test_a_model_without_lora_is_left_alone():
    assert keep_lora_sums_float32(torch.nn.Linear(4, 4)) == 0


def test_without_widening_layers_only_the_narrower_ones_are_hooked():
    from peft import LoraConfig, get_peft_model

    # An MLP as decoders have it: up (widens), down (narrows back); only `down` keeps a float32 sum.
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.SiLU(), torch.nn.Linear(64, 16))
    lora = get_peft_model(mlp, LoraConfig(r=4, lora_alpha=8, target_modules=["0", "2"]))
    assert keep_lora_sums_float32(lora, widening=False) == 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        wide = lora.base_model.model[0](torch.randn(2, 16))
        out = lora(torch.randn(2, 16))
    assert wide.dtype == torch.bfloat16 and out.dtype == torch.float32
