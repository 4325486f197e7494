"""`text2sql prepare`: data sources → one tokenized, prompt-masked `DatasetDict` on disk.

Rows stream from the readers into Arrow (memory stays flat as rows grow), are de-duplicated,
split, sampled, tokenized by the one prompt builder and filtered by length. Nothing is padded:
batches are padded dynamically at training time. Rows too long for the limits are dropped and
counted, never truncated mid-SQL. The result lands in `<output_dir>/data/` with
`prepare_report.json` beside the splits. With `data.label`, the pairs a teacher labelled
(`<output_dir>/label/pairs.jsonl`, written by the prepare stage before this runs) join the training
split after validation and test are split off, so they are never scored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from text2sql.config import Config
from text2sql.data.context import FittedPrompt
from text2sql.data.example import Example
from text2sql.data.prepare_report import SPLITS, PrepareReport, percentiles
from text2sql.data.prompt import HISTORY_TURNS, PROMPT_ENCODING, PromptBuilder
from text2sql.data.readers import ReadOptions, ReadStats, read_examples
from text2sql.data.retarget import retarget
from text2sql.data.synth.cached import held_out_keys, sql_key, synth_depends_on, synthesized_pairs
from text2sql.data.synth.teacher import Teacher
from text2sql.data.tokenizer_identity import tokenizer_fingerprint
from text2sql.data.values import VALUE_HINT_RULES
from text2sql.errors import DataError
from text2sql.progress import progress_bars_disabled
from text2sql.rundir import RunDir, source_identity
from text2sql.sql.targets import dialect_of

log = logging.getLogger(__name__)

STAGE = "data"
# Where a run keeps the pairs of data.label (the label stage writes them, `text2sql.inference.label`).
LABELLED_PAIRS = Path("label") / "pairs.jsonl"

# Arrow schema of the raw (untokenized) rows; `extra` holds a JSON object as text because its keys
# differ between sources, `history` the earlier turns of a conversation as a JSON list (null when none).
_TEXT_COLUMNS = (
    "id", "question", "sql", "schema", "db_id", "db_path", "complexity", "reasoning", "evidence", "extra", "history"
)  # fmt: skip


# Rows per Arrow batch when a whole split is read column-wise: bounds what one read holds.
_BATCH_ROWS = 10_000


def read_options(cfg: Config) -> ReadOptions:
    """Reader options from the `data` section (field names are shared)."""
    return ReadOptions.from_config(cfg.data)


class ModelTokens(Protocol):
    """What preparation needs of the model: its tokenizer and kind ("decoder" or "seq2seq") and its
    `config.model_type` (which picks a built-in chat template). `models.loading.ResolvedModel` is one."""

    tokenizer: Any
    kind: str
    model_type: str


def prepare_depends_on(cfg: Config) -> dict[str, Any]:
    """The settings a prepared dataset depends on; a change makes it a different run's data."""
    data = cfg.data.model_dump(mode="json")
    data.pop("num_proc", None)
    if data.get("synth") is None:  # runs without sampled pairs keep the fingerprints they had
        data.pop("synth", None)
    if data.get("label") is None:  # runs without labelled pairs keep the fingerprints they had
        data.pop("label", None)
    prompt = cfg.prompt.model_dump()
    if prompt["history_turns"] == HISTORY_TURNS:  # runs that keep the default keep the fingerprints they had
        prompt.pop("history_turns")
    return {"model": {"name_or_path": cfg.model.name_or_path}, "data": data, "prompt": prompt}


# ------------------------------------------------------------------------------------------ reading


def _rows(source: str, cfg: Config, split: str | None, stats: ReadStats) -> Iterator[dict[str, Any]]:
    opts = read_options(cfg)
    examples: Iterable[Example] = read_examples(source, opts, split=split, stats=stats)
    if cfg.data.target_dialect and cfg.data.target_db:
        examples = retarget(
            examples, cfg.data.target_dialect, cfg.data.target_db, opts, stats, timeout=cfg.evaluation.timeout
        )
    for ex in examples:
        row = {k: getattr(ex, k) for k in _TEXT_COLUMNS[:-2]}
        row["extra"] = json.dumps(ex.extra, sort_keys=True, default=str) if ex.extra else "{}"
        row["history"] = json.dumps(ex.history, ensure_ascii=False) if ex.history else None
        yield {k: (None if v is None else str(v)) for k, v in row.items()}


