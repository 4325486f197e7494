"""The head on answer positions only: the loss and the gradients equal the full computation (decoders
tied and untied, T5, LoRA and full fine-tuning), the trainers go through it, evaluation's loss and
RL's log-probabilities agree with full logits, and heads that transform their logits keep them whole."""

from __future__ import annotations

import pytest
import torch

import text2sql.training.answer_loss as answer_loss
from text2sql.training.answer_loss import head_is_linear, install_answer_head, score_tokens

VOCAB = 997


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    # 16 positions a chunk (the least there is): every batch below spans several chunks and a partial last one.
    monkeypatch.setattr(answer_loss, "CHUNK_BYTES", 4 * VOCAB * 16)


def _decoder(arch: str, *, tie: bool):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    if arch == "gpt2":
        config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, tie_word_embeddings=tie)
        return GPT2LMHeadModel(config).eval()
    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[
        arch
    ]
    config = config_class(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tie,
    )
    return model_class(config).eval()


def _t5():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    return T5ForConditionalGeneration(config).eval()


def _batch(seq2seq: bool = False):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 40), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 31:] = 0  # right padding
    if seq2seq:
        labels = torch.randint(3, VOCAB, (3, 9), generator=g)
        labels[0, 6:] = -100
    else:
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :15] = -100  # the prompt
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _lora(model, seq2seq: bool):
    from peft import LoraConfig, get_peft_model

    targets = ["q", "v"] if seq2seq else "all-linear"
    task = "SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM"
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type=task))
    with torch.no_grad():  # LoRA's B starts at zero: give it values so that its gradient path is exercised
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return peft_model


def _loss_and_grads(model, batch, **extra):
    model.zero_grad(set_to_none=True)
    loss = model(**batch, **extra).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _same(full, answer):
    (full_loss, full_grads), (answer_loss_, answer_grads) = full, answer
    assert abs(float(full_loss) - float(answer_loss_)) < 1e-5, (float(full_loss), float(answer_loss_))
    assert full_grads.keys() == answer_grads.keys() and full_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(answer_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("arch", "tie", "method"),
    [
        ("llama", True, "full"),
        ("llama", True, "lora"),
        ("llama", False, "full"),
        ("qwen2", False, "lora"),
        ("gpt2", True, "full"),
    ],
)
def test_decoder_loss_and_gradients_equal_the_full_head(arch, tie, method):
    model = _decoder(arch, tie=tie)
    if method == "lora":
        model = _lora(model, seq2seq=False)
    batch = _batch()
    count = int((batch["labels"][:, 1:] != -100).sum())
    full = _loss_and_grads(model, batch, num_items_in_batch=count)
    assert install_answer_head(model)
    assert torch.equal(full[0], _loss_and_grads(model, batch, num_items_in_batch=count)[0])  # the flag decides
    answer = _loss_and_grads(model, batch, fused_lm_head=True, num_items_in_batch=count)
    _same(full, answer)
    if method == "full":  # the head's own weight (tied: the embedding) gets its gradient
        head = answer_loss.unwrap(model).get_output_embeddings().weight
        assert head.grad is not None and head.grad.abs().sum() > 0


@pytest.mark.parametrize("method", ["full", "lora"])
def test_t5_loss_and_gradients_equal_the_full_head(method):
    model = _t5()
    if method == "lora":
        model = _lora(model, seq2seq=True)
    batch = _batch(seq2seq=True)
    full = _loss_and_grads(model, batch)  # T5's own loss: the mean over the batch's labels
    assert install_answer_head(model)
    _same(full, _loss_and_grads(model, batch, fused_lm_head=True))


