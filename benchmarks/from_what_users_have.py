"""A model from what a user has, measured: pairs synthesized from the database alone, a few human
pairs plus synthesized ones, questions labelled by a teacher endpoint, and that endpoint as the
reference a run compares against.

    python benchmarks/from_what_users_have.py --teacher runs/quickstart/model [--skip-training]
    python benchmarks/from_what_users_have.py --runs "synth only" --no-teacher --value-hints
    python benchmarks/from_what_users_have.py --coverage      # seconds: query shapes the sampled pairs hold
    python benchmarks/from_what_users_have.py --questions-and-teacher --teacher runs/quickstart/model

The teacher stands in for the LLM a user pays for: a trained model served by `text2sql serve` on
loopback, asked through the `openai` client (`openai:text2sql`). SmolLM2-135M trains with the real-model
preset (configs/smollm2_lora.yaml: LoRA, 70 steps of 8 rows, the same 100 test rows) on:

- synth only: 2,000 pairs sampled from the four bundled databases, no bundled training pair; the
  run also evaluates the teacher as `evaluation.reference`, so its report puts both side by side;
- 50 bundled training pairs alone, and the same 50 plus the 2,000 sampled pairs, as they are and
  with `data.synth.share=0.5` (the 50 repeated until they make half of the training rows).

- questions and teacher (`--questions-and-teacher`, alone): with the quickstart's settings, which
  the teacher was trained with, the bundled training questions without their SQL are labelled by
  the teacher (`data.label`) and train the quickstart's model; the teacher is the run's
  `evaluation.reference`, so the run's compare stage sets the two side by side (EX, latency, cost,
  paired interval and McNemar).

The bundled test questions are never seen by synthesis (a sampled query equal to a test query is
dropped). `--steps N` trains every run for N steps instead of the preset's 70. `--value-hints` turns on `data.value_hints` in every run (stored values a question names,
beside their columns in the prompt); `--no-teacher` skips the labelling and the reference, so the
runs need no served model. `--coverage` trains nothing: it counts the bundled test queries whose
shape (the SQL with every name and literal masked) some sampled query has. Prints markdown tables,
with execution accuracy by complexity class; BENCHMARKS.md ("From what users have") holds the output.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "text2sql" / "data" / "bundled"
PRESET = ROOT / "configs" / "smollm2_lora.yaml"
# Illustrative prices of a hosted small LLM (USD per million tokens) and of a 2-core CPU machine.
PRICE = {"input": 0.15, "output": 0.60}
PRICE_PER_HOUR = 0.10
RUNS = ("synth only", "50 pairs", "50 pairs + synth", "50 pairs + synth, share 0.5")
CLASSES = ("basic", "aggregation", "ordering", "join", "nested", "set operation")


def _rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (BUNDLED / f"{split}.jsonl").read_text().splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _text2sql(*args: str, log: Path) -> None:
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(["text2sql", *args], stdout=out, stderr=subprocess.STDOUT).returncode
    print(f"  text2sql {' '.join(args[:2])} ... {time.monotonic() - start:.0f} s (log: {log})", file=sys.stderr)
    if code != 0:
        raise SystemExit(f"text2sql {' '.join(args)} failed (exit {code}); see {log}")


class Served:
    """`text2sql serve` of the teacher on a loopback port, for as long as the block runs."""

    def __init__(self, model: str, work: Path):
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = work / "serve.log"
        self.model = model

    def __enter__(self) -> Served:
        self.process = subprocess.Popen(
            ["text2sql", "serve", "--model", self.model, "--port", str(self.port), "--threads", "1"],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if json.load(r).get("status") == "ok":
                        return self
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"the teacher did not start; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def label(served: Served, work: Path, split: str, samples: int) -> dict:
    """The bundled `split` questions (no SQL) labelled by the teacher with `samples` candidates each;
    how many are kept, and how many kept pairs return the gold query's result."""
    from text2sql.sql.match import execute_pairs

    questions = work / f"questions_{split}.csv"
    rows = _rows(split)
    with questions.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "input_text", "db_id"])
        for row in rows:
            writer.writerow([row["id"], row["question"], row["db_id"]])
    pairs = work / f"labelled_{split}_{samples}.jsonl"
    pattern = str(BUNDLED / "databases" / "{db_id}" / "{db_id}.sqlite")
    _text2sql(
        "label", "--data", str(questions), "--db", pattern, "--teacher", "openai:text2sql", "--samples", str(samples),
        "--base-url", served.base_url, "--output", str(pairs), "--force", log=work / f"label_{split}_{samples}.log",
    )  # fmt: skip
    kept = [json.loads(line) for line in pairs.read_text().splitlines() if line.strip()]
    gold = {(r["db_id"], r["question"]): r["sql"] for r in rows}

    class Row:
        def __init__(self, sql: str, db_id: str):
            self.sql, self.db_path = sql, pattern.replace("{db_id}", db_id)

    golds = [Row(gold[(k["db_id"], k["input_text"])], k["db_id"]) for k in kept]
    outcomes = execute_pairs(golds, [k["sql"] for k in kept])
    right = sum(1 for o in outcomes if o[0] == 1.0)
    return {"questions": len(rows), "kept": len(kept), "right": right}


