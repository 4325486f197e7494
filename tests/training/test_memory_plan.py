"""A CPU run's memory plan: bf16 autocast from the CPU's flags and the model's width, activation
checkpointing from a probe of the activations a batch keeps, the user's settings first, and the plan
and its reasons in the training log; bf16 autocast leaves the loss where float32 has it."""

from __future__ import annotations

import json

import pytest
import torch

import text2sql.training.memory_plan as memory_plan
from text2sql.training.memory_plan import (
    MemoryPlan,
    cpu_flags,
    decide_checkpointing,
    native_bf16_flag,
    plan_precision,
    probe_activations,
    projected_bytes,
)
from text2sql.training.train import train
from training_support import run_config

ZEN4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n\n"
OLD_XEON = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    zen4, xeon = tmp_path / "zen4", tmp_path / "xeon"
    zen4.write_text(ZEN4)
    xeon.write_text(OLD_XEON)
    assert "avx512_bf16" in cpu_flags(zen4) and native_bf16_flag(cpu_flags(zen4)) == "avx512_bf16"
    assert native_bf16_flag(cpu_flags(xeon)) is None
    assert native_bf16_flag(frozenset({"amx_bf16", "amx_tile"})) == "amx_bf16"
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_bf16_needs_the_flag_and_a_wide_model_and_the_user_wins():
    flags = frozenset({"avx512_bf16"})
    assert plan_precision({}, 576, flags).bf16  # SmolLM2's width
    narrow = plan_precision({}, 128, flags)
    assert not narrow.bf16 and "hidden size 128" in narrow.bf16_reason
    emulated = plan_precision({}, 896, frozenset({"avx2"}))
    assert not emulated.bf16 and "no native bfloat16" in emulated.bf16_reason
    assert not plan_precision({"bf16": False}, 896, flags).bf16
    assert plan_precision({"bf16": True}, 128, frozenset()).bf16
    assert plan_precision({}, 896, flags).activation_checkpointing is None  # left to the probe
    assert plan_precision({"gradient_checkpointing": True}, 896, flags).activation_checkpointing is True
    assert plan_precision({"activation_checkpointing": False}, 896, flags).activation_checkpointing is False
    # text2sql's own default (it overrides TRL's `true`) is no choice: the probe decides
    assert plan_precision({"gradient_checkpointing": False}, 896, flags).activation_checkpointing is None


def _lora_llama(layers: int = 2, hidden: int = 64, attention: str = "sdpa"):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=512,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        attn_implementation=attention,
    )
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(LlamaForCausalLM(config), lora)


def test_the_probe_scales_with_layers_and_sees_attention_scores():
    one, four = (
        probe_activations(_lora_llama(1), "decoder", bf16=False),
        probe_activations(_lora_llama(4), "decoder", bf16=False),
    )
    assert 3.5 < four["per_token"] / one["per_token"] < 4.5  # the layers keep nearly all of it
    assert one["per_token_squared"] == 0  # sdpa keeps no [length x length] scores
    eager = probe_activations(_lora_llama(1, attention="eager"), "decoder", bf16=False)
    assert eager["per_token_squared"] > 0  # eager attention keeps its softmax: quadratic in length
    halved = probe_activations(_lora_llama(4), "decoder", bf16=True)
    assert halved["per_token"] < 0.8 * four["per_token"]  # bf16 products keep bf16 outputs
    assert projected_bytes(four, 8, 100) == pytest.approx(four["fixed"] + 8 * 100 * four["per_token"])


def test_the_probe_measures_what_a_forward_pass_keeps():
    """The fit agrees with a direct count at a length it never probed."""
    model = _lora_llama(2)
    probe = probe_activations(model, "decoder", bf16=False)
    assert memory_plan.saved_bytes(model, "decoder", 200, bf16=False) == pytest.approx(
        projected_bytes(probe, 1, 200), rel=1e-6
    )


def test_the_probe_leaves_random_numbers_alone():
    model = _lora_llama(2)
    torch.manual_seed(3)
    probe_activations(model, "decoder", bf16=False)
    after = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(3))


def test_checkpointing_turns_on_above_the_budget(monkeypatch):
    model = _lora_llama(2)
    monkeypatch.setattr(memory_plan, "activation_budget", lambda: 2**30)
    plan = decide_checkpointing(MemoryPlan(False, "", None), model, "decoder", rows=8, length=300)
    assert plan.activation_checkpointing is False and "<= 1.00 GiB" in plan.checkpointing_reason
    assert plan.probe["rows"] == 8 and plan.probe["length"] == 300 and plan.probe["layers"] == 2
    monkeypatch.setattr(memory_plan, "activation_budget", lambda: 1)
    plan = decide_checkpointing(MemoryPlan(False, "", None), model, "decoder", rows=8, length=300)
    assert plan.activation_checkpointing is True and plan.checkpoint_every == 1
    assert "checkpointing every layer of 2" in plan.checkpointing_reason
    user = decide_checkpointing(MemoryPlan(False, "", False, "set by training"), model, "decoder", rows=8, length=300)
    assert user.activation_checkpointing is False and not user.probe


