"""The rl stage's training rows: the prepared prompts as TRL takes them, and a check that their gold
SQL runs at all."""

from __future__ import annotations

import logging
from typing import Any

from text2sql.errors import DataError
from text2sql.sql.match import execute_pairs

log = logging.getLogger("text2sql.rl")


def grpo_dataset(prepared: Any, tokenizer: Any) -> tuple[Any, int]:
    """(rows with `prompt`, `sql`, `db_path`; rows left out for want of a database) from a prepared split.

    `prompt` is the decoded prompt tokens of each row. TRL tokenizes a string prompt with the
    tokenizer's defaults and no chat template; a tokenizer that adds its BOS to any text would double
    the one the template rendered, so that BOS is taken off the text (checked on every row: a prompt
    that does not tokenize back to its ids is reported)."""
    columns = prepared.select_columns(["input_ids", "prompt_length", "sql", "db_path"]).to_dict()
    keep = [i for i, db in enumerate(columns["db_path"]) if db]
    ids = [columns["input_ids"][i][: columns["prompt_length"][i]] for i in keep]
    texts = tokenizer.batch_decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if texts:
        texts = _strip_added_bos(tokenizer, texts)
        again = tokenizer(text=texts)["input_ids"]
        differ = sum(a != b for a, b in zip(again, ids))
        if differ:
            log.warning(
                "%d of %d RL prompts tokenize differently from the prepared prompt tokens (the tokenizer does not "
                "round-trip them); RL trains on the decoded text",
                differ,
                len(ids),
            )
    from datasets import Dataset

    data = Dataset.from_dict(
        {
            "prompt": texts,
            "sql": [columns["sql"][i] for i in keep],
            "db_path": [columns["db_path"][i] for i in keep],
        }
    )
    return data, len(columns["db_path"]) - len(keep)


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


def _strip_added_bos(tokenizer: Any, texts: list[str]) -> list[str]:
    bos = tokenizer.bos_token
    if not bos or tokenizer.bos_token_id is None:
        return texts
    probe = tokenizer(text="x")["input_ids"]
    if not probe or probe[0] != tokenizer.bos_token_id:
        return texts  # the tokenizer adds no BOS of its own
    return [t[len(bos) :] if t.startswith(bos) else t for t in texts]