def _read_split(source: str, cfg: Config, split: str | None, cache_dir: Path, stats: ReadStats):
    """Stream a source into a memory-mapped Arrow file, 10k rows per record batch.

    Written with pyarrow directly: `Dataset.from_generator` encodes every row through the
    features machinery, which costs more than reading and tokenizing together.
    """
    import pyarrow as pa
    from datasets import Dataset

    schema = pa.schema([(k, pa.string()) for k in _TEXT_COLUMNS])
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"raw-{split or 'all'}.arrow"
    rows = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in _rows(source, cfg, split, stats):
            batch.append(row)
            if len(batch) == 10_000:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                rows += len(batch)
                batch = []
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
            rows += len(batch)
    if rows == 0:
        raise DataError(f"{source}: no usable rows{_split_hint(split)}{_why_dropped(stats)}")
    return Dataset.from_file(str(path))


# What to do when every row of a source was dropped for one reason (`ReadStats.dropped`).
_DROP_FIXES = {
    "no assistant turn": "each chat record needs an assistant message holding the SQL",
    "empty question": "check data.question_column",
    "empty sql": "check data.sql_column",
    "no reasoning": "set data.require_reasoning=false, or use data with reasoning",
    "no db_id": "each Spider/BIRD record needs a db_id",
}


def _why_dropped(stats: ReadStats) -> str:
    if not stats.dropped:
        return "; check the file and data.format"
    reasons = ", ".join(f"{n} with {reason}" for reason, n in stats.dropped.most_common())
    fixes = "; ".join(dict.fromkeys(_DROP_FIXES[r] for r in stats.dropped if r in _DROP_FIXES)) or "check the file"
    return f": all {stats.total_dropped} dropped ({reasons}); {fixes}"


def _split_hint(split: str | None) -> str:
    return f" for the {split} split" if split else ""


def has_split(source: str, split: str) -> bool:
    if source == "bundled":
        return True
    marker = Path(source) / "dataset_dict.json"
    if marker.is_file():
        try:
            return split in json.loads(marker.read_text()).get("splits", [])
        except ValueError:
            return False
    return False


# ------------------------------------------------------------------------------------------ steps


def column(ds, name: str) -> list:
    """One column as a list, through Arrow (iterating `ds[name]` goes row by row in datasets 5)."""
    return ds.select_columns([name]).with_format("arrow")[:][name].to_pylist()


def array(ds, name: str):
    """One numeric or boolean column as a numpy array (nulls as NaN), a few bytes a row where a list
    holds a Python object per row. Read in batches: on a dataset with selected rows, datasets turns
    the row indices of one read into a Python list."""
    import numpy as np

    batches = ds.select_columns([name]).with_format("arrow").iter(batch_size=_BATCH_ROWS)
    return np.concatenate([batch[name].to_numpy() for batch in batches] or [np.empty(0)])


def _batches(ds, columns: list[str]) -> Iterator[Any]:
    """`columns` of `ds` as Arrow tables of at most _BATCH_ROWS rows."""
    return ds.select_columns(columns).with_format("arrow").iter(batch_size=_BATCH_ROWS)


def _row_keys(ds, columns: tuple[str, ...] = ("db_id", "question", "sql")):
    """An 8-byte digest of each row's `columns` as a numpy array: duplicates and overlaps are found by
    key, not text, in 8 bytes a row (two different rows share a key with odds ~n^2 / 2^65: 3e-8 for a
    million rows)."""
    import numpy as np

    digests = bytearray()
    for batch in _batches(ds, list(columns)):
        for values in zip(*(batch[c].to_pylist() for c in columns)):
            digests += hashlib.blake2b("\x1f".join(map(str, values)).encode(), digest_size=8).digest()
    return np.frombuffer(digests, dtype=np.uint64)


