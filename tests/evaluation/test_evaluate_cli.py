"""`text2sql evaluate` on the command line."""

import json

import pytest

from text2sql.cli import main
from text2sql.data import bundled


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "gold.sql"
    path.write_text("\n".join(r["sql"] for r in bundled.iter_rows("test")) + "\n")
    return path


def test_predictions_table_samples_and_report(capsys, tmp_path, gold):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--predictions",
        str(gold),
        "--data",
        "bundled",
        "--output",
        str(tmp_path / "out"),
        "--num-examples",
        "2",
    )
    assert code == 0
    assert out.count("-> correct") == 2
    lines = out.splitlines()
    all_line = next(line for line in lines if line.startswith("all"))
    assert "365" in all_line and "100.0" in all_line
    assert any(line.strip().startswith("nested") for line in lines)
    assert f"report: {tmp_path / 'out' / 'report.html'}" in out
    assert "loss and perplexity need a model" in out


def test_the_same_evaluation_again_is_up_to_date_and_another_needs_force(capsys, tmp_path, gold):
    args = [
        "evaluate",
        "--predictions",
        str(gold),
        "--data",
        "bundled",
        "--output",
        str(tmp_path / "out"),
        "--num-examples",
        "0",
    ]
    code, out, _ = run(capsys, *args, "--max-samples", "3")
    assert code == 0 and "up to date" not in out
    first = (tmp_path / "out" / "metrics.json").stat().st_mtime_ns
    code, out, _ = run(capsys, *args, "--max-samples", "3")
    assert code == 0 and "evaluation up to date, skipped" in out and "all" in out  # the summary still shows
    assert (tmp_path / "out" / "metrics.json").stat().st_mtime_ns == first
    code, _, err = run(capsys, *args, "--max-samples", "4")  # other settings: another evaluation
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(lines) == 1 and "--force" in lines[0] and "max_samples" in lines[0]
    assert "Traceback" not in err and (tmp_path / "out" / "metrics.json").stat().st_mtime_ns == first
    code, out, _ = run(capsys, *args, "--max-samples", "3", "--force")
    assert code == 0 and "up to date" not in out
    assert (tmp_path / "out" / "metrics.json").stat().st_mtime_ns != first


def test_model_and_predictions_are_exclusive(capsys, tmp_path, gold):
    with pytest.raises(SystemExit):
        main(
            [
                "evaluate",
                "--model",
                "tiny:llama",
                "--predictions",
                str(gold),
                "--data",
                "bundled",
                "--output",
                str(tmp_path / "o"),
            ]
        )
    assert "not allowed with" in capsys.readouterr().err


def test_vllm_backend_names_the_extra(capsys, tmp_path):
    code, _, err = run(
        capsys,
        "evaluate",
        "--model",
        "tiny:llama",
        "--data",
        "bundled",
        "--output",
        str(tmp_path / "o"),
        "--backend",
        "vllm",
    )
    assert code != 0 and "text2sql[vllm]" in err


def test_model_on_the_command_line(capsys, tmp_path, tiny_llama_path):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--model",
        str(tiny_llama_path),
        "--data",
        "bundled",
        "--split",
        "validation",
        "--output",
        str(tmp_path / "out"),
        "--max-samples",
        "3",
        "--max-new-tokens",
        "3",
        "--batch-size",
        "2",
        "--num-examples",
        "1",
        "--no-loss",
    )
    assert code == 0 and "perplexity" not in out and "[airline-" in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["num_examples"] == 3 and metrics["run"]["data"]["split"] == "validation"
    assert metrics["run"]["generation"]["batch_size"] == 2 and "loss" not in metrics