def _few(work: Path, n: int = 50, seed: int = 0) -> Path:
    path = work / f"few{n}.jsonl"
    picked = random.Random(seed).sample(_rows("train"), n)
    path.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return path


def train_runs(
    served: Served | None, work: Path, names: list[str], value_hints: bool, steps: int | None = None
) -> dict[str, Path]:
    common = (
        [
            "data.validation=bundled",
            "data.test=bundled",
            "evaluation.baseline=false",
            f"data.db_dir={BUNDLED / 'databases'}",
            f"evaluation.price_per_hour={PRICE_PER_HOUR}",
        ]
        + (["data.value_hints=true"] if value_hints else [])
        + ([f"training.max_steps={steps}"] if steps else [])
    )
    reference = (
        [
            "evaluation.reference=openai:text2sql",
            f"evaluation.base_url={served.base_url}",
            f"evaluation.price_per_1m_tokens.input={PRICE['input']}",
            f"evaluation.price_per_1m_tokens.output={PRICE['output']}",
        ]
        if served is not None
        else []
    )
    few = _few(work)
    runs = {
        "synth only": ["data.train=null", "data.synth.n=2000", *reference],
        "50 pairs": [f"data.train={few}"],
        "50 pairs + synth": [f"data.train={few}", "data.synth.n=2000"],
        # The 50 human pairs repeated until they make half the training rows.
        "50 pairs + synth, share 0.5": [f"data.train={few}", "data.synth.n=2000", "data.synth.share=0.5"],
    }
    out = {}
    for name in names:
        folder = work / name.replace(" ", "_").replace("+", "and").replace(",", "")
        _text2sql("run", str(PRESET), f"output_dir={folder}", *common, *runs[name], log=work / f"{folder.name}.log")
        out[name] = folder
    return out