def _dedupe(ds, split: str, report: PrepareReport, drop: bool):
    import numpy as np

    keys = _row_keys(ds)
    # The first row of each key, in row order (np.unique's index sort is stable).
    keep = np.sort(np.unique(keys, return_index=True)[1])
    report.duplicates[split] = len(keys) - len(keep)
    if drop and len(keep) < len(keys):
        report.drop(split, "duplicate", len(keys) - len(keep))
        ds = ds.select(keep)
    return ds


def _labelled(cfg: Config, cache_dir: Path, report: PrepareReport):
    """The pairs data.label kept (read as csv records, their databases from data.db / data.databases),
    counted into train's rows in; None without data.label or when the teacher kept none."""
    if cfg.data.label is None:
        return None
    path = Path(cfg.output_dir) / LABELLED_PAIRS
    if not path.is_file():
        raise DataError(
            f"{path}: the pairs of data.label are missing; run `text2sql prepare` or `text2sql run`, which label "
            "the questions first"
        )
    report.sources["labelled"] = str(path)
    if path.stat().st_size == 0:
        log.warning("the teacher of data.label kept no pairs (see %s)", path.with_name("pairs.report.json"))
        return None
    # Written in the dialect of the database they were checked on: read as they are, never transpiled.
    data = cfg.data.model_copy(
        update={
            "format": "csv",
            "question_column": "input_text",
            "sql_column": "sql",
            "target_dialect": None,
            "target_db": None,
        }
    )
    stats = ReadStats()
    ds = _read_split(str(path), cfg.model_copy(update={"data": data}), "labelled", cache_dir, stats)
    report.rows_in["train"] = report.rows_in.get("train", 0) + len(ds) + stats.total_dropped
    for reason, count in stats.dropped.items():
        report.drop("train", reason, count)
    return ds


def _split_off(ds, cfg: Config, need_validation: bool, need_test: bool) -> dict[str, Any]:
    d = cfg.data
    out = {"train": ds}
    if need_test and d.test_size > 0:
        parts = _split(out["train"], d.test_size, d.split_seed, "test", d.split_by)
        out["train"], out["test"] = parts["train"], parts["test"]
    if need_validation and d.validation_size > 0:
        # Share of the original rows, not of what is left after the test split.
        if d.split_by == "db_id":  # whole databases seldom make exactly test_size: scale by the rows left
            share = d.validation_size * len(ds) / len(out["train"])
        else:
            share = d.validation_size / max(1e-9, 1 - (d.test_size if need_test else 0))
        parts = _split(out["train"], min(share, 0.99), d.split_seed + 1, "validation", d.split_by)
        out["train"], out["validation"] = parts["train"], parts["test"]
    return out


def _split(ds, share: float, seed: int, name: str, by: str = "row"):
    if by == "db_id":
        return _split_by_db(ds, share, seed, name)
    try:
        return ds.train_test_split(test_size=share, seed=seed)
    except ValueError:  # datasets refuses a split that leaves either side empty
        raise DataError(
            f"{len(ds)} training row(s) are too few to split off a {name} share ({share:.0%}); add rows, give "
            f"data.{name} a file, or set data.{name}_size=0"
        ) from None


def _split_by_db(ds, share: float, seed: int, name: str) -> dict[str, Any]:
    """Split off whole databases (rows without a db_id form one group), so that the held-out share
    measures questions on databases the model never saw; groups are taken in a seeded order until
    their rows reach `share` of the rows, and at least one stays in train."""
    ids = column(ds, "db_id")
    sizes: dict[str | None, int] = {}
    for db_id in ids:
        sizes[db_id] = sizes.get(db_id, 0) + 1
    if len(sizes) < 2:
        only = next(iter(sizes), None)
        found = f"db_id {only}" if only else "no db_id"
        raise DataError(
            f"data.split_by=db_id needs at least two databases to split off a {name} share, but all {len(ds)} "
            f"training row(s) have {found}; give data.{name} a file or set data.split_by=row"
        )
    groups = sorted(sizes, key=lambda g: (g is None, g or ""))
    random.Random(seed).shuffle(groups)
    held: set[str | None] = set()
    rows = 0
    for group in groups[:-1]:
        if held and rows >= share * len(ds):
            break
        held.add(group)
        rows += sizes[group]
    return {
        "train": ds.select([i for i, g in enumerate(ids) if g not in held]),
        "test": ds.select([i for i, g in enumerate(ids) if g in held]),
    }


