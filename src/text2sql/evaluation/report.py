"""report.html: one self-contained page per evaluation (inline CSS and SVG; opens offline).

Headline cards, accuracy by complexity (table + bars), error categories, accuracy by gold query
length, the training loss curve when the model folder has a training log, and the worst examples
(wrong answers with the lowest token F1) with gold and predicted SQL side by side. All text from
data or models is escaped by Jinja2's autoescape.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from text2sql import __version__
from text2sql.evaluation import charts
from text2sql.evaluation.aggregate import notes as metric_notes
from text2sql.evaluation.scoring import ScoredExample
from text2sql.training.resources import resource_summary

TEMPLATES = Path(__file__).resolve().parent / "templates"
WORST_EXAMPLES = 25


_RUN = re.compile(r"(.)\1{19,}", re.S)  # one character 20 times or more in a row


def shorten(text: str, limit: int = 300) -> str:
    """A prediction fit to show: runs of one repeated character collapsed (a degenerate model writes
    hundreds of quotes) and at most `limit` characters, saying how much was left out."""
    text = _RUN.sub(lambda m: f"{m.group(1) * 3}…(×{len(m.group(0))})", text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["pct"] = pct
    env.filters["shorten"] = shorten
    return env


def css():
    from markupsafe import Markup

    return Markup((TEMPLATES / "style.css").read_text(encoding="utf-8"))


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _cards(m: dict[str, Any]) -> list[dict[str, str]]:
    ex_sub = (
        f"{m['num_execution_scored']:,} of {m['num_examples']:,} rows executed"
        if m["execution_accuracy"] is not None
        else "no row could be executed"
    )
    cards = [
        {"label": "Execution accuracy", "value": pct(m["execution_accuracy"]), "sub": ex_sub},
        {
            "label": "Exact match",
            "value": pct(m["exact_match"]),
            "sub": f"normalized: {pct(m['normalized_exact_match'])} · Spider exact-set: {pct(m.get('exact_set_match'))}",
        },
        {
            "label": "Token F1",
            "value": pct(m["f1_score"]),
            "sub": f"Jaccard (the 'F1' of set-based scripts): {pct(m['token_jaccard'])}",
        },
        {
            "label": "Valid SQL",
            "value": pct(m["valid_sql_rate"]),
            "sub": f"parses and runs, of {m['num_executable']:,}",
        },
    ]
    sampling = m.get("sampling")
    if sampling:
        k = sampling["num_samples"]
        cards.insert(
            1,
            {
                "label": f"maj@{k} · pass@{k}",
                "value": f"{pct(m.get('maj_at_k'))} · {pct(m.get('pass_at_k'))}",
                "sub": f"{k} candidates voted on by result; {sampling['seconds_per_question']:.2f} s, "
                f"{sampling['tokens_per_question']:.0f} tokens per question",
            },
        )
    if m.get("r_ves") is not None:
        e = m["efficiency"]
        cards.append(
            {"label": "R-VES", "value": pct(m["r_ves"]), "sub": f"BIRD's efficiency score, {e['runs']} timed runs"}
        )
    if m.get("loss") is not None:
        cards.append({"label": "Loss", "value": f"{m['loss']:.3f}", "sub": f"perplexity {m['perplexity']:.2f}"})
    if m.get("bleu") is not None:
        cards.append({"label": "BLEU-4", "value": f"{m['bleu'] * 100:.1f}", "sub": f"ROUGE-L {pct(m.get('rouge_l'))}"})
    if m.get("cost"):
        cards.append(_cost_card(m["cost"]))
    if m.get("examples_per_second"):
        cards.append(
            {
                "label": "Throughput",
                "value": f"{m['examples_per_second']:.1f}/s",
                "sub": "examples generated per second",
            }
        )
    return cards


def _cost_card(cost: dict[str, Any]) -> dict[str, str]:
    """Cost per 1,000 questions, with latency (an endpoint's p50 / p95, a local model's seconds per
    question) and tokens in and out."""
    value = cost.get("cost_per_1000_questions")
    if cost.get("latency_p50_seconds") is not None:
        speed = f"latency p50 {cost['latency_p50_seconds']:.2f} s, p95 {cost['latency_p95_seconds']:.2f} s"
    elif cost.get("seconds_per_question") is not None:
        speed = f"{cost['seconds_per_question']:.3f} s per question, batched"
    else:
        speed = "no timing"
    tokens = (
        f"{cost['tokens_in_per_question']:.0f} tokens in, {cost['tokens_out_per_question']:.0f} out per question"
        if cost.get("tokens_in_per_question") is not None and cost.get("tokens_out_per_question") is not None
        else "tokens not reported"
    )
    unpriced = "evaluation.price_per_1m_tokens" if cost.get("kind") == "endpoint" else "evaluation.price_per_hour"
    return {
        "label": "Cost per 1,000 questions",
        "value": f"{value:.4g}" if value is not None else "n/a",
        "sub": f"{speed}; {tokens}" + ("" if value is not None else f"; set {unpriced} for a price"),
    }


def find_training_log(model_path: str | Path | None) -> tuple[list[dict[str, Any]], str] | None:
    """(trainer log_history, where it came from) for a model folder, or None.

    Looks for training_log.json in the folder, its parent and the parent's other folders (an
    adapter beside a merged model), then for the newest checkpoint-*/trainer_state.json.
    """
    if not model_path or not Path(model_path).is_dir():
        return None
    folder = Path(model_path).resolve()
    places = [folder, folder.parent] + sorted(p for p in folder.parent.iterdir() if p.is_dir() and p != folder)
    for place in places:
        found = _read_log(place / "training_log.json")
        if found:
            return found, str(place / "training_log.json")
    found = _read_log(folder / "trainer_state.json")  # the folder is a checkpoint itself
    if found:
        return found, str(folder / "trainer_state.json")
    for place in (folder, folder.parent, folder / "checkpoints", folder.parent / "checkpoints"):
        states = sorted(place.glob("checkpoint-*/trainer_state.json"), key=_checkpoint_step) if place.is_dir() else []
        if states and (found := _read_log(states[-1])):
            return found, str(states[-1])
    return None


def _checkpoint_step(path: Path) -> int:
    try:
        return int(path.parent.name.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def _read_log(path: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict):
        data = data.get("log_history")
    if not isinstance(data, list):
        return None
    return [entry for entry in data if isinstance(entry, dict)] or None


def loss_chart(log_history: Sequence[dict[str, Any]]) -> str | None:
    series = []
    for key, name in (("loss", "train loss"), ("eval_loss", "eval loss")):
        points = [
            (float(e["step"]), float(e[key]))
            for e in log_history
            if isinstance(e.get(key), (int, float)) and isinstance(e.get("step"), (int, float))
        ]
        if points:
            series.append((name, points))
    return charts.line_chart(series, y_label="loss") if series else None


def render_report(
    metrics: dict[str, Any],
    scored: Sequence[ScoredExample],
    path: str | Path,
    *,
    info: dict[str, Any],
) -> Path:
    """Write report.html to `path`. `info`: subject_label, subject, data, split, generation,
    timeout, model_path (for the loss curve)."""
    from markupsafe import Markup

    m = metrics
    by_c = m["by_complexity"]
    labels = list(by_c)
    complexity = charts.bar_chart(
        labels,
        [
            ("execution accuracy", [by_c[k]["execution_accuracy"] for k in labels]),
            ("exact match", [by_c[k]["exact_match"] for k in labels]),
        ],
        counts=[by_c[k]["num_examples"] for k in labels],
    )
    errors = charts.hbar_chart(list(m["error_counts"].items()))
    by_len = m["by_length"]
    has_ex = m["execution_accuracy"] is not None
    length = charts.bar_chart(
        list(by_len),
        [
            (
                "execution accuracy" if has_ex else "exact match",
                [g["execution_accuracy" if has_ex else "exact_match"] for g in by_len.values()],
            )
        ],
        counts=[g["num_examples"] for g in by_len.values()],
    )
    log = find_training_log(info.get("model_path"))
    loss = loss_chart(log[0]) if log else None
    resources = resource_summary(log[0]) if log else []
    wrong = [s for s in scored if not s.correct]
    worst = sorted(wrong, key=lambda s: (s.f1_score, s.id))[:WORST_EXAMPLES]
    html = (
        environment()
        .get_template("report.html.j2")
        .render(
            title=str(info.get("subject", "")),
            css=css(),
            m=m,
            cards=_cards(m),
            notes=metric_notes(m),
            subject_label=info.get("subject_label", "model"),
            subject=info.get("subject", ""),
            data=info.get("data", ""),
            split=info.get("split"),
            generation=info.get("generation"),
            timeout=info.get("timeout", ""),
            created=time.strftime("%Y-%m-%d %H:%M"),
            complexity_source=info.get("complexity_source", "data"),
            charts={
                "complexity": Markup(complexity),
                "errors": Markup(errors),
                "length": Markup(length),
                "loss": Markup(loss) if loss else None,
            },
            loss_source=log[1] if log else "",
            resources=resources,
            length_metric="execution accuracy" if has_ex else "exact match",
            worst=worst,
            num_wrong=len(wrong),
            version=__version__,
        )
    )
    path = Path(path)
    path.write_text(html, encoding="utf-8")
    return path