def test_the_fewest_layers_that_fit_are_checkpointed(monkeypatch):
    """All layers but the last u, u the most whose projection fits the budget; a checkpointed layer
    keeps only its float32 input."""
    model = _lora_llama(12)
    probe = probe_activations(model, "decoder", bf16=False)
    kept = [
        memory_plan.kept_with_unchecked(probe, 8, 300, layers=12, unchecked=u, input_bytes=4 * 64) for u in range(13)
    ]
    assert all(a < b for a, b in zip(kept, kept[1:]))  # fewer checkpointed layers, more kept
    whole = projected_bytes(probe, 8, 300)
    assert kept[0] == pytest.approx(probe["fixed"] + 8 * 300 * 4 * 64 * 12)  # only the layer inputs
    assert kept[12] == pytest.approx(whole)
    assert kept[6] == pytest.approx(probe["fixed"] + (whole - probe["fixed"]) / 2 + 8 * 300 * 4 * 64 * 6)
    for u, budget in ((5, kept[5] + 1), (3, (kept[3] + kept[4]) / 2), (0, kept[0] - 1)):
        monkeypatch.setattr(memory_plan, "activation_budget", lambda budget=budget: int(budget))
        plan = decide_checkpointing(MemoryPlan(False, "", None), model, "decoder", rows=8, length=300)
        assert plan.activation_checkpointing and plan.unchecked_layers == u, (u, plan.checkpointing_reason)
        assert plan.checkpoint_every == 1
        assert (f"(not the last {u})" in plan.checkpointing_reason) == (u > 0)


def test_the_budget_is_a_sixteenth_of_the_machine():
    import psutil

    budget = memory_plan.activation_budget()
    assert memory_plan.CHECKPOINT_ABOVE_BYTES <= budget <= max(psutil.virtual_memory().total // 16, 2**30)


@pytest.mark.parametrize("unchecked", [0, 1])
def test_the_run_records_its_plan_and_follows_it(tmp_path, monkeypatch, unchecked):
    monkeypatch.setattr(memory_plan, "cpu_flags", lambda *a: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(memory_plan, "BF16_MIN_HIDDEN", 64)  # tiny:llama is 128 wide
    monkeypatch.setattr(memory_plan, "activation_budget", lambda: 1)  # any activations at all
    if unchecked:  # as if the budget had room for one layer's activations
        fits = memory_plan.kept_with_unchecked
        monkeypatch.setattr(
            memory_plan, "kept_with_unchecked", lambda *a, **k: 0 if k["unchecked"] <= unchecked else fits(*a, **k)
        )
    seen = {}

    from transformers import TrainerCallback

    from text2sql.training.lora_dropout import MaskDropout
    from text2sql.training.memory_plan import checkpoint_layers

    class Look(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            base = model.get_base_model()
            seen["checkpointing"] = base.is_activation_checkpointing
            seen["layers"] = [layer.gradient_checkpointing for layer in checkpoint_layers(base)]
            seen["bf16"] = args.bf16
            seen["mask_dropout"] = sum(isinstance(m, MaskDropout) for m in model.modules())

    result = train(run_config("tiny:llama", tmp_path / "run", "training.max_steps=1"), callbacks=[Look()])
    layers = len(seen["layers"])
    assert seen["checkpointing"] and seen["bf16"] and layers >= 2
    assert seen["layers"] == [i < layers - unchecked for i in range(layers)]
    history = json.loads((result.path / "training_log.json").read_text())
    (entry,) = [e["memory_plan"] for e in history if "memory_plan" in e]
    assert entry["bf16"] and entry["bf16_reason"] == "the CPU has avx512_bf16"
    assert entry["activation_checkpointing"] and entry["unchecked_layers"] == unchecked
    assert "GiB of activations" in entry["checkpointing_reason"]
    assert entry["answer_only_logits"] and entry["probe"]["per_token"] > 0
    assert entry["mask_dropout"] == seen["mask_dropout"] == 7 * layers  # every LoRA path of every layer
    assert entry["lora_float32_sums"] == 7 * layers  # bf16 on: every LoRA sum kept in float32


def test_a_small_model_keeps_float32_and_no_checkpointing(tmp_path):
    result = train(run_config("tiny:llama", tmp_path / "run", "training.max_steps=1"))
    history = json.loads((result.path / "training_log.json").read_text())
    (entry,) = [e["memory_plan"] for e in history if "memory_plan" in e]
    assert not entry["bf16"] and not entry["activation_checkpointing"]
    assert entry["checkpointing_reason"].endswith("(probed)") and entry["bf16_reason"]


@pytest.mark.skipif(native_bf16_flag() is None, reason="this CPU has no native bfloat16")
def test_bf16_autocast_leaves_the_loss_where_float32_has_it():
    """A 576-wide decoder (SmolLM2's width): under bf16 autocast the loss of a batch moves by well
    under 1%, and the answer-only head agrees with the full head under autocast too."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from text2sql.training.answer_loss import install_answer_head

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=4096, hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9
    )
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 4096, (4, 64))
    labels = ids.clone()
    labels[:, :40] = -100
    with torch.no_grad():
        fp32 = model(input_ids=ids, labels=labels).loss
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(input_ids=ids, labels=labels).loss
            install_answer_head(model)
            answer = model(input_ids=ids, labels=labels, fused_lm_head=True).loss
    assert abs(float(bf16) - float(fp32)) / float(fp32) < 0.01
    assert abs(float(answer) - float(bf16)) / float(bf16) < 1e-3
