"""Rows from Hugging Face `datasets` sources: a `save_to_disk` folder (Dataset or DatasetDict), a
.parquet or .arrow file, or a hub id `owner/name`.

The rows are then mapped by their fields (`format_from_fields`: messages, question+context+answer,
question+query+db_id, input_text+sql) with the same row functions the file readers use. Rows naming
a db_id find their databases under data.db_dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from text2sql import paths
from text2sql.data.readers.base import ExampleStream, ReadOptions, ReadStats
from text2sql.data.readers.databases import Databases
from text2sql.data.readers.formats import format_from_fields, row_function, undetectable
from text2sql.errors import DataError

DATA_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet", ".arrow")
HF_SUFFIXES = (".parquet", ".arrow")
# Requested split → names datasets use for it, in order of preference.
SPLIT_NAMES = {"validation": ("validation", "valid", "val", "dev"), "dev": ("dev", "validation", "valid", "val")}
BATCH_ROWS = 1000  # rows converted from Arrow at a time: bounded memory, low per-row overhead


def is_save_to_disk(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("dataset_info.json", "dataset_dict.json", "state.json"))


def is_hub_id(source: str) -> bool:
    """`owner/name` that is not a local path (and not a missing local data file, which is a typo)."""
    return paths.is_hub_id(source, owner=True, file_suffixes=DATA_SUFFIXES)


def is_hf_source(source: str) -> bool:
    path = Path(source)
    return path.suffix.lower() in HF_SUFFIXES or is_save_to_disk(path) or is_hub_id(source)


def open_hf(
    source: str, opts: ReadOptions, split: str | None, stats: ReadStats | None, row_format: str | None = None
) -> ExampleStream:
    """Examples from a HF source; `row_format` None means: tell it from the columns."""
    rows, columns, label, stem = load_rows(source, opts, split)
    fmt = row_format or format_from_fields(columns, opts)
    if fmt is None:
        raise undetectable(label, columns)
    to_example = row_function(fmt, opts, label, Databases.from_options(opts))
    return ExampleStream(rows, to_example, opts, label=label, stem=stem, stats=stats)


def load_rows(
    source: str, opts: ReadOptions, split: str | None
) -> tuple[Iterator[dict[str, Any]], list[str], str, str]:
    """(lazy rows, column names, label for messages, stem for ids) of a HF source."""
    import datasets

    path = Path(source)
    if path.suffix.lower() == ".parquet":
        return _parquet_rows(path)
    if path.suffix.lower() == ".arrow":
        if not path.is_file():
            raise DataError(f"{path}: file not found; check the path")
        try:
            dataset = datasets.Dataset.from_file(str(path))
        except Exception as exc:  # pyarrow and datasets raise many types for a bad file
            raise DataError(
                f"{path}: not a readable Arrow dataset file ({_reason(exc)}); rewrite it with datasets"
            ) from None
        return _dataset_rows(dataset), dataset.column_names, str(path), path.stem
    if path.is_file():
        raise DataError(
            f"{path}: data.format hf reads .parquet/.arrow files, save_to_disk folders and hub ids; "
            f"for a {path.suffix or 'plain'} file set data.format to auto or to its row format"
        )
    if path.exists():
        if not is_save_to_disk(path):
            raise DataError(f"{path}: not a datasets.save_to_disk folder (no dataset_info.json or dataset_dict.json)")
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # a partly written or foreign folder fails in many ways
            raise DataError(
                f"{path}: cannot load with datasets.load_from_disk ({_reason(exc)}); save it again"
            ) from None
        stem = path.name
        if isinstance(loaded, datasets.DatasetDict):
            name = _pick_split(list(loaded), opts.hf_split or split, str(path))
            loaded, stem = loaded[name], f"{path.name}-{name}"
        return _dataset_rows(loaded), loaded.column_names, str(path), stem
    if not is_hub_id(source):
        raise DataError(f"{source}: not found, and not a Hugging Face hub id (owner/name); check the path")
    return _hub_rows(source, opts, split)


def _hub_rows(source: str, opts: ReadOptions, split: str | None):
    import datasets

    name = opts.hf_split or split or "train"
    try:
        dataset = datasets.load_dataset(source, opts.hf_config, split=name)
    except Exception as exc:  # network, auth, unknown dataset/config/split: all reported the same way
        raise DataError(
            f"{source}: cannot load from the Hugging Face hub ({_reason(exc)}); check the id, data.hf_config, "
            "data.hf_split and network access, or point at a local copy"
        ) from None
    return _dataset_rows(dataset), dataset.column_names, f"{source}[{name}]", f"{source.split('/')[-1]}-{name}"


def _pick_split(available: list[str], requested: str | None, label: str) -> str:
    if requested is None:
        if len(available) == 1:
            return available[0]
        raise DataError(f"{label}: holds splits {', '.join(available)}; set data.hf_split to the one to read")
    for name in SPLIT_NAMES.get(requested, (requested,)):
        if name in available:
            return name
    raise DataError(
        f"{label}: no split {requested!r} (splits: {', '.join(available)}); set data.hf_split to one of them"
    )


def _dataset_rows(dataset) -> Iterator[dict[str, Any]]:
    for batch in dataset.iter(batch_size=BATCH_ROWS):
        names = list(batch)
        for values in zip(*(batch[n] for n in names)):
            yield dict(zip(names, values))


def _parquet_rows(path: Path):
    import pyarrow
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    try:
        parquet = pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({_reason(exc)}); rewrite it") from None

    def rows() -> Iterator[dict[str, Any]]:
        # Batches, not the whole table: a large parquet file is never held in memory at once.
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()

    return rows(), parquet.schema_arrow.names, str(path), path.stem


def _reason(exc: Exception) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
