"""Execution accuracy during training, as an evaluation metric the Trainer can select on.

    callback = ExecutionAccuracyCallback(prepared["validation"], builder, num_samples=64)
    trainer = Trainer(..., callbacks=[callback, EarlyStoppingCallback(3)])
    # TrainingArguments(metric_for_best_model="eval_execution_accuracy", greater_is_better=True)

At every evaluation the live model generates SQL for the same fixed sample of validation rows
(seeded, rows with a database only), the SQL is executed read-only and compared with the gold
result, and `eval_execution_accuracy` is added to the evaluation metrics in place. The Trainer
decides the best checkpoint after all `on_evaluate` callbacks have run, so
`metric_for_best_model: eval_execution_accuracy` works; EarlyStoppingCallback reads the metrics in
its own `on_evaluate`, so this callback must come *before* it in the callbacks list. The value is
also written into the evaluation entry of `state.log_history` (hence trainer_state.json and the
training log); trackers that were already called for that entry do not see it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from text2sql.data.example import Example
from text2sql.data.prompt import PromptBuilder
from text2sql.inference.generate import HFGenerator
from text2sql.inference.loading import unwrap_model
from text2sql.sql.execution import DEFAULT_TIMEOUT
from text2sql.sql.extract import extract_sql
from text2sql.sql.match import execute_pairs

log = logging.getLogger(__name__)

METRIC = "eval_execution_accuracy"


def rows_from(data: Any) -> list[Example]:
    """Examples from a prepared `datasets.Dataset`, or a sequence of Examples or dicts."""
    if hasattr(data, "column_names") and hasattr(data, "select_columns"):
        wanted = [
            c
            for c in ("id", "question", "sql", "schema", "db_id", "db_path", "evidence", "history")
            if c in data.column_names
        ]
        columns = data.select_columns(wanted).with_format("arrow")[:].to_pydict()
        records = [{c: columns[c][i] for c in wanted} for i in range(len(data))]
    else:
        records = [r if isinstance(r, dict) else vars(r) for r in data]
    return [
        Example(
            id=str(r.get("id") or i),
            question=r.get("question") or "",
            sql=r.get("sql") or "",
            schema=r.get("schema") or "",
            db_id=r.get("db_id"),
            db_path=r.get("db_path"),
            evidence=r.get("evidence"),
            history=[(q, sql) for q, sql in _turns(r.get("history"))],
        )
        for i, r in enumerate(records)
    ]


def _turns(value: Any) -> list:
    """A row's earlier turns: a prepared row's JSON text, or the list an Example holds."""
    if isinstance(value, str):
        return json.loads(value)
    return list(value or [])


class ExecutionAccuracyCallback(TrainerCallback):
    """Adds `eval_execution_accuracy` (share of sampled validation rows whose generated SQL returns
    the gold result) to the metrics of every evaluation.

    Args:
        eval_data: the validation rows: a prepared `datasets.Dataset` split (columns question, sql,
            schema, db_path, ...) or a sequence of `Example`s or dicts with those fields.
        builder: the PromptBuilder training uses (its tokenizer decodes the generated ids).
        num_samples: rows to generate for at each evaluation (a fixed seeded sample of the rows that
            have a database; all of them when there are fewer).
        batch_size / max_new_tokens: generation settings (greedy decoding).
        timeout: seconds each SQL query may run.
        seed: picks the sample.
        metric_name: the key added to the metrics.
    """

    def __init__(
        self,
        eval_data: Any,
        builder: PromptBuilder,
        *,
        num_samples: int = 64,
        batch_size: int = 16,
        max_new_tokens: int = 128,
        timeout: float = DEFAULT_TIMEOUT,
        seed: int = 0,
        metric_name: str = METRIC,
    ):
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        rows = [r for r in rows_from(eval_data) if r.db_path]
        if not rows:
            raise ValueError("no validation row has a database: execution accuracy cannot be measured")
        if len(rows) > num_samples:
            rows = random.Random(seed).sample(rows, num_samples)
        self.rows: Sequence[Example] = rows
        self.builder = builder
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.timeout = timeout
        self.metric_name = metric_name
        # Rows whose prompt is over budget are counted wrong, as evaluation scores them.
        self._fitted = builder.fit(rows)
        self.last_predictions: list[str] = []

    def compute(self, model: Any) -> float:
        """Execution accuracy of `model` on the sample; the model's train/eval mode is restored."""
        model = unwrap_model(model)
        was_training = model.training
        model.eval()
        try:
            generator = HFGenerator(model, self.builder.tokenizer, self.builder.kind)
            asked = [i for i, f in enumerate(self._fitted) if f.fits]
            answers = generator.generate_texts(
                [self._fitted[i].ids for i in asked], self.max_new_tokens, batch_size=self.batch_size
            )
        finally:
            model.train(was_training)
        texts = [""] * len(self.rows)
        for i, text in zip(asked, answers):
            texts[i] = text
        self.last_predictions = [extract_sql(t) for t in texts]
        outcomes = execute_pairs(self.rows, self.last_predictions, timeout=self.timeout)
        scored = [match for match, *_ in outcomes if match is not None]
        return sum(scored) / len(scored) if scored else 0.0

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if model is None or metrics is None:
            return
        value = self.compute(model)
        metrics[self.metric_name] = value
        # The Trainer logged this evaluation before calling us: add the value to that entry.
        for entry in reversed(state.log_history):
            if entry.get("step") == state.global_step and any(k.startswith("eval_") for k in entry):
                entry[self.metric_name] = value
                break
        log.info("step %d: %s = %.4f (%d rows)", state.global_step, self.metric_name, value, len(self.rows))
