"""Shared helpers for the training tests: a small CSV, and prepared run folders built once per
process and copied into each test's output_dir (preparing costs ~1 s, a copy ~10 ms)."""

from __future__ import annotations

import atexit
import csv
import shutil
import tempfile
from pathlib import Path

from text2sql.config import load_config

_ROOT = Path(tempfile.mkdtemp(prefix="text2sql-training-tests-"))
atexit.register(shutil.rmtree, _ROOT, True)
_PREPARED: dict[tuple, Path] = {}

TABLES = ("employees", "orders", "products", "customers")
COLUMNS = ("salary", "age", "price", "total")


def csv_rows(n: int) -> list[tuple[str, str, str]]:
    rows = []
    for i in range(n):
        table, column, value = TABLES[i % 4], COLUMNS[(i // 4) % 4], 10 * (i % 9 + 1)
        rows.append(
            (
                f"How many {table} have {column} above {value}?",
                f"SELECT COUNT(*) FROM {table} WHERE {column} > {value}",
                "aggregation",
            )
        )
    return rows


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("input_text", "sql", "sql_complexity"))
        writer.writerows(rows)
    return path


def data_files() -> tuple[Path, Path]:
    """(train.csv, val.csv): 48 + 16 short templated rows, no schema (short prompts, fast steps)."""
    train, val = _ROOT / "train.csv", _ROOT / "val.csv"
    if not train.exists():
        rows = csv_rows(64)
        write_csv(train, rows[:48])
        write_csv(val, rows[48:])
    return train, val


def base_overrides(model: str, train_path: Path, val_path: Path) -> list[str]:
    return [
        f"model.name_or_path={model}",
        f"data.train={train_path}",
        f"data.validation={val_path}",
        "data.test_size=0",
        "prompt.system=Answer with SQL.",
        "training.per_device_train_batch_size=8",
        "training.per_device_eval_batch_size=16",
        "training.max_steps=3",
        "training.logging_steps=1",
        "training.save_steps=1000",
        "training.learning_rate=1e-2",
        "training.warmup_steps=0",
        "callbacks.progress=lines",
    ]


def run_config(model: str, output_dir: Path, *extra: str):
    """A config for `model` on the small CSV, with its data already prepared in `output_dir`."""
    train_path, val_path = data_files()
    base = base_overrides(model, train_path, val_path)
    key = (model,)
    if key not in _PREPARED:
        from stage_support import prepare_with_model

        prepared_dir = _ROOT / f"prepared-{len(_PREPARED)}"
        prepare_with_model(load_config(None, [*base, f"output_dir={prepared_dir}"]))
        _PREPARED[key] = prepared_dir
    if not Path(output_dir).exists():
        shutil.copytree(_PREPARED[key], output_dir)
    return load_config(None, [*base, f"output_dir={output_dir}", *extra])


def weights(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