def test_chunks_keep_only_answer_positions_and_no_batch_of_logits(monkeypatch):
    """The head sees the labelled positions only, a chunk at a time, also in the backward pass."""
    import torch.nn.functional as F

    model = _decoder("llama", tie=True)
    install_answer_head(model)
    batch = _batch()
    widths = []
    real_linear = F.linear

    def spy(x, weight, bias=None):
        if weight.shape[0] == VOCAB:
            widths.append(x.shape[0])
        return real_linear(x, weight, bias)

    monkeypatch.setattr(F, "linear", spy)
    model(**batch, fused_lm_head=True).loss.backward()
    answers = int((batch["labels"][:, 1:] != -100).sum())
    forward = widths[: len(widths) // 2]
    assert sum(forward) == answers and max(forward) == 16 and len(forward) >= 3  # backward recomputes them
    assert sum(widths) == 2 * answers


def test_an_empty_batch_of_answers_is_a_zero_that_still_backpropagates():
    model = _decoder("llama", tie=True)
    install_answer_head(model)
    batch = _batch()
    batch["labels"] = torch.full_like(batch["labels"], -100)
    loss = model(**batch, fused_lm_head=True).loss
    loss.backward()
    assert float(loss) == 0.0


def test_entropy_and_top1_match_full_logits_and_entropy_can_carry_a_gradient():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, VOCAB, bias=True)
    hidden = torch.randn(20, 16, requires_grad=True)
    targets = torch.randint(0, VOCAB, (20,))
    scores = score_tokens(hidden, head, targets, temperature=0.7, entropy_grad=True)
    logits = head(hidden) / 0.7
    log_p = logits.log_softmax(-1)
    torch.testing.assert_close(scores.log_probs, log_p.gather(-1, targets[:, None]).squeeze(-1))
    torch.testing.assert_close(scores.entropy, -(log_p.exp() * log_p).sum(-1))
    assert torch.equal(scores.is_top1, logits.argmax(-1) == targets)
    (g_chunked,) = torch.autograd.grad(scores.entropy.sum(), hidden)
    (g_full,) = torch.autograd.grad(-(log_p.exp() * log_p).sum(), hidden)
    torch.testing.assert_close(g_chunked, g_full)


def test_a_frozen_head_is_cast_once_under_autocast_until_it_changes():
    import text2sql.training.answer_loss as answer_loss

    torch.manual_seed(0)
    head = torch.nn.Linear(16, VOCAB, bias=False).requires_grad_(False)
    hidden = torch.randn(12, 16, requires_grad=True)
    targets = torch.randint(0, VOCAB, (12,))
    casts = []
    real = answer_loss._cast

    def spy(weight, dtype):
        casts.append(real(weight, dtype))
        return casts[-1]

    answer_loss._cast = spy
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            first = score_tokens(hidden, head, targets).log_probs
            second = score_tokens(hidden, head, targets).log_probs
            with torch.no_grad():
                head.weight.mul_(2.0)  # a changed weight is cast again
            third = score_tokens(hidden, head, targets).log_probs
    finally:
        answer_loss._cast = real
    assert casts[0] is casts[1] and casts[2] is not casts[0]
    assert torch.equal(first, second) and not torch.equal(first, third)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.nn.functional.linear(hidden, head.weight).float().log_softmax(-1)
    torch.testing.assert_close(third, expected.gather(-1, targets[:, None]).squeeze(-1))
    # A trainable head is cast anew each time: its gradient flows through the cast.
    head.weight.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        score_tokens(hidden, head, targets).log_probs.sum().backward()
    assert head.weight.grad is not None


def test_heads_that_transform_their_logits_keep_the_full_computation():
    model = _decoder("llama", tie=True)
    assert head_is_linear(model)
    model.config.final_logit_softcapping = 30.0  # Gemma-style soft-capping
    assert not head_is_linear(model) and not install_answer_head(model)


def test_without_the_flag_the_model_and_generation_are_unchanged():
    model = _decoder("llama", tie=True)
    batch = _batch()
    before = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    generated = model.generate(batch["input_ids"][:1, :8], max_new_tokens=4, do_sample=False)
    install_answer_head(model)
    after = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(before, after)
    assert torch.equal(generated, model.generate(batch["input_ids"][:1, :8], max_new_tokens=4, do_sample=False))
