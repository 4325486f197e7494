"""The trainers, evaluation and RL use the answer-only head, and what they compute through it equals
the full computation: SFT's loss (TRL's normalisation), T5's loss (transformers' mean), evaluation's
teacher-forced loss, and RL's completion log-probabilities."""

from __future__ import annotations

import pytest
import torch

import text2sql.evaluation.loss as loss_module
import text2sql.training.answer_loss as answer_loss
from text2sql.data.bundled import db_path
from text2sql.models.loading import open_model
from text2sql.training.trainer import build_trainer
from training_support import run_config


class Spy:
    """Counts the positions `score_tokens` is given, call by call."""

    def __init__(self, monkeypatch):
        self.sizes: list[int] = []
        real = answer_loss.score_tokens

        def spy(hidden, *args, **kwargs):
            self.sizes.append(hidden.shape[0])
            return real(hidden, *args, **kwargs)

        monkeypatch.setattr(answer_loss, "score_tokens", spy)


def _setup(arch: str, tmp_path, *extra: str):
    cfg = run_config(f"tiny:{arch}", tmp_path / "run", *extra)
    base = open_model(cfg.model.name_or_path)
    return build_trainer(cfg, base, tmp_path / "run" / "data")


def _first_batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer._prepare_inputs(batch)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_the_trainer_loss_is_the_full_loss_through_the_answer_head(arch, tmp_path, monkeypatch):
    setup = _setup(arch, tmp_path)
    trainer, model = setup.trainer, setup.model
    assert setup.memory_plan is not None and setup.memory_plan.answer_only_logits
    inputs = _first_batch(trainer)
    seq2seq = arch == "t5"
    labels = inputs["labels"] if seq2seq else inputs["labels"][:, 1:]
    count = int((labels != -100).sum())
    spy = Spy(monkeypatch)
    model.train()
    with torch.no_grad():
        if seq2seq:  # transformers' Trainer: T5's own loss, the mean over the batch's labels
            full = model(**inputs).loss
            ours = trainer.compute_loss(model, dict(inputs), num_items_in_batch=count)
        else:  # TRL: the summed loss over num_items_in_batch
            full = model(**inputs, num_items_in_batch=count).loss
            ours = trainer.compute_loss(model, dict(inputs), num_items_in_batch=count)
    assert sum(spy.sizes) == count  # the head saw the answer positions and nothing else
    assert abs(float(ours) - float(full)) < 1e-5
    spy.sizes.clear()
    metrics = trainer.evaluate()
    assert spy.sizes and metrics["eval_loss"] > 0  # evaluation's loss goes through it too


def test_a_short_training_run_learns_the_same_through_both_heads(tmp_path, monkeypatch):
    """Three steps of full fine-tuning: the same weights whichever head computes the loss."""
    steps = ("finetune.method=full", "training.max_steps=3", "training.eval_strategy=no")
    ours = _setup("llama", tmp_path / "a", *steps)
    ours.trainer.train()
    monkeypatch.setattr(answer_loss, "head_is_linear", lambda model: False)  # TRL's head on every position
    theirs = _setup("llama", tmp_path / "b", *steps)
    assert not theirs.memory_plan.answer_only_logits
    theirs.trainer.train()
    a, b = dict(ours.model.named_parameters()), dict(theirs.model.named_parameters())
    for name, value in a.items():
        # Adam turns float32 rounding in near-zero gradients into differences of up to ~0.5% of one
        # step (lr 1e-2); a wrong loss or gradient moves weights by whole steps.
        torch.testing.assert_close(value, b[name], rtol=0, atol=1e-4, msg=name)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_evaluation_loss_equals_the_full_logits_loss(arch, monkeypatch):
    from text2sql.evaluation.evalset import load_eval_set
    from text2sql.inference.loading import load_for_inference
    from text2sql.models.tiny import tiny_model_path

    im = load_for_inference(str(tiny_model_path(f"tiny:{arch}")))
    kind = "seq2seq" if arch == "t5" else "decoder"
    rows = load_eval_set("bundled", split="test", read_options=im.read_options()).rows[::60]
    encoded = loss_module.encode_rows(rows, im.builder, use_prepared=False)
    pad = im.tokenizer.pad_token_id
    spy = Spy(monkeypatch)
    ours = loss_module.teacher_forced_loss(im.model, kind, encoded, pad_id=pad, batch_size=3)
    assert spy.sizes and sum(spy.sizes) == ours["num_tokens"]
    monkeypatch.setattr(loss_module, "head_is_linear", lambda model: False)
    full = loss_module.teacher_forced_loss(im.model, kind, encoded, pad_id=pad, batch_size=3)
    assert ours["num_tokens"] == full["num_tokens"] > 0
    assert ours["loss"] == pytest.approx(full["loss"], rel=1e-5)


def test_rl_log_probabilities_equal_trl_and_cover_completions_only(tiny_llama_path, monkeypatch):
    """TRL's fused head (which on CPU projects every position) and the answer head give the same
    completion log-probabilities and entropies; the answer head projects the completion alone."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_path)).eval()
    add_fused_lm_head(model, temperature=0.8, outputs=("log_probs", "entropy"))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, model.config.vocab_size, (4, 30), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 26:] = 0  # a completion that stopped early
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-6] = -100  # as GRPOTrainer marks the prompt
    with torch.no_grad():
        theirs = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        assert answer_loss.install_answer_head(model, temperature=0.8, entropy_grad=True)
        spy = Spy(monkeypatch)
        ours = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    assert sum(spy.sizes) == int((labels[:, 1:] != -100).sum()) == 4 * 6 - 4
    torch.testing.assert_close(ours.log_probs, theirs.log_probs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.entropy, theirs.entropy, rtol=1e-5, atol=1e-5)


def test_rl_scores_completions_through_the_answer_head(tiny_llama_path, tmp_path, monkeypatch):
    from text2sql.config import load_config
    from text2sql.training.grpo import train_grpo

    cfg = load_config(
        None,
        [f"output_dir={tmp_path / 'run'}", f"model.name_or_path={tiny_llama_path}", "finetune.method=full",
         "data.train=bundled", "data.max_samples.train=4", "data.max_samples.validation=2",
         "data.max_samples.test=2", "data.schema_format=tables", f"rl.init_from={tiny_llama_path}",
         "rl.max_steps=1", "rl.num_generations=2", "rl.per_device_train_batch_size=4",
         "rl.max_completion_length=8", "rl.learning_rate=1e-2", "callbacks.progress=lines"],
    )  # fmt: skip
    assert db_path("airline").is_file()
    spy = Spy(monkeypatch)
    result = train_grpo(cfg)
    assert result.global_step == 1 and spy.sizes
    assert max(spy.sizes) <= 4 * 8  # completion positions of one batch, never its prompts