def _overlap(splits: dict[str, Any], report: PrepareReport, drop: bool) -> None:
    import numpy as np

    pair = ("question", "sql")
    train_keys = np.unique(_row_keys(splits["train"], pair))
    for split in ("validation", "test"):
        if split not in splits:
            continue
        hit = np.isin(_row_keys(splits[split], pair), train_keys)
        hits = int(hit.sum())
        report.test_overlap[split] = hits
        if hits and drop:
            splits[split] = splits[split].select(np.flatnonzero(~hit))
            report.drop(split, "also_in_train", hits)
        elif hits:
            log.warning("%d %s rows also occur in train (set data.drop_test_overlap=true to drop them)", hits, split)


def _with_synth(
    splits: dict[str, Any], cfg: Config, cache_dir: Path, report: PrepareReport, teacher: Callable[[], Teacher] | None
):
    """The training rows with the run's synthesized pairs added: training only, never validation or
    test, and without a pair whose query is also a held-out row's on the same database."""
    from datasets import concatenate_datasets

    path, databases, sampled = synthesized_pairs(cfg.data, cfg.output_dir, teacher)
    if sampled is not None:
        log.info("sampled %d pairs into %s\n%s", sum(sampled.kept.values()), path, sampled.table())
    # Rows name their db_id; each resolves to the database it was sampled from. Their SQL is already
    # in that database's dialect: nothing to retarget.
    data = cfg.data.model_copy(
        update={
            "format": "auto",
            "databases": {**cfg.data.databases, **databases},
            "target_dialect": None,
            "target_db": None,
        }
    )
    stats = ReadStats()
    ds = _read_split(str(path), cfg.model_copy(update={"data": data}), "train", cache_dir / "synth", stats)
    report.sources["synth"] = str(path)
    report.rows_in["train"] = report.rows_in.get("train", 0) + len(ds)
    dialects = {db_id: dialect_of(target) for db_id, target in databases.items()}
    held_out = [(db, sql) for s in ("validation", "test") if s in splits for db, sql in _pairs_of(splits[s])]
    keys = held_out_keys(held_out, dialects)
    if keys:
        keep = [i for i, (db, sql) in enumerate(_pairs_of(ds)) if (db, sql_key(sql, dialects[db])) not in keys]
        report.drop("train", "synth_in_held_out", len(ds) - len(keep))
        ds = ds.select(keep) if len(keep) < len(ds) else ds
    if "validation" not in splits and "test" not in splits:
        log.warning(
            "only synthesized pairs and no data.validation or data.test: nothing is held out to evaluate on; give "
            "data.test human pairs to measure the model"
        )
    if "train" not in splits:
        return ds
    human = splits["train"]
    share = cfg.data.synth.share if cfg.data.synth is not None else None
    repeats = _human_repeats(len(human), len(ds), share)
    report.mix = {"human": len(human), "human_repeats": repeats, "synth": len(ds)}
    if repeats > 1:
        log.info(
            "%d human pairs repeated %d times beside %d sampled ones (data.synth.share)", len(human), repeats, len(ds)
        )
    return concatenate_datasets([human] * repeats + [ds])


def _human_repeats(human: int, synth: int, share: float | None) -> int:
    """How many times the human rows go into training so the sampled ones make at most `share` of it."""
    if share is None or human == 0 or synth == 0:
        return 1
    return max(1, math.ceil(synth * (1 - share) / share / human))


def _pairs_of(ds) -> list[tuple[str, str]]:
    return list(zip(column(ds, "db_id"), column(ds, "sql")))


