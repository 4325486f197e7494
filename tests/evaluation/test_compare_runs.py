"""`text2sql compare`: runs side by side, per-complexity deltas, per-example wins and losses."""

import json

import pytest

from html_support import check_html
from text2sql.cli import main
from text2sql.data import bundled
from text2sql.errors import DataError
from text2sql.evaluation.compare_runs import compare_runs, format_table, render_compare_html
from text2sql.evaluation.evaluate import evaluate
from text2sql.evaluation.significance import binomial_two_sided

N = 40


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A baseline right on rows 0-19 and a fine-tuned run right on rows 10-39 (both on bundled test)."""
    root = tmp_path_factory.mktemp("runs")
    gold = [r["sql"] for r in bundled.iter_rows("test")][:N]
    wrong = "SELECT 'wrong' <b>"
    base = [g if i < 20 else wrong for i, g in enumerate(gold)]
    tuned = [g if i >= 10 else "SELEC nonsense" for i, g in enumerate(gold)]
    dirs = []
    for name, preds in (("baseline", base), ("finetuned", tuned)):
        path = root / f"{name}.sql"
        path.write_text("\n".join(preds) + "\n")
        evaluate("bundled", root / name, predictions=path, max_samples=N, progress=False)
        dirs.append(root / name)
    return dirs


def test_wins_losses_and_deltas(runs):
    c = compare_runs(runs)
    assert [r.name for r in c.runs] == ["baseline", "finetuned"]
    [pair] = c.pairs
    assert pair.common == N
    assert len(pair.wins) == 20 and len(pair.losses) == 10  # rows 20-39 won, rows 0-9 lost
    assert pair.both_right == 10 and pair.both_wrong == 0
    headline = dict(c.headline)
    assert headline["execution_accuracy"] == [0.5, 0.75]
    assert c.complexity_metric == "execution_accuracy"
    labels = [label for label, _, _ in c.by_complexity]
    assert labels and all(len(values) == 2 for _, values, _ in c.by_complexity)

    table = format_table(c)
    assert "execution_accuracy" in table and "75.0 (+25.0)" in table
    assert "finetuned vs baseline: 20 wins, 10 losses" in table


def test_compare_html_and_cli(runs, tmp_path, capsys):
    page = render_compare_html(compare_runs(runs), tmp_path / "c" / "compare.html")
    text = page.read_text()
    check_html(text)
    assert "SELECT &#39;wrong&#39; &lt;b&gt;" in text or "SELECT &#x27;wrong&#x27; &lt;b&gt;" in text
    assert "finetuned: wins" in text and "finetuned: losses" in text

    code = main(["compare", str(runs[0]), str(runs[1]), "--output", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert code == 0 and "20 wins, 10 losses" in out
    assert (tmp_path / "cli" / "compare.html").is_file()


def test_compare_refuses_folders_that_are_not_evaluations(runs, tmp_path, capsys):
    with pytest.raises(DataError, match="metrics.json"):
        compare_runs([runs[0], tmp_path])
    with pytest.raises(DataError, match="at least two"):
        compare_runs([runs[0]])
    code = main(["compare", str(runs[0]), str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error:") and "metrics.json" in err


def test_same_folder_names_are_told_apart(runs, tmp_path):
    import shutil

    other = tmp_path / "trial2" / "baseline"
    shutil.copytree(runs[0], other)
    c = compare_runs([runs[0], other])
    assert c.runs[0].name != c.runs[1].name
    assert len(c.pairs[0].wins) == 0 and c.pairs[0].both_right == 20


def test_intervals_and_mcnemar_over_the_paired_rows(runs, tmp_path, capsys):
    """20 wins and 10 losses of 40 rows: +25 points, but McNemar p = 0.099 and the interval holds 0."""
    c = compare_runs(runs)
    [pair] = c.pairs
    assert set(pair.intervals) == {key for key, _ in c.headline}  # every headline metric is scored per row here
    iv = pair.intervals["execution_accuracy"]
    assert iv.n == N and iv.delta == pytest.approx(0.25) and iv.low <= 0.0 < iv.high and not iv.significant
    assert not any(i.significant for i in pair.intervals.values())
    assert pair.mcnemar_field == "execution_match" and pair.mcnemar is not None
    assert (pair.mcnemar.wins, pair.mcnemar.losses, pair.mcnemar.ties) == (20, 10, 10)
    assert pair.mcnemar.p_value == binomial_two_sided(10, 30) == pytest.approx(0.0987, abs=1e-4)
    assert compare_runs(runs).pairs[0].intervals == pair.intervals  # seeded: the same every time

    table = format_table(c)
    assert "95% CI" in table and "within noise" in table and "significant" not in table
    assert "McNemar on execution_match over 40 rows: 20 wins, 10 losses, p=0.099 (within noise)" in table
    assert "verdict: execution_accuracy +25.0 points (95% CI " in table

    page = render_compare_html(c, tmp_path / "compare.html")
    text = page.read_text()
    check_html(text)
    assert "Is the difference real?" in text and "95% CI" in text and "within noise" in text and "p=0.099" in text

    code = main(["compare", str(runs[0]), str(runs[1]), "--output", str(tmp_path / "cli")])
    assert code == 0 and "p=0.099" in capsys.readouterr().out
    data = json.loads((tmp_path / "cli" / "compare.json").read_text())
    assert data["reference"] == "baseline" and data["headline"]["execution_accuracy"] == [0.5, 0.75]
    [p] = data["pairs"]
    assert (p["name"], p["common"], p["wins"], p["losses"]) == ("finetuned", N, 20, 10)
    assert p["intervals"]["execution_accuracy"]["delta"] == pytest.approx(0.25)
    assert p["intervals"]["execution_accuracy"]["significant"] is False
    assert p["mcnemar"]["field"] == "execution_match" and p["mcnemar"]["rows"] == N
    assert p["mcnemar"]["p_value"] == pytest.approx(0.0987, abs=1e-4) and "within noise" in p["verdict"]
    assert data["significance"]["resamples"] == 2000 and data["significance"]["confidence"] == 0.95
