"""Schema pruning and value retrieval, measured: Spider dev under a small prompt budget, the cost of
a value index, and prepare's throughput with value hints on against off, in the same run.

    python benchmarks/schema_context.py [--budget 512] [--spider ../shared/datasets/spider_en]

1. Spider dev prepared as a test split with the tiny:llama tokenizer and data.max_prompt_tokens=BUDGET:
   rows in and out, prompts over budget before pruning (rows an earlier length filter dropped),
   schemas pruned, prompts still over budget (scored as prompt_too_long), and the gold tables that
   survived question-only pruning. Databases that are not on disk have their schema from
   tables.json (CREATE TABLE text, pruned the same way).
2. Building the value index of the largest bundled database and of Spider's department_store:
   time and peak Python memory (tracemalloc), then the time to load it back from the cache.
3. Prepare on the bundled dataset (3,656 rows, SQLite databases) with data.value_hints off and on.

Prints markdown tables for BENCHMARKS.md, with the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from text2sql.config import load_config
from text2sql.data import bundled
from text2sql.data.prepare import column, prepare
from text2sql.models.loading import open_model
from text2sql.paths import cache_root

ROOT = Path(__file__).resolve().parents[1]


def spider_dev(spider: Path, budget: int, work: Path) -> None:
    dev = spider / "dev.json"
    if not dev.is_file():
        print(f"(no Spider dev at {dev}: section 1 skipped)")
        return
    common = [
        "model.name_or_path=tiny:llama",
        f"data.train={dev}",
        f"data.test={dev}",
        "data.validation_size=0",
        f"data.db_dir={spider / 'database'}",
        "data.max_length=100000",  # no training row limit: only the prompt budget acts
    ]
    rows = []
    for label, extra in (
        ("whole schema", ["data.max_prompt_tokens=100000"]),
        (f"budget {budget}", [f"data.max_prompt_tokens={budget}"]),
    ):
        cfg = load_config(None, [f"output_dir={work / label.replace(' ', '_')}", *common, *extra])
        start = time.perf_counter()
        result = prepare(cfg, open_model(cfg.model.name_or_path), force=True)
        seconds = time.perf_counter() - start
        rows.append((label, result, seconds))
    whole = rows[0][1]
    from datasets import load_from_disk

    lengths = column(load_from_disk(str(whole.path))["test"], "prompt_length")
    over = sum(n > budget for n in lengths)
    print(f"\nSpider dev ({len(lengths)} rows), tiny:llama tokenizer, budget {budget} prompt tokens\n")
    print(
        "| prompts | test rows in | test rows out | over budget before pruning | pruned | over budget after | gold tables all kept | gold-table recall | prepare s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, result, seconds in rows:
        r = result.report
        p = r["prompts"]["test"]
        recall = p.get("gold_table_recall")
        print(
            f"| {label} | {r['rows_in']['test']} | {r['rows_out']['test']} | {over if label != 'whole schema' else '-'} "
            f"| {p['pruned']} | {p['over_budget']} | {p.get('gold_tables_all_kept', '-')}/{p['pruned']} "
            f"| {'-' if recall is None else f'{recall:.3f}'} | {seconds:.1f} |"
        )
    print(f"\nprompt tokens with the whole schema: max {max(lengths)}, {over} of {len(lengths)} over {budget}")


def value_indexes(spider: Path) -> None:
    from text2sql.data.schema import read_schema
    from text2sql.data.values import _index_on_disk, value_index

    targets = {db: bundled.db_path(db) for db in bundled.db_ids()}
    largest = max(targets, key=lambda db: Path(targets[db]).stat().st_size)
    chosen = {f"bundled {largest}": targets[largest]}
    store = spider / "database" / "department_store" / "department_store.sqlite"
    if store.is_file():
        chosen["Spider department_store"] = store
    print("\n| database | size KB | columns indexed | values | build ms | peak MB | from cache ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, path in chosen.items():
        schema = read_schema(path)
        shutil.rmtree(cache_root() / "values", ignore_errors=True)  # a cold index: built, not read back
        _index_on_disk.cache_clear()
        tracemalloc.start()
        start = time.perf_counter()
        index = value_index(path, schema)
        build = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        _index_on_disk.cache_clear()
        start = time.perf_counter()
        value_index(path, schema)
        cached = time.perf_counter() - start
        print(
            f"| {label} | {Path(path).stat().st_size // 1024} | {len(index.columns)} | {len(index.values)} "
            f"| {build * 1000:.1f} | {peak:.1f} | {cached * 1000:.1f} |"
        )


def value_matching() -> None:
    """Matching questions against a value index: the bundled test questions against their database's
    index, and the worst case the index is built for (a 10 KB question against 100,000 values)."""
    import random

    from text2sql.data.fuzzy_index import SearchStats
    from text2sql.data.schema import read_schema
    from text2sql.data.values import ValueIndex, value_index

    rows = list(bundled.iter_rows("test"))
    indexes = {db: value_index(bundled.db_path(db), read_schema(bundled.db_path(db))) for db in bundled.db_ids()}
    for index in indexes.values():
        index.match("warm up")  # the trigram index is built on first use
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    big = ValueIndex(
        [("t", f"c{i}") for i in range(20)],
        [
            " ".join("".join(rng.choices(letters, k=rng.randint(4, 9))) for _ in range(rng.randint(1, 3)))
            for _ in range(100_000)
        ],
        [i % 20 for i in range(100_000)],
    )
    big.match("warm up")
    long_question = " ".join(rng.choice(big.values) for _ in range(1200))[:10_000]
    print("\n| questions | values | per question ms | peak MB | comparisons per question |")
    print("|---|---:|---:|---:|---:|")
    for label, pairs in (
        (f"{len(rows)} bundled test questions", [(indexes[r["db_id"]], r["question"]) for r in rows]),
        ("one 10 KB question", [(big, long_question)]),
    ):
        stats = SearchStats()
        tracemalloc.start()
        start = time.perf_counter()
        for index, question in pairs:
            index.match(question, stats=stats)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        values = sum(len(i.values) for i in {id(i): i for i, _ in pairs}.values())
        print(
            f"| {label} | {values:,} | {elapsed / len(pairs) * 1000:.2f} | {peak:.1f} "
            f"| {stats.comparisons / len(pairs):,.0f} |"
        )


def prepare_throughput(work: Path, repeats: int = 3) -> None:
    print("\n| data.value_hints | rows | best of 3 s | rows/s | rows with hints | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    results = {}
    for hints in ("false", "true"):
        best, report = float("inf"), None
        for i in range(repeats):
            cfg = load_config(
                None,
                [
                    f"output_dir={work / f'bundled_{hints}_{i}'}",
                    "model.name_or_path=tiny:llama",
                    f"data.value_hints={hints}",
                ],
            )
            start = time.perf_counter()
            report = prepare(cfg, open_model(cfg.model.name_or_path), force=True).report
            best = min(best, time.perf_counter() - start)
        assert report is not None
        rows = sum(report["rows_out"].values())
        with_hints = sum(p.get("with_value_hints", 0) for p in report["prompts"].values())
        results[hints] = best
        ratio = best / results["false"]
        print(f"| {hints} | {rows} | {best:.2f} | {rows / best:,.0f} | {with_hints} | {ratio:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=512)
    parser.add_argument("--spider", type=Path, default=ROOT.parent / "shared" / "datasets" / "spider_en")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
    work = Path(tempfile.mkdtemp(prefix="t2s-bench-"))
    try:
        spider_dev(args.spider, args.budget, work)
        value_indexes(args.spider)
        value_matching()
        prepare_throughput(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