def query_shape(sql: str) -> str:
    """The SQL with every table, column and alias name and every literal masked: its structure."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="sqlite")
    for node in list(tree.find_all(exp.Literal)):
        node.replace(exp.Placeholder())
    for node in tree.find_all(exp.Identifier):
        node.set("this", "x")
        node.set("quoted", False)
    return tree.sql()


def coverage(n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """How many bundled test queries have a shape that `n` pairs sampled from the bundled databases hold."""
    from text2sql.data.synth import databases_from_args, synthesize

    pairs, _ = synthesize(databases_from_args(["bundled"]), n, seed=seed, show_progress=False)
    shapes = {query_shape(p.sql) for p in pairs}
    test = _rows("test")
    return {
        "pairs": len(pairs),
        "shapes": len(shapes),
        "test": len(test),
        "covered": sum(query_shape(r["sql"]) in shapes for r in test),
    }


def questions_to_teacher_run(served: Served, work: Path) -> Path:
    """The whole path in one config, with the quickstart's settings (the prompts the teacher was
    trained on): the bundled training questions without their SQL, labelled by the teacher
    (`data.label`), train the quickstart's model; the teacher is the run's `evaluation.reference`."""
    questions = work / "questions_train.csv"
    with questions.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "input_text", "db_id"])
        for row in _rows("train"):
            writer.writerow([row["id"], row["question"], row["db_id"]])
    folder = work / "questions_and_teacher"
    _text2sql(
        "run", str(ROOT / "configs" / "quickstart.yaml"), f"output_dir={folder}", "--force",
        "data.train=null", "data.validation=bundled", "data.test=bundled", f"data.db_dir={BUNDLED / 'databases'}",
        f"data.label.file={questions}", "data.label.teacher=openai:text2sql", f"data.label.base_url={served.base_url}",
        "evaluation.reference=openai:text2sql", f"evaluation.base_url={served.base_url}",
        f"evaluation.price_per_1m_tokens.input={PRICE['input']}", f"evaluation.price_per_1m_tokens.output={PRICE['output']}",
        f"evaluation.price_per_hour={PRICE_PER_HOUR}",
        log=work / "questions_and_teacher.log",
    )  # fmt: skip
    return folder


def side_by_side(folder: Path) -> str:
    """The run's models next to its reference: EX, EM, latency and cost, from each metrics.json."""
    lines = [
        "| model | test rows | execution accuracy | exact match | latency p50 / p95 (s) | seconds per question "
        "| tokens in / out per question | cost per 1,000 questions (USD) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("reference", "finetuned", "baseline"):
        if not (folder / "eval" / name / "metrics.json").is_file():
            continue
        m = _metrics(folder / "eval" / name)
        cost = m.get("cost") or {}
        p50, p95 = cost.get("latency_p50_seconds"), cost.get("latency_p95_seconds")
        per_question = cost.get("seconds_per_question")
        tokens_in, tokens_out = cost.get("tokens_in_per_question"), cost.get("tokens_out_per_question")
        lines.append(
            f"| {name} | {m['num_examples']} | {m['execution_accuracy']:.3f} | {m.get('exact_match', float('nan')):.3f} "
            f"| {_num(p50)} / {_num(p95)} | {_num(per_question, 4)} | {_num(tokens_in, 0)} / {_num(tokens_out, 0)} "
            f"| {_num(cost.get('cost_per_1000_questions'), 4)} |"
        )
    return "\n".join(lines)


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="runs/quickstart/model", help="the model `text2sql serve` serves")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "from_what_users_have")
    parser.add_argument("--skip-training", action="store_true", help="label only")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="the training runs to make")
    parser.add_argument("--value-hints", action="store_true", help="data.value_hints=true in every run")
    parser.add_argument(
        "--steps", type=int, default=None, help="training.max_steps of every run (default: the preset's)"
    )
    parser.add_argument("--no-teacher", action="store_true", help="no labelling and no reference: nothing served")
    parser.add_argument("--coverage", action="store_true", help="only the query shapes sampled pairs hold")
    parser.add_argument(
        "--questions-and-teacher", action="store_true",
        help="only the run from questions labelled by the teacher, with the teacher as its reference",
    )  # fmt: skip
    args = parser.parse_args()
    if args.coverage:
        got = coverage()
        print(f"{got['pairs']} pairs, {got['shapes']} query shapes; bundled test queries of those shapes: "
              f"{got['covered']} / {got['test']}")  # fmt: skip
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    labelled: dict = {}
    if args.questions_and_teacher:
        with Served(args.teacher, args.work) as served:
            folder = questions_to_teacher_run(served, args.work)
        print(side_by_side(folder))
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        return
    if args.no_teacher:
        runs = {} if args.skip_training else train_runs(None, args.work, args.runs, args.value_hints, args.steps)
    else:
        with Served(args.teacher, args.work) as served:
            # The training questions (which the teacher was trained on), and the test questions it never
            # saw, with one candidate and with five voted on (kept when three agree).
            labelled = {(split, k): label(served, args.work, split, k) for split in ("train", "test") for k in (1, 5)}
            runs = {} if args.skip_training else train_runs(served, args.work, args.runs, args.value_hints, args.steps)
    if labelled:
        print("\n| questions labelled by the teacher | candidates | questions | kept | share kept | kept pairs right |")
        print("|---|---:|---:|---:|---:|---:|")
    for (split, k), got in labelled.items():
        print(
            f"| bundled {split} | {k} | {got['questions']} | {got['kept']} | {got['kept'] / got['questions']:.3f} "
            f"| {got['right'] / max(got['kept'], 1):.3f} |"
        )
    if not runs:
        return
    hints = " (value hints)" if args.value_hints else ""
    print(f"\n| SmolLM2-135M LoRA trained on{hints} | test rows | execution accuracy | exact match | valid SQL |")
    print("|---|---:|---:|---:|---:|")
    for name, folder in runs.items():
        m = _metrics(folder / "eval" / "finetuned")
        print(
            f"| {name} | {m['num_examples']} | {m['execution_accuracy']:.3f} | {m['exact_match']:.3f} "
            f"| {m['valid_sql_rate']:.3f} |"
        )
    reference = runs["synth only"] / "eval" / "reference" if "synth only" in runs else None
    if reference is not None and reference.is_dir():
        m = _metrics(reference)
        print(f"| (reference: the served teacher) | {m['num_examples']} | {m['execution_accuracy']:.3f} | ... |")
    print("\n| execution accuracy by class (rows) | " + " | ".join(CLASSES) + " |")
    print("|---|" + "---:|" * len(CLASSES))
    for name, folder in runs.items():
        by = _metrics(folder / "eval" / "finetuned").get("by_complexity", {})
        cells = [f"{by[c]['execution_accuracy']:.2f} ({by[c]['num_examples']})" if c in by else "-" for c in CLASSES]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for mixed in [name for name in runs if name.startswith("50 pairs + synth") and "50 pairs" in runs]:
        compare = args.work / f"compare_{runs[mixed].name}"
        _text2sql(
            "compare", str(runs["50 pairs"] / "eval" / "finetuned"), str(runs[mixed] / "eval" / "finetuned"),
            "--output", str(compare), log=args.work / f"{compare.name}.log",
        )  # fmt: skip
        print(f"\npaired comparison (50 pairs -> {mixed}): {compare / 'compare.json'}")
        print(json.dumps(json.loads((compare / "compare.json").read_text()).get("runs", [])[-1:], indent=1)[:2000])
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
