"""`significance`: the paired bootstrap interval, McNemar's exact test and the verdict sentence, on
cases whose answer is known; and `compare_runs` pairing rows by id before testing."""

import json
import math
import random

import pytest

from text2sql.evaluation.compare_runs import compare_runs, format_table
from text2sql.evaluation.significance import (
    Interval,
    binomial_two_sided,
    mcnemar,
    paired_bootstrap,
    verdict,
)

N = 200


def outcomes(right: int, n: int = N, offset: int = 0) -> list[bool]:
    """Right on rows offset .. offset + right - 1."""
    return [offset <= i < offset + right for i in range(n)]


def test_identical_runs_are_within_noise():
    a = [random.Random(1).random() < 0.6 for _ in range(N)]
    iv = paired_bootstrap([float(x) for x in a], [float(x) for x in a])
    assert iv.delta == 0.0 and iv.low <= 0.0 <= iv.high and not iv.significant
    assert iv.n == N and iv.confidence == 0.95 and iv.resamples == 2000
    test = mcnemar(a, a)
    assert (test.wins, test.losses, test.ties, test.p_value, test.significant) == (0, 0, N, 1.0, False)
    sentence = verdict(iv, test)
    assert sentence == "+0.0 points (95% CI +0.0 to +0.0), McNemar p=1: within noise"


def test_thirty_more_rows_of_two_hundred_is_a_real_difference():
    a, b = outcomes(100), outcomes(130)  # b is right on every row a is, and on 30 more
    iv = paired_bootstrap([float(x) for x in a], [float(x) for x in b])
    assert iv.delta == pytest.approx(0.15) and iv.significant and 0.0 < iv.low < 0.15 < iv.high
    test = mcnemar(a, b)
    assert (test.wins, test.losses, test.ties) == (30, 0, 170)
    assert test.p_value == pytest.approx(2 / 2**30) and test.significant
    sentence = verdict(iv, test)
    assert sentence.startswith("+15.0 points (95% CI +") and sentence.endswith("McNemar p<0.001: a real difference")


def test_two_more_rows_of_two_hundred_is_within_noise():
    a, b = outcomes(100), outcomes(102)
    iv = paired_bootstrap([float(x) for x in a], [float(x) for x in b])
    assert iv.delta == pytest.approx(0.01) and iv.low <= 0.0 < iv.high and not iv.significant
    test = mcnemar(a, b)
    assert (test.wins, test.losses) == (2, 0) and test.p_value == 0.5 and not test.significant
    assert verdict(iv, test).endswith("McNemar p=0.5: within noise")


def test_worse_run_is_a_real_difference_downwards():
    a, b = outcomes(130), outcomes(100)
    iv = paired_bootstrap([float(x) for x in a], [float(x) for x in b])
    assert iv.delta == pytest.approx(-0.15) and iv.high < 0.0 and iv.significant
    test = mcnemar(a, b)
    assert (test.wins, test.losses) == (0, 30) and test.significant
    assert verdict(iv, test).startswith("-15.0 points")


def test_exact_binomial_p_value_by_hand():
    # 8 wins, 2 losses: P(X <= 2) = (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 56 / 1024; two-sided: 0.109375
    a = [False] * 8 + [True] * 2 + [True] * 5
    b = [True] * 8 + [False] * 2 + [True] * 5
    test = mcnemar(a, b)
    assert (test.wins, test.losses, test.ties) == (8, 2, 5)
    assert test.p_value == 0.109375 and not test.significant
    assert binomial_two_sided(2, 10) == binomial_two_sided(8, 10) == 0.109375
    assert binomial_two_sided(5, 10) == 1.0  # capped at 1
    assert binomial_two_sided(0, 0) == 1.0
    assert binomial_two_sided(0, 6) == 2 / 64
    # 9 wins, 1 loss: 2 * 11 / 1024
    assert binomial_two_sided(9, 10) == pytest.approx(0.021484375)


def test_binomial_is_exact_for_tens_of_thousands():
    p = binomial_two_sided(10_000, 20_500)
    # the normal approximation (continuity corrected) agrees to a few digits at this size
    z = (abs(10_000 - 10_250) - 0.5) / math.sqrt(20_500 / 4)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=0.02)
    assert 0.0 < p < 0.001
    assert binomial_two_sided(0, 5000) == 0.0  # underflows to 0, no OverflowError


def test_bootstrap_is_deterministic_with_a_seed():
    rng = random.Random(7)
    a = [rng.random() for _ in range(300)]
    b = [x + rng.gauss(0.02, 0.2) for x in a]
    first = paired_bootstrap(a, b, seed=3)
    assert paired_bootstrap(a, b, seed=3) == first
    other = paired_bootstrap(a, b, seed=4)
    assert other.delta == first.delta and (other.low, other.high) != (first.low, first.high)
    wider = paired_bootstrap(a, b, seed=3, confidence=0.99, resamples=500)
    assert wider.low < first.low and wider.high > first.high and wider.resamples == 500


