"""Evaluation speed: batched generation against seed 000's loop, and scoring 1,000 predictions.

    python benchmarks/evaluation_speed.py [--model tiny:llama] [--rows 64] [--max-new-tokens 64]
                                          [--batch-size 32] [--schema-format sql] [--score-rows 1000]
                                          [--threads 1] [--loop-rows N] [--styles question,schema] [--bf16]
                                          [--skip-evaluate] [--skip-scoring]

1. Generation throughput, in one process on the same model, prompts and settings (greedy,
   `--max-new-tokens`): seed 000's evaluation loop (tokenize one prompt, one `generate` call, decode;
   no batching) against `text2sql.inference.generate.HFGenerator`, batched through transformers'
   `generate` (no prefix sharing) and as evaluation generates (shared prefixes, `inference.greedy`),
   on two kinds of prompt: the question alone (what seed 000 feeds its model) and schema + question
   (`--rows` bundled test rows spread over the four databases, schemas rendered as
   `--schema-format`). All three must return the same texts. The whole `evaluate()` call (load,
   generate, score, loss, write outputs and report) is timed as well.
2. Scoring speed: `evaluate --predictions` on `--score-rows` rows of the bundled train split (a mix
   of right, wrong, unparsable and failing predictions), end to end and scoring alone; and on
   Spider's department_store database (its 88 gold queries repeated) when ../shared/datasets is
   present.

Prints markdown for BENCHMARKS.md. Timings on a shared CPU vary between runs; the ratios are what
the benchmark is for.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def seed000_loop(model, tokenizer, prompts, max_new_tokens):
    """Seed 000's evaluate_model: one tokenizer call and one generate call per example."""
    import torch

    outputs = []
    for text in prompts:
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        outputs.append(tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return outputs


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_generation(args) -> list[str]:
    from text2sql.evaluation.evalset import load_eval_set
    from text2sql.evaluation.evaluate import evaluate
    from text2sql.inference.generate import HFGenerator
    from text2sql.inference.loading import load_for_inference

    im = load_for_inference(args.model)
    options = im.read_options()
    options.schema_format = args.schema_format
    rows = load_eval_set("bundled", split="test", read_options=options).rows
    rows = rows[:: max(1, len(rows) // args.rows)][: args.rows]  # spread over the four databases
    seed000_loop(im.model, im.tokenizer, ["warm-up"] * 2, 4)
    lines = [
        f"Generation: {args.model}, {len(rows)} bundled test rows over {len({r.db_id for r in rows})} databases, "
        f"schemas as {args.schema_format}, greedy, max_new_tokens={args.max_new_tokens}, batch size "
        f"{args.batch_size}; best of {args.repeats} interleaved runs (wall clock)",
        "",
        "| prompts | seed 000 loop (s) | batched (s) | speed-up | batched + shared prefix (s) | speed-up "
        "| same outputs | answered per example (near-ties) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    styles = (
        ("question", "question only (seed 000's CSV input)", lambda r: im.builder.prompt_text(r.question)),
        (
            "schema",
            "schema + question (bundled)",
            lambda r: im.builder.prompt_text(r.question, r.schema, r.evidence),
        ),
    )
    # The loop's time grows with the rows one by one, so on a large model it may run on a spread
    # subset (`--loop-rows`); speed-ups are then per row, and outputs are compared on that subset.
    loop_every = max(1, len(rows) // args.loop_rows) if args.loop_rows else 1
    loop_at = list(range(0, len(rows), loop_every))[: args.loop_rows or len(rows)]
    if len(loop_at) < len(rows):
        lines[0] += f"; the loop on {len(loop_at)} of the rows (every {loop_every}th), speed-ups per row"
    for key, label, render in styles:
        if key not in args.styles.split(","):
            continue
        prompts = [render(r) for r in rows]
        ids = im.builder.encode_prompts(prompts)
        best = {"seed": float("inf"), "plain": float("inf"), "shared": float("inf")}
        outputs = {}
        fast = HFGenerator(im.model, im.tokenizer, im.kind)
        fast.generate(ids[:2], 2)  # warm-up, as for the loop: the first call also probes the model once
        loop_prompts = [prompts[i] for i in loop_at]
        half = None
        if args.bf16:  # the same path with the weights in bfloat16 (AMX where the CPU has it)
            import torch

            half_im = load_for_inference(args.model, dtype=torch.bfloat16)
            half = HFGenerator(half_im.model, half_im.tokenizer, half_im.kind)
            half.generate(ids[:2], 2)
            best["bf16"] = float("inf")
        for _ in range(args.repeats):
            for name, fn in (
                (
                    "seed",
                    lambda prompts=loop_prompts: seed000_loop(im.model, im.tokenizer, prompts, args.max_new_tokens),
                ),
                (
                    "plain",
                    lambda ids=ids: HFGenerator(im.model, im.tokenizer, im.kind, share_prefix=False).generate_texts(
                        ids, args.max_new_tokens, batch_size=args.batch_size
                    ),
                ),
                (
                    "shared",
                    lambda ids=ids, fast=fast: fast.generate_texts(
                        ids, args.max_new_tokens, batch_size=args.batch_size
                    ),
                ),
            ):
                seconds, outputs[name] = _timed(fn)
                best[name] = min(best[name], seconds)
            if half is not None:
                seconds, outputs["bf16"] = _timed(
                    lambda ids=ids, half=half: half.generate_texts(ids, args.max_new_tokens, batch_size=args.batch_size)
                )
                best["bf16"] = min(best["bf16"], seconds)
        mean = sum(map(len, ids)) / len(ids)
        same = outputs["seed"] == [outputs["plain"][i] for i in loop_at] == [outputs["shared"][i] for i in loop_at]
        per = {name: seconds / (len(loop_at) if name == "seed" else len(rows)) for name, seconds in best.items()}
        lines.append(
            f"| {label}, mean {mean:.0f} tokens | {best['seed']:.2f} | {best['plain']:.2f} | "
            f"{per['seed'] / per['plain']:.1f}× | {best['shared']:.2f} | **{per['seed'] / per['shared']:.1f}×** | {same} "
            f"| {fast.near_ties} |"
        )
        if half is not None:
            agree = sum(a == b for a, b in zip(outputs["bf16"], outputs["shared"]))
            lines.append(
                f"| {label}, bfloat16 weights, batched + shared prefix | | | | {best['bf16']:.2f} "
                f"| **{per['seed'] / (best['bf16'] / len(rows)):.1f}×** | {agree} of {len(rows)} equal to float32 | |"
            )
    if args.skip_evaluate:
        return lines

    out = Path(tempfile.mkdtemp(prefix="t2s-bench-"))
    seconds, result = _timed(
        lambda: evaluate(
            "bundled",
            out / "eval",
            model=args.model,
            max_samples=args.rows,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            progress=False,
        )
    )
    shutil.rmtree(out, ignore_errors=True)
    t = result.metrics["timing"]
    lines += [
        "",
        f"`evaluate()` end to end on the first {args.rows} test rows: {seconds:.1f} s "
        f"(load {t['load_seconds']:.1f}, generate {t['generation_seconds']:.1f}, execute {t['scoring_seconds']:.2f}, "
        f"loss {t['loss_seconds']:.1f}, outputs and report the rest)",
    ]
    return lines


def mixed_predictions(golds: list[str], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    preds = []
    for sql in golds:
        x = rng.random()
        if x < 0.6:
            preds.append(sql)
        elif x < 0.7:
            preds.append(sql.replace("SELECT", "SELEC", 1))
        elif x < 0.8:
            preds.append(sql.replace("FROM ", "FROM missing_", 1))
        else:
            preds.append(sql + (" LIMIT 1" if "LIMIT" not in sql else ""))
    return preds


def _score(data: str, preds: list[str], rows: int, tmp: Path) -> tuple[float, float, dict]:
    from text2sql.evaluation.evaluate import evaluate
    from text2sql.evaluation.metrics import normalize_sql
    from text2sql.sql.equivalence import gold_orders_results

    normalize_sql.cache_clear()  # nothing parsed earlier in this process counts
    gold_orders_results.cache_clear()
    path = tmp / "pred.sql"
    path.write_text("\n".join(p.replace("\n", " ") for p in preds) + "\n", encoding="utf-8")
    start = time.perf_counter()
    result = evaluate(
        data, tmp / f"out-{time.time_ns()}", predictions=path, max_samples=rows, progress=False, split="train"
    )
    total = time.perf_counter() - start
    return total, result.metrics["timing"]["scoring_seconds"], result.metrics


def bench_scoring(args) -> list[str]:
    from text2sql.data import bundled

    tmp = Path(tempfile.mkdtemp(prefix="t2s-score-"))
    golds = [r["sql"] for r in bundled.iter_rows("train")][: args.score_rows]
    preds = mixed_predictions(golds)
    lines = [
        f"Scoring: `evaluate --predictions`, {len(golds):,} rows, 4 bundled databases (60% right, the rest "
        "wrong results, syntax and schema errors); caches cleared before each run",
        "",
        "| data | rows | end to end (s) | scoring (s) | execution accuracy |",
        "|---|---:|---:|---:|---:|",
    ]
    total, scoring, m = _score("bundled", preds, len(golds), tmp)
    lines.append(f"| bundled train | {len(golds):,} | {total:.2f} | {scoring:.2f} | {m['execution_accuracy']:.3f} |")
    store = SHARED / "spider_en" / "database" / "department_store"
    if store.is_dir():
        queries = [
            q.split("\t")[0] for q in (store / "train_gold_department_store.sql").read_text().splitlines() if q.strip()
        ]
        spider = tmp / "spider"
        (spider / "database" / "department_store").mkdir(parents=True)
        shutil.copy(store / "department_store.sqlite", spider / "database" / "department_store")
        repeated = (queries * (args.score_rows // len(queries) + 1))[: args.score_rows]
        records = [{"db_id": "department_store", "question": f"q{i}", "query": q} for i, q in enumerate(repeated)]
        (spider / "train_spider.json").write_text(json.dumps(records))
        preds = mixed_predictions(repeated, seed=1)
        total, scoring, m = _score(str(spider / "train_spider.json"), preds, len(repeated), tmp)
        lines.append(
            f"| Spider department_store (its 88 gold queries, repeated) | {len(repeated):,} | "
            f"{total:.2f} | {scoring:.2f} | {m['execution_accuracy']:.3f} |"
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny:llama")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--loop-rows", type=int, default=0, help="run seed 000's loop on this many of the rows (0: all of them)"
    )
    parser.add_argument("--styles", default="question,schema", help="prompt styles to time: question, schema")
    parser.add_argument(
        "--bf16", action="store_true", help="also time the shared-prefix path with the weights in bfloat16"
    )
    parser.add_argument("--score-rows", type=int, default=1000)
    parser.add_argument(
        "--schema-format", default="sql", help="how schemas are rendered in prompts (data.schema_format)"
    )
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-evaluate", action="store_true", help="no end-to-end evaluate() run")
    parser.add_argument("--skip-scoring", action="store_true", help="no scoring benchmark")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's own); 1 keeps timings stable on a shared machine",
    )
    args = parser.parse_args()

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    header = [
        f"CPU threads: {torch.get_num_threads()}, load average at start: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        "",
    ]
    lines = header
    if not args.skip_generation:
        lines += bench_generation(args) + [""]
    if not args.skip_scoring:
        lines += bench_scoring(args)
    lines += ["", f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
