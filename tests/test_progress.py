"""Progress that tells a user something within seconds: whole lines in logs, a labelled bar with the
loss on a terminal, no carriage-return animations in a file, degenerate predictions shortened."""

import io
import logging
from types import SimpleNamespace

from text2sql.evaluation.report import shorten
from text2sql.progress import LineProgress
from text2sql.training.callbacks import ProgressLinesCallback


def _state(step, max_steps=300):
    return SimpleNamespace(global_step=step, max_steps=max_steps, is_world_process_zero=True)


def test_training_lines_start_at_the_first_step_and_keep_coming(caplog):
    args = SimpleNamespace(logging_strategy="steps", logging_steps=100, logging_first_step=False)
    callback = ProgressLinesCallback(logger=logging.getLogger("t2s-test"), quiet_seconds=0.0)
    with caplog.at_level(logging.INFO, logger="t2s-test"):
        callback.on_train_begin(args, _state(0), None)
        callback.on_step_end(args, _state(1), None)
        callback.on_log(args, _state(1), None, logs={"loss": 2.5, "learning_rate": 1e-3})  # a log: its own line
        callback.on_step_end(args, _state(2), None)  # quiet_seconds=0: a line at every step between logs
        callback.on_step_end(args, _state(100), None)  # a logging step: on_log prints it
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "training: 300 steps, starting at step 0"
    assert lines[1].startswith("step 1/300 | ") and "ETA" in lines[1]  # speed and ETA after one step
    assert any(line.startswith("step 2/300 | loss 2.5000") for line in lines)  # the last loss comes along
    assert not any(line.startswith("step 100/300") for line in lines)


def test_line_progress_prints_whole_lines_only_for_long_work():
    stream = io.StringIO()
    quick = LineProgress(10, "generating", "ex", stream=stream, first=60.0)
    quick.update(10)
    quick.close()
    assert stream.getvalue() == ""  # short work stays silent
    slow = LineProgress(10, "generating", "ex", stream=stream, first=0.0, every=0.0)
    slow.update(4)
    slow.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("generating: 4/10 ex |") and "ETA" in lines[0]
    assert lines[-1].startswith("generating: 4/10 ex in") and "\r" not in stream.getvalue()


def test_line_progress_of_a_stream_of_unknown_length_shows_count_and_rate():
    stream = io.StringIO()
    bar = LineProgress(0, "checking gold SQL", "rows", stream=stream, first=0.0, every=0.0)
    bar.update(7)
    bar.close()
    first, last = stream.getvalue().splitlines()
    assert first.startswith("checking gold SQL: 7 rows so far,") and "rows/s" in first and "ETA" not in first
    assert last.startswith("checking gold SQL: 7 rows in")


def test_evaluate_writes_no_carriage_returns_to_a_file(capsys, tmp_path, tiny_llama_path):
    from text2sql.cli import main

    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_llama_path),
            "--data",
            "bundled",
            "--output",
            str(tmp_path / "o"),
            "--max-samples",
            "4",
            "--max-new-tokens",
            "3",
            "--num-examples",
            "0",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "\r" not in out and "\r" not in err
    assert out.splitlines()[0].split()[:2] == ["rows", "exec"]  # the summary table starts on its own line


def test_degenerate_predictions_are_shortened():
    degenerate = "SELECT name FROM t WHERE x = '" + "'" * 500
    short = shorten(degenerate)
    assert len(short) < 80 and "(×501)" in short and short.startswith("SELECT name FROM t WHERE x = ")
    assert shorten("SELECT 1") == "SELECT 1"
    assert shorten("x" * 5 + "abc" * 200, limit=50).endswith("(555 more characters)")