def test_bootstrap_refuses_unpaired_or_empty_values():
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0], [1.0], confidence=95)
    with pytest.raises(ValueError, match="paired"):
        mcnemar([True], [])


def test_verdict_without_mcnemar_and_when_the_tests_disagree():
    iv = Interval(0.032, 0.008, 0.056, True, 500)
    assert verdict(iv) == "+3.2 points (95% CI +0.8 to +5.6): a real difference"
    noisy = mcnemar([False] * 3, [True] * 3)  # p = 0.25
    assert verdict(iv, noisy).endswith("McNemar p=0.25: borderline (the interval and McNemar disagree)")


# ------------------------------------------------------------------ pairing by id in compare_runs


def write_run(folder, rows, *, execution=True):
    """An evaluation folder by hand: metrics.json and predictions.jsonl with `rows` (id, right)."""
    folder.mkdir(parents=True)
    records = []
    for key, right in rows:
        records.append(
            {
                "id": key,
                "question": f"question {key}?",
                "gold_sql": "SELECT 1",
                "predicted_sql": "SELECT 1" if right else "SELECT 2",
                "error": "" if right else "wrong result",
                "exact_match": float(right),
                "f1_score": 1.0 if right else 0.25,
                "execution_match": float(right) if execution else None,
            }
        )
    metrics = {
        "num_examples": len(records),
        "execution_accuracy": sum(r["exact_match"] for r in records) / len(records) if execution else None,
        "exact_match": sum(r["exact_match"] for r in records) / len(records),
        "f1_score": sum(r["f1_score"] for r in records) / len(records),
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_compare_pairs_rows_by_id_in_any_order_over_common_ids(tmp_path):
    ref_rows = [(f"q{i}", i < 100) for i in range(N)]
    # the other run: right on 30 more rows, in another order, plus 25 rows the reference lacks (all right)
    other_rows = [(f"q{i}", i < 130) for i in range(N)] + [(f"extra{i}", True) for i in range(25)]
    random.Random(0).shuffle(other_rows)
    c = compare_runs([write_run(tmp_path / "ref", ref_rows), write_run(tmp_path / "new", other_rows)])
    [pair] = c.pairs
    assert pair.common == N
    assert set(pair.intervals) == {"execution_accuracy", "exact_match", "f1_score"}
    iv = pair.intervals["execution_accuracy"]
    assert iv.n == N and iv.delta == pytest.approx(0.15) and iv.significant  # the extra rows do not count
    assert pair.intervals["f1_score"].delta == pytest.approx(0.15 * 0.75)
    assert pair.mcnemar_field == "execution_match"
    assert pair.mcnemar is not None and (pair.mcnemar.wins, pair.mcnemar.losses, pair.mcnemar.ties) == (30, 0, 170)
    # the same rows in the reference's own order give the same interval: pairing is by id, not position
    same = compare_runs([tmp_path / "ref", write_run(tmp_path / "sorted", sorted(other_rows))])
    assert same.pairs[0].intervals["execution_accuracy"].delta == iv.delta

    table = format_table(c)
    assert "new vs ref: 30 wins, 0 losses" in table
    assert "McNemar on execution_match over 200 rows: 30 wins, 0 losses, p<0.001 (significant)" in table
    assert "verdict: execution_accuracy +15.0 points (95% CI +" in table and "a real difference" in table


def test_compare_without_execution_tests_exact_match(tmp_path):
    ref = write_run(tmp_path / "ref", [(f"q{i}", i < 100) for i in range(N)], execution=False)
    new = write_run(tmp_path / "new", [(f"q{i}", i < 102) for i in range(N)], execution=False)
    [pair] = compare_runs([ref, new]).pairs
    assert "execution_accuracy" not in pair.intervals and not pair.intervals["exact_match"].significant
    assert pair.mcnemar_field == "exact_match" and pair.mcnemar is not None and pair.mcnemar.p_value == 0.5
    assert pair.verdict().startswith("exact_match +1.0 points") and pair.verdict().endswith("within noise")


def test_compare_with_no_common_ids_has_no_intervals(tmp_path):
    ref = write_run(tmp_path / "ref", [("a", True), ("b", False)])
    new = write_run(tmp_path / "new", [("c", True), ("d", True)])
    c = compare_runs([ref, new])
    assert c.pairs[0].intervals == {} and c.pairs[0].mcnemar is None and c.pairs[0].verdict() == ""
    table = format_table(c)
    assert "CI" not in table and "McNemar" not in table and "shares no example ids" in table