def _tokenize(ds, builder: PromptBuilder, cfg: Config, split: str):
    import pyarrow as pa

    # Training keeps what the gold SQL uses when a schema is pruned; evaluation splits are prompted
    # as inference will prompt them, from the question alone.
    gold = split == "train"

    def encode(table: pa.Table) -> pa.Table:
        batch = table.select(["question", "sql", "schema", "evidence", "reasoning", "db_path", "history"]).to_pydict()
        n = len(batch["question"])
        examples = [
            Example(
                question=batch["question"][i] or "",
                sql=batch["sql"][i] or "",
                schema=batch["schema"][i] or "",
                evidence=batch["evidence"][i],
                reasoning=batch["reasoning"][i],
                db_path=batch["db_path"][i],
                history=[(q, sql) for q, sql in json.loads(batch["history"][i] or "[]")],
            )
            for i in range(n)
        ]
        encoded = builder.encode_batch(examples, gold=gold)
        fitted = [e.prompt or FittedPrompt("", e.input_ids) for e in encoded]
        # Arrow arrays of int32 go straight to disk (python lists would be re-encoded per row).
        new = {
            "input_ids": pa.array([e.input_ids for e in encoded], type=pa.list_(pa.int32())),
            "labels": pa.array([e.labels for e in encoded], type=pa.list_(pa.int32())),
            "prompt_length": pa.array([e.prompt_length for e in encoded], type=pa.int32()),
            "target_length": pa.array(
                [len(e.labels) - (e.prompt_length if builder.kind == "decoder" else 0) for e in encoded],
                type=pa.int32(),
            ),
            "length": pa.array([len(e.input_ids) for e in encoded], type=pa.int32()),
            # Whether the prompt fits the budget (a row that does not is scored as prompt_too_long),
            # whether its schema was pruned, and the share of the gold SQL's tables it kept.
            "prompt_fits": pa.array([f.fits for f in fitted], type=pa.bool_()),
            "schema_pruned": pa.array([f.pruned for f in fitted], type=pa.bool_()),
            "gold_tables_kept": pa.array(
                [f.kept_gold(ex.sql, builder.dialect) for f, ex in zip(fitted, examples)], type=pa.float32()
            ),
            "value_hints": pa.array([f.hints for f in fitted], type=pa.int16()),
        }
        for name, values in new.items():
            table = table.append_column(name, values)
        return table

    return (
        ds.with_format("arrow")
        .map(
            encode,
            batched=True,
            batch_size=1000,
            num_proc=cfg.data.num_proc,
            desc="tokenizing",
        )
        .with_format(None)
    )


def _length_filter(ds, split: str, builder: PromptBuilder, cfg: Config, report: PrepareReport):
    """Training rows too long for the limits are dropped. Validation and test rows never are: every
    benchmark number covers every row, and one whose prompt does not fit is scored as an error."""
    import numpy as np

    fits = array(ds, "prompt_fits")
    report.prompts[split] = {
        "over_budget": int((~fits).sum()),
        "pruned": int(array(ds, "schema_pruned").sum()),
        "with_value_hints": int(np.count_nonzero(array(ds, "value_hints"))),
    }
    kept = array(ds, "gold_tables_kept")
    kept = kept[~np.isnan(kept)]
    if len(kept):
        report.prompts[split]["gold_table_recall"] = round(float(kept.astype(np.float64).mean()), 4)
        report.prompts[split]["gold_tables_all_kept"] = int((kept >= 1.0).sum())
    if split != "train":
        return ds
    d = cfg.data
    if builder.kind == "seq2seq":
        checks = [
            ("source_too_long", "length", d.max_source_length),
            ("target_too_long", "target_length", d.max_target_length),
        ]
    else:
        checks = [("too_long", "length", d.max_length)]
    if not fits.all():
        report.drop(split, "prompt_too_long", int((~fits).sum()))
        ds = ds.select(np.flatnonzero(fits))
    for reason, name, limit in checks:
        values = array(ds, name)
        keep = np.flatnonzero(values <= limit)
        if len(keep) < len(values):
            report.drop(split, reason, len(values) - len(keep))
            ds = ds.select(keep)
    return ds


