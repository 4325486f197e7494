"""Time `text2sql prepare` on generated CSV rows, against seed 000's preprocessing in the same run.

    python benchmarks/prepare_speed.py [--rows 100000 1000000] [--model tiny:llama] [--baseline-max-rows 100000]

Each measurement runs in a fresh process so peak RSS (ru_maxrss) belongs to that run alone; the peak
of its anonymous memory (RssAnon, sampled every 20 ms) is reported beside it, since ru_maxrss also
counts the pages of the memory-mapped Arrow files read. `text2sql` streams rows into Arrow and pads
nothing; seed 000 loads the CSV with pandas and pads every example to 512 source + 256 target tokens
(run up to `--baseline-max-rows` rows: it holds every padded row in memory). Prints a markdown table
for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TABLES = ["employees", "orders", "customers", "products", "invoices", "shipments", "tickets", "accounts"]
COLUMNS = ["salary", "amount", "price", "age", "quantity", "total", "score", "balance"]
CITIES = ["Paris", "Lima", "Oslo", "Kyoto", "Austin", "Cairo", "Porto", "Delhi"]


def generate_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["input_text", "sql", "sql_complexity"])
        for i in range(rows):
            t, c, city, n = rng.choice(TABLES), rng.choice(COLUMNS), rng.choice(CITIES), rng.randint(1, 10**6)
            kind = i % 3
            if kind == 0:
                w.writerow(
                    [
                        f"Show all {t} in {city} with {c} above {n}",
                        f"SELECT * FROM {t} WHERE city = '{city}' AND {c} > {n}",
                        "basic SQL",
                    ]
                )
            elif kind == 1:
                w.writerow(
                    [
                        f"What is the average {c} of {t} in {city} (batch {n})?",
                        f"SELECT AVG({c}) FROM {t} WHERE city = '{city}' AND batch = {n}",
                        "aggregation",
                    ]
                )
            else:
                w.writerow(
                    [
                        f"How many {t} per city have {c} below {n}?",
                        f"SELECT city, COUNT(*) FROM {t} WHERE {c} < {n} GROUP BY city",
                        "aggregation",
                    ]
                )


def run_ours(csv_path: Path, out: Path, model: str) -> dict:
    from text2sql.config import load_config
    from text2sql.data.prepare import prepare
    from text2sql.models.loading import open_model

    cfg = load_config(None, [f"data.train={csv_path}", f"output_dir={out}", f"model.name_or_path={model}"])
    resolved = open_model(model)  # build/cache the tiny model and load its tokenizer outside the timed region
    start = time.perf_counter()
    result = prepare(cfg, resolved)
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "rows_out": sum(result.report["rows_out"].values())}


def run_seed000(csv_path: Path, out: Path, model: str) -> dict:
    """Seed 000's preprocess_batch: pandas → Dataset, pad/truncate to 512 + 256."""
    import pandas as pd
    from datasets import Dataset

    from text2sql.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model)
    start = time.perf_counter()
    ds = Dataset.from_pandas(pd.read_csv(csv_path))

    def preprocess_batch(batch):
        model_inputs = tokenizer(batch["input_text"], max_length=512, truncation=True, padding="max_length")
        labels = tokenizer(batch["sql"], max_length=256, truncation=True, padding="max_length")
        model_inputs["labels"] = [
            [(t if t != tokenizer.pad_token_id else -100) for t in seq] for seq in labels["input_ids"]
        ]
        return model_inputs

    ds = ds.map(preprocess_batch, batched=True, remove_columns=ds.column_names)
    ds.save_to_disk(str(out))
    return {"seconds": time.perf_counter() - start, "rows_out": len(ds)}


class AnonPeak:
    """Peak anonymous RSS (RssAnon in /proc/self/status, MB), sampled every 20 ms on a thread.

    ru_maxrss also counts the pages of memory-mapped Arrow files the process has read: those are the
    page cache, which the kernel takes back under pressure, and they grow with the data whatever the
    code keeps. RssAnon is what the process itself holds (Python objects, Arrow buffers, the model)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def _sample(self) -> None:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 1024)


def child(mode: str, csv_path: str, out: str, model: str) -> None:
    fn = run_ours if mode == "text2sql" else run_seed000
    with AnonPeak() as anon:
        result = fn(Path(csv_path), Path(out), model)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_anon_mb"] = anon.peak
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--model", default="tiny:llama")
    parser.add_argument(
        "--baseline-max-rows", type=int, default=100_000, help="largest run of seed 000's preprocessing"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.rows:
            csv_path = Path(tmp) / f"rows{n}.csv"
            generate_csv(csv_path, n)
            for mode in ("text2sql", "seed000") if n <= args.baseline_max_rows else ("text2sql",):
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        str(csv_path),
                        str(Path(tmp) / f"{mode}-{n}"),
                        args.model,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res.update(mode=mode, rows=n)
                rows_out.append(res)
                print(
                    f"{mode:9} {n:>7} rows  {res['seconds']:6.1f} s  {n / res['seconds'] * 60:>9,.0f} rows/min  "
                    f"peak RSS {res['peak_rss_mb']:,.0f} MB  peak anonymous {res['peak_anon_mb']:,.0f} MB",
                    file=sys.stderr,
                )
    print(
        "| rows | text2sql s | rows/min | peak RSS MB | peak anonymous MB | seed 000 s | seed 000 peak RSS MB "
        "| seed 000 peak anonymous MB | speed ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.rows:
        ours = next(r for r in rows_out if r["rows"] == n and r["mode"] == "text2sql")
        base = next((r for r in rows_out if r["rows"] == n and r["mode"] == "seed000"), None)
        theirs = (
            f"{base['seconds']:.1f} | {base['peak_rss_mb']:,.0f} | {base['peak_anon_mb']:,.0f} | "
            f"{base['seconds'] / ours['seconds']:.2f}x"
            if base
            else "- | - | - | -"
        )
        print(
            f"| {n:,} | {ours['seconds']:.1f} | {n / ours['seconds'] * 60:,.0f} | {ours['peak_rss_mb']:,.0f} | "
            f"{ours['peak_anon_mb']:,.0f} | {theirs} |"
        )


if __name__ == "__main__":
    main()
