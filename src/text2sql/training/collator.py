"""Dynamic padding for prepared rows: each batch is padded to its own longest row, never to a fixed length.

The attention mask comes from each row's real length, not from comparing ids with the pad id: GPT-2
and many Llama tokenizers pad with their EOS token, and a mask built from pad ids would hide the EOS
that ends every target, so the model would never learn to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass
class PaddingCollator:
    """Pads `input_ids` with `pad_token_id` and `labels` with -100, both on the right.

    Decoder rows have labels as long as their input; seq2seq (T5) rows have shorter labels (the target),
    padded to the longest target of the batch. Other columns of a row are ignored.
    `pad_to_multiple_of` rounds each padded length up (8 suits tensor cores on GPUs).
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def _width(self, lengths: list[int]) -> int:
        width = max(lengths) if lengths else 0
        m = self.pad_to_multiple_of
        if m and width % m:
            width += m - width % m
        return width

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids = [list(f["input_ids"]) for f in features]
        width = self._width([len(x) for x in ids])
        input_ids = torch.full((len(ids), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "labels" in features[0]:
            labels = [list(f["labels"]) for f in features]
            label_width = self._width([len(x) for x in labels])
            padded = torch.full((len(labels), label_width), IGNORE_INDEX, dtype=torch.long)
            for i, row in enumerate(labels):
                padded[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            batch["labels"] = padded
        return batch


# Columns a training batch is built from; the text columns stay on disk for evaluation.
TRAIN_COLUMNS = ("input_ids", "labels", "length")


def training_columns(dataset):
    """The dataset restricted to the columns the collator and the length-grouped sampler read."""
    keep = [c for c in TRAIN_COLUMNS if c in dataset.column_names]
    return dataset.select_columns(keep)