def trainable(ds, cfg: Config, kind: str):
    """The rows of a prepared split a model can be trained or teacher-forced on: prompt within
    budget and lengths within data.max_length (seq2seq: max_source/target_length). Validation and
    test keep longer rows for scoring; the loss passes leave them out."""
    if "prompt_fits" not in ds.column_names:
        return ds
    import numpy as np

    d = cfg.data
    ok = array(ds, "prompt_fits")
    if kind == "seq2seq":
        ok = ok & (array(ds, "length") <= d.max_source_length) & (array(ds, "target_length") <= d.max_target_length)
    else:
        ok = ok & (array(ds, "length") <= d.max_length)
    return ds if ok.all() else ds.select(np.flatnonzero(ok))


def _without_database(ds) -> int:
    """Rows with no database to execute on (db_path null or empty), counted in Arrow."""
    import pyarrow.compute as pc

    count = 0
    for batch in _batches(ds, ["db_path"]):
        paths = batch["db_path"]
        count += paths.null_count + int(pc.sum(pc.equal(paths, "")).as_py() or 0)
    return count


# ------------------------------------------------------------------------------------------ entry


@dataclass
class PrepareResult:
    path: Path
    report: dict[str, Any]
    skipped: bool


def prepare(
    cfg: Config, model: ModelTokens, *, force: bool = False, synth_teacher: Callable[[], Teacher] | None = None
) -> PrepareResult:
    """Prepare `cfg.data` for `model` (cfg.model, resolved by the caller) into `<output_dir>/data/`;
    skip when already current. `synth_teacher` makes the teacher of data.synth.teacher when its pairs
    must be sampled (`data.synth.cached`)."""
    from datasets import DatasetDict

    run = RunDir(cfg.output_dir)
    sources = {"train": cfg.data.train, "validation": cfg.data.validation, "test": cfg.data.test}
    tokenizer, kind, model_type = model.tokenizer, model.kind, model.model_type
    depends_on = _full_depends_on(cfg, sources, tokenizer)

    # Data edited in place makes the prepared data stale, not a different run.
    config_only = {k: v for k, v in depends_on.items() if k != "inputs"}
    rec = run.record(STAGE)
    if rec is not None and not force and rec.get("depends_on", {}).get("inputs") != depends_on["inputs"]:
        rec_config = {k: v for k, v in rec.get("depends_on", {}).items() if k != "inputs"}
        if rec_config == config_only:
            log.info("input files changed since %s was prepared; preparing again", run.stage_dir(STAGE))
            force = True
    if not run.guard(STAGE, depends_on, force):
        report = json.loads((run.stage_dir(STAGE) / "prepare_report.json").read_text())
        return PrepareResult(run.stage_dir(STAGE), report, skipped=True)

    builder = PromptBuilder.from_config(tokenizer, kind, model_type, cfg)
    report = PrepareReport(prompt=builder.describe())

    with run.stage(STAGE).staging() as staged:
        cache = staged / ".cache"
        raw: dict[str, Any] = {}
        stats: dict[str, ReadStats] = {}
        for split in SPLITS:
            source = sources[split]
            if source is None and split != "train" and cfg.data.train and has_split(cfg.data.train, split):
                source = cfg.data.train
            if source is None:
                continue
            report.sources[split] = source
            stats[split] = ReadStats()
            raw[split] = _read_split(source, cfg, split, cache, stats[split])

        for split, ds in raw.items():
            report.rows_in[split] = len(ds) + stats[split].total_dropped
            for reason, count in stats[split].dropped.items():
                report.drop(split, reason, count)
            raw[split] = _dedupe(ds, split, report, cfg.data.drop_duplicates)

        splits = _split_off(raw["train"], cfg, "validation" not in raw, "test" not in raw) if "train" in raw else {}
        splits.update({k: v for k, v in raw.items() if k != "train"})
        for split, ds in list(splits.items()):
            if split not in report.rows_in:
                report.rows_in[split] = len(ds)
                report.rows_in["train"] -= len(ds)
        labelled = _labelled(cfg, cache, report)
        if cfg.data.synth is not None:
            splits["train"] = _with_synth(splits, cfg, cache, report, synth_teacher)
        elif "train" not in splits and labelled is None:
            raise DataError(
                "no training data: set data.train, data.label (questions a teacher labels), "
                "or data.synth (pairs sampled from the databases)"
            )
        if labelled is not None:
            from datasets import concatenate_datasets

            # Questions alone, labelled by the teacher, are a training set of their own.
            splits["train"] = concatenate_datasets([splits["train"], labelled]) if "train" in splits else labelled
        _overlap(splits, report, cfg.data.drop_test_overlap)

        out = {split: _tokenized(splits[split], split, builder, cfg, report) for split in SPLITS if split in splits}
        if not out.get("train") or len(out["train"]) == 0:
            raise DataError(
                "no training rows left after preparation; see the drops in the log and raise data.max_length"
            )
        target = staged / "dataset"
        with progress_bars_disabled():
            DatasetDict(out).save_to_disk(str(target))
        # Move the splits up so <output_dir>/data/ itself opens with load_from_disk.
        for child in target.iterdir():
            child.rename(staged / child.name)
        target.rmdir()
        shutil.rmtree(cache, ignore_errors=True)
        report_dict = report.to_dict()
        (staged / "prepare_report.json").write_text(json.dumps(report_dict, indent=2), encoding="utf-8")
        path = run.commit(
            STAGE,
            staged,
            cfg,
            depends_on,
            extra={"kind": kind, "model_type": model_type, "tokenizer": depends_on["tokenizer"]},
        )
    return PrepareResult(path, report_dict, skipped=False)


