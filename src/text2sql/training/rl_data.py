"""The rl stage's training rows: the prepared prompt tokens as the trainer generates from them, and a
check that their gold SQL runs at all."""

from __future__ import annotations

import functools
from typing import Any

from text2sql.errors import DataError
from text2sql.sql.match import execute_pairs


def grpo_dataset(prepared: Any, tokenizer: Any) -> tuple[Any, int]:
    """(rows with `prompt`, `prompt_ids`, `sql`, `db_path`; rows left out for want of a database) from a
    prepared split.

    `prompt_ids` are each row's prepared prompt tokens (`input_ids[:prompt_length]`), which the trainer
    generates from as they are (`trainer_class`): RL asks with the very ids SFT trained on and evaluation
    asks with. Text tokenized again would not do: a stored value `</s>` that the prompt builder encoded
    as plain characters decodes to the string `</s>`, which a tokenizer reads back as the special token.
    `prompt` is their decoded text, for logs and reward functions only."""
    columns = prepared.select_columns(["input_ids", "prompt_length", "sql", "db_path"]).to_dict()
    keep = [i for i, db in enumerate(columns["db_path"]) if db]
    ids = [list(columns["input_ids"][i][: columns["prompt_length"][i]]) for i in keep]
    texts = tokenizer.batch_decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    from datasets import Dataset

    data = Dataset.from_dict(
        {
            "prompt": texts,
            "prompt_ids": ids,
            "sql": [columns["sql"][i] for i in keep],
            "db_path": [columns["db_path"][i] for i in keep],
        }
    )
    return data, len(columns["db_path"]) - len(keep)


@functools.cache
def trainer_class() -> type:
    """TRL's GRPOTrainer generating from each row's `prompt_ids` rather than tokenizing its `prompt`
    text (TRL 1.x tokenizes a text prompt with the tokenizer's defaults, special tokens matched)."""
    from trl import GRPOTrainer

    class PromptIdsGRPOTrainer(GRPOTrainer):
        _batch_prompt_ids: list[list[int]] | None = None

        def _generate_and_score_completions(self, inputs):
            # The prompts TRL hands `_tokenize_prompts` are this batch's rows' prompts, in order.
            self._batch_prompt_ids = [list(row["prompt_ids"]) for row in inputs]
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                self._batch_prompt_ids = None

        def _tokenize_prompts(self, prompts: list):
            ids = self._batch_prompt_ids
            if ids is None or len(ids) != len(prompts):
                raise RuntimeError("rl: the batch's prompt ids are not at hand; its rows need a prompt_ids column")
            return ids, None, {}

    return PromptIdsGRPOTrainer


def check_gold_runs(rows: Any, timeout: float, sample: int = 64) -> None:
    """Refuse, in one line, data whose gold SQL runs nowhere: every reward would be left out and
    GRPO would learn nothing. Checked on a fixed sample of rows (their gold compared with itself)."""
    from text2sql.data.example import Example

    picked = rows.select(range(min(sample, len(rows))))
    examples = [Example(question="", sql=q, db_path=d) for q, d in zip(picked["sql"], picked["db_path"])]
    outcomes = execute_pairs(examples, [e.sql for e in examples], timeout=timeout)
    if examples and all(o[0] is None for o in outcomes):
        reason = outcomes[0][3] or outcomes[0][2]
        raise DataError(
            f"rl: the gold SQL of none of {len(examples)} sampled training rows runs on its database (e.g. {reason}); "
            "check data.db / data.db_dir and the gold queries"
        )
