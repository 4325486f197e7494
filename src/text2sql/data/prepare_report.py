"""What `prepare` reports: rows in and out per split, drops by reason, duplicates, overlap with train,
token-length percentiles (`prepare_report.json`), and the short table `text2sql prepare` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SPLITS = ("train", "validation", "test")
PERCENTILES = (50, 90, 95, 99, 100)


@dataclass
class PrepareReport:
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    test_overlap: dict[str, int] = field(default_factory=dict)
    not_executable: dict[str, int] = field(default_factory=dict)
    token_lengths: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    prompt: dict[str, Any] = field(default_factory=dict)
    # Per split: prompts over budget (kept and scored in validation/test, dropped in train), schemas
    # pruned to fit, rows with value hints, and, of pruned rows, the share of gold tables kept.
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Human and sampled training rows, and how often the human ones repeat (data.synth.share).
    mix: dict[str, int] = field(default_factory=dict)

    def drop(self, split: str, reason: str, count: int) -> None:
        if count:
            bucket = self.dropped.setdefault(split, {})
            bucket[reason] = bucket.get(reason, 0) + count

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def percentiles(values) -> dict[str, int]:
    """Token-length percentiles of `values` (a list or a numpy array)."""
    import numpy as np

    if len(values) == 0:
        return {}
    arr = np.asarray(values)
    return {("max" if p == 100 else f"p{p}"): int(np.percentile(arr, p, method="higher")) for p in PERCENTILES}


def summarize(report: dict[str, Any]) -> str:
    """A short table of rows in/out and drops per split, for the terminal."""
    lines = [f"{'split':<11}{'rows in':>9}{'rows out':>10}{'p50 tok':>9}{'max tok':>9}  dropped"]
    for split in SPLITS:
        if split not in report["rows_out"]:
            continue
        lengths = report["token_lengths"].get(split, {}).get("total", {})
        drops = ", ".join(f"{k}={v}" for k, v in sorted(report["dropped"].get(split, {}).items())) or "-"
        lines.append(
            f"{split:<11}{report['rows_in'].get(split, 0):>9}{report['rows_out'][split]:>10}"
            f"{lengths.get('p50', 0):>9}{lengths.get('max', 0):>9}  {drops}"
        )
    for split, p in report.get("prompts", {}).items():
        if p.get("pruned") or p.get("over_budget") or p.get("with_value_hints"):
            recall = f", gold tables kept {p['gold_table_recall']:.0%}" if "gold_table_recall" in p else ""
            kept = ", scored as prompt_too_long" if split != "train" and p.get("over_budget") else ""
            lines.append(
                f"{split}: schema pruned in {p.get('pruned', 0)} prompts{recall}; {p.get('over_budget', 0)} over "
                f"budget{kept}; value hints in {p.get('with_value_hints', 0)}"
            )
    overlap = {k: v for k, v in report.get("test_overlap", {}).items() if v}
    if overlap:
        lines.append("rows also in train: " + ", ".join(f"{k}={v}" for k, v in overlap.items()))
    dups = {k: v for k, v in report.get("duplicates", {}).items() if v}
    if dups:
        lines.append("exact duplicates: " + ", ".join(f"{k}={v}" for k, v in dups.items()))
    return "\n".join(lines)
