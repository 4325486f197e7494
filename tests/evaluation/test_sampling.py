"""evaluate --num-samples k: greedy execution accuracy, maj@k and pass@k side by side, with cost."""

from __future__ import annotations

from text2sql.evaluation.evaluate import evaluate, format_summary


def test_voting_over_samples_reports_maj_and_pass_at_k(tiny_llama_path, tmp_path):
    kwargs = dict(model=str(tiny_llama_path), max_samples=12, max_new_tokens=12, num_samples=4, progress=False)
    result = evaluate("bundled", tmp_path / "a", temperature=1.5, compute_loss=False, **kwargs)
    m = result.metrics
    assert m["sampling"]["num_samples"] == 4 and m["sampling"]["tokens_per_question"] > 0
    assert m["sampling"]["seconds_per_question"] >= m["sampling"]["greedy_seconds_per_question"]
    assert m["pass_at_k"] >= m["maj_at_k"] and m["pass_at_k"] >= m["execution_accuracy"]
    for s in result.scored:
        assert s.candidates == 4 and 0 <= s.support <= 4
        assert s.pass_match >= max(s.voted_match, s.execution_match)
    for group in m["by_complexity"].values():
        assert "maj_at_k" in group and "pass_at_k" in group
    assert "maj@4 %" in format_summary(m) and "4 candidates per question" in format_summary(m)
    again = evaluate("bundled", tmp_path / "b", temperature=1.5, compute_loss=False, **kwargs)
    assert [s.voted_sql for s in again.scored] == [s.voted_sql for s in result.scored]  # seeded


def test_one_sample_is_greedy_only(tiny_llama_path, tmp_path):
    result = evaluate("bundled", tmp_path / "a", model=str(tiny_llama_path), max_samples=4, max_new_tokens=8,
                      compute_loss=False, progress=False)  # fmt: skip
    assert "maj_at_k" not in result.metrics and "sampling" not in result.metrics
    assert all(s.voted_sql is None for s in result.scored)
