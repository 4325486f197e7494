"""What prepare keeps per row while it de-duplicates, checks overlap and filters by length stays at a
few bytes a row (numpy arrays, not a Python object per row), so a million rows fit where a hundred
thousand do (BENCHMARKS.md "Prepare" measures whole runs)."""

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import Dataset

from text2sql.data.prepare import _dedupe, _length_filter, _overlap
from text2sql.data.prepare_report import PrepareReport

ROWS = 100_000
# Python lists of keys, indices and values cost 150-170 bytes a row here (measured); the arrays
# cost 40-50, most of it datasets' own index list when it selects rows.
BYTES_PER_ROW = 80


def peak_bytes_per_row(fn) -> float:
    """Peak Python-visible allocation (numpy included) while `fn` runs, per row."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / ROWS


@pytest.fixture(scope="module")
def raw():
    """Question/SQL rows, one in ten a duplicate of another."""
    n = [i % (ROWS * 9 // 10) for i in range(ROWS)]
    return Dataset.from_dict(
        {
            "db_id": ["shop"] * ROWS,
            "question": [f"How many orders came from city {i}?" for i in n],
            "sql": [f"SELECT COUNT(*) FROM orders WHERE city_id = {i}" for i in n],
        }
    )


def test_dedupe_and_overlap_hold_a_few_bytes_a_row(raw):
    report = PrepareReport()
    kept = []
    assert peak_bytes_per_row(lambda: kept.append(_dedupe(raw, "train", report, True))) < BYTES_PER_ROW
    assert report.duplicates["train"] == ROWS // 10 and len(kept[0]) == ROWS * 9 // 10
    splits = {"train": kept[0], "test": raw.select(range(ROWS - 20_000, ROWS))}
    assert peak_bytes_per_row(lambda: _overlap(splits, report, True)) < BYTES_PER_ROW
    assert report.test_overlap["test"] == 20_000 and len(splits["test"]) == 0


def test_length_filter_holds_a_few_bytes_a_row():
    rng = np.random.default_rng(0)
    fits, length = rng.random(ROWS) > 0.01, rng.integers(50, 700, ROWS).astype(np.int32)
    recall = np.where(rng.random(ROWS) > 0.5, 1.0, np.nan).astype(np.float32)
    tokenized = Dataset.from_dict(
        {
            "prompt_fits": fits,
            "schema_pruned": rng.random(ROWS) > 0.5,
            "value_hints": rng.integers(0, 3, ROWS).astype(np.int16),
            "gold_tables_kept": recall,
            "length": length,
            "target_length": rng.integers(5, 100, ROWS).astype(np.int32),
        }
    )
    cfg = SimpleNamespace(data=SimpleNamespace(max_length=512))  # the one setting a decoder's filter reads
    report = PrepareReport()
    kept = []
    builder = SimpleNamespace(kind="decoder")
    assert (
        peak_bytes_per_row(lambda: kept.append(_length_filter(tokenized, "train", builder, cfg, report)))
        < BYTES_PER_ROW
    )
    too_long = int((fits & (length > 512)).sum())
    assert report.dropped["train"] == {"prompt_too_long": int((~fits).sum()), "too_long": too_long}
    assert len(kept[0]) == int((fits & (length <= 512)).sum())
    assert report.prompts["train"]["gold_tables_all_kept"] == int((~np.isnan(recall)).sum())
