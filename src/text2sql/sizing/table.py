"""Estimates as tables for the terminal: per stage before a run, and beside the actual times after it."""

from __future__ import annotations

from collections.abc import Sequence

from text2sql.sizing.budget import format_duration
from text2sql.sizing.estimate import Estimate


def _mb(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value:.0f} MB"


def _time(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def describe_machine(machine: dict) -> str:
    """`2 cores, 1 torch thread, load 1.4, no GPU`: where an estimate was measured."""
    threads = machine.get("threads")
    parts = [f"{machine.get('cores')} cores", f"{threads} torch thread{'' if threads == 1 else 's'}"]
    if machine.get("load") is not None:
        parts.append(f"load {machine['load']:.1f}")
    parts.append(f"GPU {machine['gpu']}" if machine.get("gpu") else "no GPU")
    return ", ".join(parts)


def estimate_table(estimate: Estimate, title: str = "estimate for this machine") -> str:
    """Each stage's estimated time and peak memory, then the total."""
    lines = [f"{title} ({describe_machine(estimate.machine)}):"]
    lines.append(f"  {'stage':<22}{'time':>10}{'peak memory':>13}  how")
    for s in estimate.stages:
        lines.append(f"  {s.name:<22}{_time(s.seconds):>10}{_mb(s.peak_mb):>13}  {s.detail}")
    lines.append(f"  {'total':<22}{_time(estimate.seconds):>10}{_mb(estimate.peak_mb):>13}")
    lines.extend(f"  note: {n}" for n in estimate.notes)
    return "\n".join(lines)


def comparison_table(estimate: Estimate, actual: Sequence[tuple[str, float, bool, float | None]]) -> str:
    """Estimated and actual time and peak memory per stage: `actual` holds (stage, seconds, skipped,
    peak MiB) as the run measured them. Skipped stages are left out of both totals."""
    lines = [f"{'stage':<22}{'estimated':>11}{'actual':>10}{'ratio':>8}{'est. memory':>13}{'peak memory':>13}"]
    total_est = total_act = 0.0
    for name, seconds, skipped, peak in actual:
        guess = estimate.stage(name)
        est = guess.seconds if guess is not None else None
        if skipped:
            lines.append(
                f"{name:<22}{_time(est):>11}{'skipped':>10}{'':>8}{_mb(guess.peak_mb if guess else None):>13}{'-':>13}"
            )
            continue
        ratio = f"{seconds / est:.2f}" if est else "-"
        if est:
            total_est += est
            total_act += seconds
        lines.append(
            f"{name:<22}{_time(est):>11}{_time(seconds):>10}{ratio:>8}"
            f"{_mb(guess.peak_mb if guess else None):>13}{_mb(peak):>13}"
        )
    if total_est:
        lines.append(f"{'total':<22}{_time(total_est):>11}{_time(total_act):>10}{total_act / total_est:>8.2f}")
    return "\n".join(lines)
