"""ExecutionAccuracyCallback in a real transformers.Trainer run: eval_execution_accuracy reaches the
metrics, the log history and the best-model selection."""

import pytest
import torch

from text2sql.data import bundled
from text2sql.data.example import Example
from text2sql.data.prompt import IGNORE_INDEX
from text2sql.inference.loading import build_prompt_builder
from text2sql.training.accuracy import METRIC, ExecutionAccuracyCallback


def _examples(split, n):
    return [
        Example(
            question=r["question"],
            sql=r["sql"],
            db_id=r["db_id"],
            db_path=str(bundled.db_path(r["db_id"])),
            schema="",
            id=r["id"],
        )
        for r in list(bundled.iter_rows(split))[:n]
    ]


@pytest.fixture(scope="module")
def setup(tiny_llama_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from text2sql.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_llama_path))
    builder = build_prompt_builder(tokenizer, "decoder", "llama", None)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    return model, builder


class _Rows(torch.utils.data.Dataset):
    def __init__(self, encoded):
        self.encoded = encoded

    def __len__(self):
        return len(self.encoded)

    def __getitem__(self, i):
        return {"input_ids": self.encoded[i].input_ids, "labels": self.encoded[i].labels}


def _collate(batch):
    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(b["input_ids"]), torch.tensor(b["labels"]), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def test_callback_in_a_trainer_run(setup, tmp_path):
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

    model, builder = setup
    train = _Rows(builder.encode_batch(_examples("train", 8)))
    valid = _examples("validation", 12)
    callback = ExecutionAccuracyCallback(valid, builder, num_samples=4, batch_size=4, max_new_tokens=6)
    assert len(callback.rows) == 4
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        metric_for_best_model=METRIC,
        greater_is_better=True,
        load_best_model_at_end=True,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_total_limit=1,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=_Rows(builder.encode_batch(valid[:4])),
        data_collator=_collate,
        callbacks=[callback, EarlyStoppingCallback(early_stopping_patience=3)],
    )
    trainer.train()
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    assert len(evals) == 1 and all(METRIC in e and 0.0 <= e[METRIC] <= 1.0 for e in evals)
    assert trainer.state.best_metric is not None  # selected on eval_execution_accuracy
    assert len(callback.last_predictions) == 4
    metrics = trainer.evaluate()
    assert METRIC in metrics


def test_compute_restores_mode_and_scores_right_answers(setup, monkeypatch):
    model, builder = setup
    callback = ExecutionAccuracyCallback(_examples("validation", 30), builder, num_samples=5, seed=1)
    golds = {tuple(f.ids): row.sql for f, row in zip(callback._fitted, callback.rows)}

    def answer_gold(self, prompt_ids, max_new_tokens, **kwargs):
        assert not self.model.training  # generation runs in eval mode
        return [f"```sql\n{golds[tuple(ids)]}\n```" for ids in prompt_ids]

    monkeypatch.setattr("text2sql.inference.generate.HFGenerator.generate_texts", answer_gold)
    model.train()
    assert callback.compute(model) == 1.0
    assert model.training
    model.eval()
    metrics = {"eval_loss": 1.0}

    class State:
        global_step = 7
        log_history = [{"eval_loss": 1.0, "step": 7}]

    callback.on_evaluate(None, State, None, model=model, metrics=metrics)
    assert metrics[METRIC] == 1.0 and State.log_history[-1][METRIC] == 1.0
    assert not model.training


def test_callback_needs_rows_with_a_database(setup):
    _, builder = setup
    with pytest.raises(ValueError, match="no validation row has a database"):
        ExecutionAccuracyCallback([Example(question="q", sql="SELECT 1")], builder)
