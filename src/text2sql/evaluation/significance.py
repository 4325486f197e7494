"""Is a difference between two evaluation runs real, or noise? Two paired tests over the same rows.

- `paired_bootstrap`: the delta of a per-row metric's means (b - a) with a percentile interval,
  from resampling the *rows* (both runs together, so the pairing is kept) with replacement.
- `mcnemar`: the exact McNemar test on right/wrong per row: only the rows where the runs disagree
  count; under "no difference" each of them is equally likely to go either way (binomial, p = 1/2).
- `verdict`: both in one plain sentence.

Both take values already paired: element i of `a` and of `b` is the same example (match rows by id
first; `compare_runs` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
_CHUNK_CELLS = 2_000_000  # resampled indices drawn at once (2M int64 = 16 MB)


@dataclass(frozen=True)
class Interval:
    """The delta of means (b - a) over `n` paired rows, and its `confidence` percentile interval
    [low, high] from `resamples` bootstrap resamples. `significant` when the interval excludes 0."""

    delta: float
    low: float
    high: float
    significant: bool
    n: int
    confidence: float = 0.95
    resamples: int = 2000


@dataclass(frozen=True)
class McNemar:
    """Rows b gets right and a wrong (`wins`), the reverse (`losses`), the rest (`ties`); the exact
    two-sided binomial p-value on the wins and losses; `significant` when p < `alpha`."""

    wins: int
    losses: int
    ties: int
    p_value: float
    significant: bool
    alpha: float = ALPHA

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Delta of means (b - a) with a percentile bootstrap interval. `a[i]` and `b[i]` are one row's
    values in the two runs; a resample draws row indices with replacement (seeded: the same inputs
    and seed give the same interval)."""
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap needs paired values: {len(a)} against {len(b)}")
    if not a:
        raise ValueError("paired_bootstrap needs at least one row")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = len(diff)
    delta = float(diff.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        means[start : start + size] = diff[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = (float(q) for q in np.quantile(means, [tail, 1.0 - tail]))
    # The interval holds the observed delta (a constant difference resamples to itself exactly;
    # rounding in the means must not push it out).
    low, high = min(low, delta), max(high, delta)
    return Interval(delta, low, high, low > 0.0 or high < 0.0, n, confidence, resamples)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n trials with p = 1/2: twice the smaller tail,
    at most 1. Integer arithmetic, exact for any n."""
    if n == 0:
        return 1.0
    smaller = min(k, n - k)
    term, tail = 1, 0  # C(n, 0), running sum of C(n, i) for i <= smaller
    for i in range(smaller + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, (2 * tail) / (1 << n))


def mcnemar(a: Sequence[bool], b: Sequence[bool], *, alpha: float = ALPHA) -> McNemar:
    """McNemar's exact test on paired right/wrong outcomes: a win is a row b gets right and a gets
    wrong, a loss the reverse; p is the two-sided binomial p-value of the wins among the discordant
    rows."""
    if len(a) != len(b):
        raise ValueError(f"mcnemar needs paired values: {len(a)} against {len(b)}")
    wins = sum(1 for x, y in zip(a, b) if y and not x)
    losses = sum(1 for x, y in zip(a, b) if x and not y)
    ties = len(a) - wins - losses
    p = binomial_two_sided(wins, wins + losses)
    return McNemar(wins, losses, ties, p, p < alpha, alpha)


def format_points(value: float) -> str:
    return f"{round(value * 100, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def format_p(p: float) -> str:
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.2g}" if p < 0.995 else "p=1"


def format_interval(interval: Interval) -> str:
    """'+0.8 to +5.6': the interval in points."""
    return f"{format_points(interval.low)} to {format_points(interval.high)}"


def verdict(interval: Interval, test: McNemar | None = None) -> str:
    """One sentence: '+3.2 points (95% CI +0.8 to +5.6), McNemar p=0.01: a real difference', or
    '... within noise'. With both tests, a difference is real when both say so, noise when neither
    does, and borderline when they disagree."""
    text = f"{format_points(interval.delta)} points ({interval.confidence * 100:g}% CI {format_interval(interval)})"
    if test is not None:
        text += f", McNemar {format_p(test.p_value)}"
    signals = [interval.significant] + ([test.significant] if test is not None else [])
    if all(signals):
        return f"{text}: a real difference"
    if not any(signals):
        return f"{text}: within noise"
    return f"{text}: borderline (the interval and McNemar disagree)"