def _full_depends_on(cfg: Config, sources: dict[str, str | None], tokenizer: Any) -> dict[str, Any]:
    """The settings, the identity of every input (files edited in place make the data stale) and the
    tokenizer that prepared data depends on."""
    depends_on = prepare_depends_on(cfg)
    depends_on["inputs"] = {k: source_identity(v) for k, v in sources.items() if v}
    if cfg.data.db:  # its schema is in every prompt: a changed database is stale data
        depends_on["inputs"]["db"] = source_identity(cfg.data.db)
    if cfg.data.synth is not None:  # sampled pairs read these databases: a changed one is sampled again
        depends_on["inputs"]["synth"] = synth_depends_on(cfg.data)
    if cfg.data.value_hints:  # so are the rules that pick value hints: new rules, new prompts
        depends_on["inputs"]["value_hints"] = VALUE_HINT_RULES
    depends_on["inputs"]["prompt_encoding"] = PROMPT_ENCODING  # and how prompts become tokens
    if cfg.data.label is not None:  # the teacher's pairs: labelled again, prepared again
        depends_on["inputs"]["labelled"] = source_identity(Path(cfg.output_dir) / LABELLED_PAIRS)
    depends_on["tokenizer"] = tokenizer_fingerprint(tokenizer)
    return depends_on


def _tokenized(ds, split: str, builder: PromptBuilder, cfg: Config, report: PrepareReport):
    """One split sampled to data.max_samples, tokenized and filtered by length, with its report lines."""
    cap = getattr(cfg.data.max_samples, split)
    if cap is not None and len(ds) > cap:
        report.drop(split, "max_samples", len(ds) - cap)
        ds = ds.shuffle(seed=cfg.data.split_seed).select(range(cap))
    ds = _tokenize(ds, builder, cfg, split)
    ds = _length_filter(ds, split, builder, cfg, report)
    report.rows_out[split] = len(ds)
    report.not_executable[split] = _without_database(ds)
    report.token_lengths[split] = {
        "prompt": percentiles(array(ds, "prompt_length")),
        "target": percentiles(array(ds, "target_length")),
        "total": percentiles(array(ds, "length")),
    }
    return ds
