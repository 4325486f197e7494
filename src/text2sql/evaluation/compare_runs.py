"""`text2sql compare DIR_A DIR_B ...`: evaluation runs side by side.

The first run is the reference (the baseline, the untuned model; or the trial to beat): every
other run gets its metrics, its per-complexity accuracy and its per-example wins and losses against
it (a run's `evaluation.reference`, the LLM it is meant to replace, comes first). A row is *right* by
execution when it could be executed, else by exact match (the rule
`ScoredExample.correct` uses); rows are matched by id, over the ids both runs scored.

Over those paired rows each headline metric that is scored per row gets the delta of its means with
a 95% bootstrap interval, and right/wrong by execution gets McNemar's exact test (`significance`):
a difference whose interval holds 0 is within noise. What each run's answers cost (`metrics["cost"]`:
latency, tokens, price of 1,000 questions) is put side by side too. `compare.json` (beside
`compare.html`) holds it all for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from text2sql import __version__
from text2sql.errors import DataError
from text2sql.evaluation import charts
from text2sql.evaluation.aggregate import HEADLINE, complexity_order
from text2sql.evaluation.report import css, environment
from text2sql.evaluation.significance import (
    Interval,
    McNemar,
    format_interval,
    format_p,
    format_points,
    mcnemar,
    paired_bootstrap,
    verdict,
)

COMPARED = HEADLINE + ("loss", "perplexity", "bleu", "rouge_l")
SHOWN_EXAMPLES = 15
# headline metric -> the predictions.jsonl field it is the mean of (rows where the field is None
# do not count, as in `aggregate`); loss and perplexity have no per-row value
ROW_FIELDS = {
    "execution_accuracy": "execution_match",
    "exact_match": "exact_match",
    "normalized_exact_match": "normalized_exact_match",
    "f1_score": "f1_score",
    "valid_sql_rate": "valid_sql",
    "bleu": "bleu",
    "rouge_l": "rouge_l",
}
# metrics["cost"] keys shown side by side, with their labels (seconds, tokens, price)
COST_ROWS = (
    ("latency_p50_seconds", "latency p50 (s)"),
    ("latency_p95_seconds", "latency p95 (s)"),
    ("seconds_per_question", "seconds per question"),
    ("tokens_in_per_question", "tokens in per question"),
    ("tokens_out_per_question", "tokens out per question"),
    ("cost_per_1000_questions", "cost per 1,000 questions"),
)
RESAMPLES = 2000
SEED = 0
CONFIDENCE = 0.95


@dataclass
class Run:
    path: Path
    name: str
    metrics: dict[str, Any]
    examples: dict[str, dict[str, Any]]  # id -> predictions.jsonl record


@dataclass
class PairResult:
    """One run against the reference: rows it gets right that the reference gets wrong (wins) and
    the reverse (losses), over the `common` ids."""

    name: str
    common: int = 0
    wins: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    both_right: int = 0
    both_wrong: int = 0
    # metric -> delta (this run - the reference) over the common rows that have the metric in both
    intervals: dict[str, Interval] = field(default_factory=dict)
    mcnemar: McNemar | None = None
    mcnemar_field: str = ""  # "execution_match", or "exact_match" when no common row could be executed

    def verdict(self) -> str:
        """The execution metric's (else exact match's) interval and McNemar in one sentence."""
        for key in ("execution_accuracy", "exact_match"):
            if key in self.intervals and ROW_FIELDS[key] == self.mcnemar_field:
                return f"{key} {verdict(self.intervals[key], self.mcnemar)}"
        return ""


@dataclass
class Comparison:
    runs: list[Run]
    headline: list[tuple[str, list[float | None]]]
    by_complexity: list[tuple[str, list[float | None], list[int]]]  # label, EX (or EM) per run, rows per run
    complexity_metric: str
    pairs: list[PairResult]
    notes: list[str]
    costs: list[tuple[str, list[float | None]]] = field(default_factory=list)  # COST_ROWS key, value per run


def is_correct(record: dict[str, Any]) -> bool:
    if record.get("execution_match") is not None:
        return record["execution_match"] == 1.0
    return record.get("exact_match") == 1.0


def load_run(path: str | Path) -> Run:
    folder = Path(path)
    metrics_path = folder / "metrics.json"
    if not metrics_path.is_file():
        raise DataError(f"{folder}: no metrics.json; point at a folder written by 'text2sql evaluate'")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except ValueError:
        raise DataError(f"{metrics_path}: not valid JSON; evaluate again") from None
    examples: dict[str, dict[str, Any]] = {}
    predictions = folder / "predictions.jsonl"
    if predictions.is_file():
        with open(predictions, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    examples[str(record.get("id"))] = record
    return Run(folder, folder.resolve().name, metrics, examples)


def compare_runs(paths: Sequence[str | Path]) -> Comparison:
    if len(paths) < 2:
        raise DataError("compare needs at least two evaluation folders")
    runs = [load_run(p) for p in paths]
    _unique_names(runs)
    headline = [(key, [r.metrics.get(key) for r in runs]) for key in COMPARED]
    headline = [(key, values) for key, values in headline if any(v is not None for v in values)]
    has_ex = any(r.metrics.get("execution_accuracy") is not None for r in runs)
    metric = "execution_accuracy" if has_ex else "exact_match"
    labels = complexity_order(label for r in runs for label in r.metrics.get("by_complexity", {}))
    by_complexity = [
        (
            label,
            [r.metrics.get("by_complexity", {}).get(label, {}).get(metric) for r in runs],
            [r.metrics.get("by_complexity", {}).get(label, {}).get("num_examples", 0) for r in runs],
        )
        for label in labels
    ]
    notes = []
    sources = {json.dumps(r.metrics.get("run", {}).get("data", {}).get("source")) for r in runs}
    if len(sources) > 1:
        notes.append("the runs were evaluated on different data; per-example results cover the common ids only")
    pairs = [_pair(runs[0], other, [key for key, _ in headline]) for other in runs[1:]]
    for pair in pairs:
        if pair.common == 0:
            notes.append(f"{pair.name} shares no example ids with {runs[0].name}: no per-example comparison")
    costs = [(key, [(r.metrics.get("cost") or {}).get(key) for r in runs]) for key, _ in COST_ROWS]
    costs = [(key, values) for key, values in costs if any(v is not None for v in values)]
    return Comparison(runs, headline, by_complexity, metric, pairs, notes, costs)


def _unique_names(runs: list[Run]) -> None:
    names = [r.name for r in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = f"{run.path.resolve().parent.name}/{run.path.resolve().name}"


def _pair(ref: Run, other: Run, metrics: Sequence[str] = ()) -> PairResult:
    result = PairResult(other.name)
    common: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for key, record in other.examples.items():
        base = ref.examples.get(key)
        if base is None:
            continue
        result.common += 1
        common.append((base, record))
        a, b = is_correct(base), is_correct(record)
        if b and not a:
            result.wins.append(key)
        elif a and not b:
            result.losses.append(key)
        elif a and b:
            result.both_right += 1
        else:
            result.both_wrong += 1
    _significance(result, common, metrics)
    return result


def _row_value(value: Any) -> float | None:
    return None if value is None else float(value)


def _significance(
    result: PairResult, common: list[tuple[dict[str, Any], dict[str, Any]]], metrics: Sequence[str]
) -> None:
    """Bootstrap intervals for `metrics` (those with a per-row field) and McNemar, over `common`
    (reference record, other record) pairs."""
    for key in metrics:
        name = ROW_FIELDS.get(key)
        if name is None:
            continue
        values = [(_row_value(a.get(name)), _row_value(b.get(name))) for a, b in common]
        paired = [(x, y) for x, y in values if x is not None and y is not None]
        if paired:
            result.intervals[key] = paired_bootstrap(
                [x for x, _ in paired],
                [y for _, y in paired],
                resamples=RESAMPLES,
                seed=SEED,
                confidence=CONFIDENCE,
            )
    for name in ("execution_match", "exact_match"):
        outcomes = [(a.get(name), b.get(name)) for a, b in common]
        both = [(x == 1.0, y == 1.0) for x, y in outcomes if x is not None and y is not None]
        if both:
            result.mcnemar = mcnemar([x for x, _ in both], [y for _, y in both])
            result.mcnemar_field = name
            return


# ------------------------------------------------------------------------------------ output


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}"


def _value(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if key in ("loss", "perplexity") else _pct(value)


def _delta(key: str, value: float | None, ref: float | None) -> str:
    if value is None or ref is None:
        return ""
    diff = value - ref
    return f"{diff:+.3f}" if key in ("loss", "perplexity") else f"{diff * 100:+.1f}"


def format_table(c: Comparison) -> str:
    """The comparison as plain text: metrics (in %, deltas in points against the first run),
    per-complexity accuracy, wins and losses."""
    table: list[list[str]] = [["metric"] + [r.name for r in c.runs]]
    for key, values in c.headline:
        table.append([key, _value(key, values[0])] + [_with_delta(key, v, values[0]) for v in values[1:]])
    table.append([f"{c.complexity_metric} by complexity:"] + [""] * len(c.runs))
    for label, values, _ in c.by_complexity:
        table.append([f"  {label}", _pct(values[0])] + [_with_delta("", v, values[0]) for v in values[1:]])
    if c.costs:
        table.append(["cost and speed:"] + [""] * len(c.runs))
        labels = dict(COST_ROWS)
        for key, values in c.costs:
            table.append([f"  {labels[key]}"] + [format_cost_value(v) for v in values])
    widths = [max(len(row[i]) for row in table if i == 0 or row[i]) for i in range(len(table[0]))]
    widths[0] = max(len(row[0]) for row in table if row[1:] != [""] * len(c.runs))
    lines = []
    for row in table:
        if row[1:] == [""] * len(c.runs):
            lines.append(row[0])
            continue
        lines.append(f"{row[0]:<{widths[0]}}" + "".join(f"  {cell:>{w}}" for cell, w in zip(row[1:], widths[1:])))
    for pair in c.pairs:
        lines.append(
            f"{pair.name} vs {c.runs[0].name}: {len(pair.wins):,} wins, {len(pair.losses):,} losses, "
            f"{pair.both_right:,} both right, {pair.both_wrong:,} both wrong (of {pair.common:,} common rows)"
        )
        lines.extend(_significance_lines(pair))
    lines.extend(f"note: {n}" for n in c.notes)
    return "\n".join(lines)


def format_cost_value(value: float | None) -> str:
    """A cost or speed figure: three significant digits ('n/a' when not measured or not priced)."""
    return "n/a" if value is None else f"{value:.3g}"


def noise_note(significant: bool) -> str:
    return "significant" if significant else "within noise"


def _significance_lines(pair: PairResult) -> list[str]:
    """The pair's intervals as an indented table, McNemar and the verdict."""
    if not pair.intervals and pair.mcnemar is None:
        return []
    label = f"{CONFIDENCE * 100:g}% CI"
    table = [["delta over paired rows", "rows", "delta", label, ""]]
    for key, iv in pair.intervals.items():
        table.append([key, f"{iv.n:,}", format_points(iv.delta), format_interval(iv), noise_note(iv.significant)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    if pair.intervals:
        for row in table:
            cells = [f"{row[0]:<{widths[0]}}"] + [f"{cell:>{w}}" for cell, w in zip(row[1:4], widths[1:4])] + [row[4]]
            lines.append(("  " + "  ".join(cells)).rstrip())
    test = pair.mcnemar
    if test is not None:
        lines.append(
            f"  McNemar on {pair.mcnemar_field} over {test.n:,} rows: {test.wins:,} wins, {test.losses:,} losses, "
            f"{format_p(test.p_value)} ({noise_note(test.significant)})"
        )
    sentence = pair.verdict()
    if sentence:
        lines.append(f"  verdict: {sentence}")
    return lines


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (what `compare.json` holds): runs, headline metrics,
    per-complexity values and per pair the wins and losses, intervals, McNemar and the verdict."""
    return {
        "version": __version__,
        "reference": c.runs[0].name,
        "runs": [{"name": r.name, "path": str(r.path)} for r in c.runs],
        "headline": {key: values for key, values in c.headline},
        "complexity_metric": c.complexity_metric,
        "by_complexity": [
            {"complexity": label, "values": values, "rows": counts} for label, values, counts in c.by_complexity
        ],
        "pairs": [_pair_dict(c.runs[0].name, pair) for pair in c.pairs],
        "cost": {key: values for key, values in c.costs},
        "significance": {
            "method": "paired bootstrap, percentile interval",
            "resamples": RESAMPLES,
            "seed": SEED,
            "confidence": CONFIDENCE,
        },
        "notes": list(c.notes),
    }


def _pair_dict(reference: str, pair: PairResult) -> dict[str, Any]:
    test = pair.mcnemar
    return {
        "name": pair.name,
        "reference": reference,
        "common": pair.common,
        "wins": len(pair.wins),
        "losses": len(pair.losses),
        "both_right": pair.both_right,
        "both_wrong": pair.both_wrong,
        "win_ids": list(pair.wins),
        "loss_ids": list(pair.losses),
        "intervals": {key: asdict(iv) for key, iv in pair.intervals.items()},
        "mcnemar": None if test is None else {"field": pair.mcnemar_field, "rows": test.n, **asdict(test)},
        "verdict": pair.verdict() or None,
    }


def write_compare_json(c: Comparison, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(comparison_dict(c), indent=2) + "\n", encoding="utf-8")
    return path


def _with_delta(key: str, value: float | None, ref: float | None) -> str:
    delta = _delta(key, value, ref)
    return f"{_value(key, value)} ({delta})" if delta else _value(key, value)


def _side_by_side(ref: Run, run: Run, ids: list[str]) -> list[dict[str, Any]]:
    return [{"id": i, "ref": ref.examples[i], "run": run.examples[i]} for i in ids[:SHOWN_EXAMPLES]]


def render_compare_html(c: Comparison, path: str | Path) -> Path:
    """compare.html: metrics with deltas, their intervals, per-complexity bars per run, wins and
    losses with SQL; and `compare.json` (the same name, .json) beside it (`comparison_dict`)."""
    import time

    from markupsafe import Markup

    chart = charts.bar_chart(
        [label for label, _, _ in c.by_complexity],
        [(run.name, [values[i] for _, values, _ in c.by_complexity]) for i, run in enumerate(c.runs)],
        counts=[counts[0] for _, _, counts in c.by_complexity],
        width=760,
    )
    ref = c.runs[0]
    pairs = []
    for pair, run in zip(c.pairs, c.runs[1:]):
        pairs.append(
            {"pair": pair, "wins": _side_by_side(ref, run, pair.wins), "losses": _side_by_side(ref, run, pair.losses)}
        )
    html = (
        environment()
        .get_template("compare.html.j2")
        .render(
            css=css(),
            c=c,
            chart=Markup(chart),
            pairs=pairs,
            fmt=_value,
            delta=_delta,
            interval=format_interval,
            points=format_points,
            p_value=format_p,
            noise=noise_note,
            cost_labels=dict(COST_ROWS),
            cost_value=format_cost_value,
            confidence=f"{CONFIDENCE * 100:g}%",
            created=time.strftime("%Y-%m-%d %H:%M"),
            version=__version__,
            shown=SHOWN_EXAMPLES,
        )
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    write_compare_json(c, path.with_suffix(".json"))
    return path
