"""`text2sql tune`: a real 3-trial study on a tiny Llama (trials.csv, best.yaml, validation-only
scoring, sampled values reaching the trainer, resume), the study's bookkeeping with stand-in trials
(failures, interrupts, --force), and bad search spaces as one-line errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cli_support import assert_one_line_error, run_cli
from text2sql.cli import main
from text2sql.config import load_config
from text2sql.tuning.trial import TrialOutcome

pytest.importorskip("optuna")

FAST = {
    "model": {"name_or_path": "tiny:llama"},
    "lora": {"method": "full"},  # the tiny model is random: LoRA on it would learn nothing
    "data": {"max_samples": {"train": 32, "validation": 16, "test": 8}},
    "training": {"max_steps": 2, "logging_steps": 1},
    "evaluation": {"max_new_tokens": 16},
    "callbacks": {"progress": "lines"},
}
SPACE = {
    "training.learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "training.weight_decay": [0.0, 0.1],
}


def write_config(folder: Path, n_trials: int = 3, space=None) -> Path:
    raw = {
        "output_dir": str(folder / "run"),
        **FAST,
        "tuning": {"n_trials": n_trials, "sampler": "random", "seed": 7, "search_space": space or SPACE},
    }
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def read_trials(root: Path) -> list[dict[str, str]]:
    with (root / "tuning" / "trials.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def best_row(rows: list[dict[str, str]]) -> dict[str, str]:
    done = [r for r in rows if r["state"] == "COMPLETE"]
    top = max(float(r["execution_accuracy"]) for r in done)
    return min((r for r in done if float(r["execution_accuracy"]) == top), key=lambda r: int(r["number"]))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One real study of 3 trials, run through the command line."""
    folder = tmp_path_factory.mktemp("tune")
    cfg_path = write_config(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["tune", str(cfg_path)])
    return SimpleNamespace(code=code, out=out.getvalue(), cfg=cfg_path, run=folder / "run")


def test_study_writes_trials_csv_table_and_best_config(study):
    assert study.code == 0, study.out
    rows = read_trials(study.run)
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert all(r["state"] == "COMPLETE" for r in rows)
    for r in rows:
        assert 1e-4 <= float(r["training.learning_rate"]) <= 1e-2
        assert float(r["training.weight_decay"]) in (0.0, 0.1)
        assert 0.0 <= float(r["execution_accuracy"]) <= 1.0 and float(r["loss"]) > 0
    # one progress line per trial, then the table sorted by the metric
    assert re.findall(r"^trial (\d+/\d+) \(#(\d+)\)", study.out, flags=re.M) == [
        ("1/3", "0"),
        ("2/3", "1"),
        ("3/3", "2"),
    ]
    table = study.out.split("trial  state", 1)[1]
    assert len(re.findall(r"^#\d+ +complete ", table, flags=re.M)) == 3 and "best config:" in table

    best = best_row(rows)
    best_yaml = study.run / "tuning" / "best.yaml"
    assert best_yaml.read_text().splitlines()[0] == f"# text2sql run {best_yaml}"
    cfg = load_config(best_yaml)
    assert cfg.output_dir == str(study.run)  # `text2sql run best.yaml` reuses the prepared data
    assert math.isclose(cfg.training["learning_rate"], float(best["training.learning_rate"]), rel_tol=1e-9)
    assert cfg.training["weight_decay"] == float(best["training.weight_decay"])
    assert f"best: trial #{best['number']}," in study.out


def test_trials_are_scored_on_validation_and_share_one_prepared_dataset(study):
    for n in range(3):
        trial = study.run / "tuning" / f"trial-{n}"
        metrics = json.loads((trial / "eval" / "validation" / "metrics.json").read_text())
        assert metrics["run"]["data"]["split"] == "validation"
        assert metrics["num_examples"] == 16
        assert list((trial / "eval").iterdir()) == [trial / "eval" / "validation"]
        assert (trial / "data").resolve() == (study.run / "data").resolve()
        assert not (trial / "checkpoints").exists()
    assert not (study.run / "eval").exists()  # the test split was never scored
    assert "test split is not used" in study.out


def test_sampled_values_reach_the_trainer(study):
    for r in read_trials(study.run):
        trial = study.run / "tuning" / f"trial-{r['number']}"
        trained_with = json.loads((trial / "model" / "stage.json").read_text())["depends_on"]["training"]
        assert math.isclose(trained_with["learning_rate"], float(r["training.learning_rate"]), rel_tol=1e-9)
        assert trained_with["weight_decay"] == float(r["training.weight_decay"])
        assert load_config(trial / "config.yaml").training["learning_rate"] == trained_with["learning_rate"]


def test_a_different_search_space_is_refused_without_force(study, capsys):
    code, _, err = run_cli(capsys, "tune", study.cfg, "tuning.search_space.training.weight_decay=[0.0, 0.2]")
    assert_one_line_error(code, err, "different config", "tuning.search_space.training.weight_decay", "--force")
    code, _, err = run_cli(capsys, "tune", study.cfg, "training.max_steps=3")
    assert_one_line_error(code, err, "different config", "training.max_steps", "--force")
    assert len(read_trials(study.run)) == 3


def test_the_same_config_resumes_the_study(study, capsys):  # last: it adds a trial to the study
    code, out, _ = run_cli(capsys, "tune", study.cfg)
    assert code == 0 and "3 of 3 trials already done; nothing to run" in out
    assert len(read_trials(study.run)) == 3
    # n_trials counts the whole study: 4 means one more trial; the base value of a tuned key is not
    # part of the study's identity
    code, out, err = run_cli(capsys, "tune", study.cfg, "--n-trials", "4", "training.learning_rate=0.5")
    assert code == 0, err
    assert "resuming: 3 of 4" in out and "trial 4/4 (#3)" in out
    rows = read_trials(study.run)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"] and rows[3]["state"] == "COMPLETE"
    assert (study.run / "tuning" / "trial-3" / "eval" / "validation" / "metrics.json").is_file()


# ------------------------------------------------------------------------------ stand-in trials


def fake_trials(monkeypatch, fail_on=(), interrupt_on=()):
    """Replace training + evaluation with a score of weight_decay, so the study logic runs in a blink."""
    calls = []

    def run_trial(cfg, data_dir, *, model=None, trial=None, pruning=False):
        n = len(calls)
        calls.append(cfg)
        Path(cfg.output_dir).mkdir(parents=True)  # a trial folder is new, never reused
        assert Path(data_dir).name == "data" and cfg.output_dir.endswith(f"trial-{trial.number}")
        if n in interrupt_on:
            raise KeyboardInterrupt
        if n in fail_on:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return TrialOutcome(value=cfg.training["weight_decay"], metrics={"loss": 1.0}, path=Path(cfg.output_dir))

    monkeypatch.setattr("text2sql.tuning.study.run_trial", run_trial)
    return calls


def test_a_failed_trial_is_recorded_and_the_study_goes_on(tmp_path, capsys, monkeypatch):
    fake_trials(monkeypatch, fail_on=(1,))
    code, out, err = run_cli(capsys, "tune", write_config(tmp_path, n_trials=3))
    assert code == 0, err
    rows = read_trials(tmp_path / "run")
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "out of memory" in rows[1]["error"]
    assert "fail (RuntimeError: CUDA out of memory" in out
    best = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: float(r["execution_accuracy"]))
    assert load_config(tmp_path / "run" / "tuning" / "best.yaml").training["weight_decay"] == float(
        best["training.weight_decay"]
    )


def test_all_trials_failing_is_one_line_and_non_zero(tmp_path, capsys, monkeypatch):
    fake_trials(monkeypatch, fail_on=(0, 1))
    code, _, err = run_cli(capsys, "tune", write_config(tmp_path, n_trials=2))
    assert_one_line_error(code, err, "no trial", "completed", "out of memory", "trials.csv")
    assert [r["state"] for r in read_trials(tmp_path / "run")] == ["FAIL", "FAIL"]
    assert not (tmp_path / "run" / "tuning" / "best.yaml").exists()


def test_an_interrupted_trial_does_not_count_toward_n_trials(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path, n_trials=2)
    fake_trials(monkeypatch, interrupt_on=(1,))
    code, _, err = run_cli(capsys, "tune", cfg)
    assert code == 130 and "interrupted" in err
    fake_trials(monkeypatch)
    code, out, _ = run_cli(capsys, "tune", cfg)
    assert code == 0 and "resuming: 1 of 2" in out
    rows = read_trials(tmp_path / "run")
    assert [(r["state"], r["error"]) for r in rows] == [("COMPLETE", ""), ("FAIL", "interrupted"), ("COMPLETE", "")]


def test_force_starts_a_new_study(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path, n_trials=2)
    fake_trials(monkeypatch)
    assert run_cli(capsys, "tune", cfg)[0] == 0
    other = {**SPACE, "training.weight_decay": [0.2, 0.3]}
    cfg = write_config(tmp_path, n_trials=1, space=other)
    code, _, err = run_cli(capsys, "tune", cfg)
    assert_one_line_error(code, err, "different config", "--force")
    code, _, err = run_cli(capsys, "tune", cfg, "--force")
    assert code == 0, err
    rows = read_trials(tmp_path / "run")
    assert len(rows) == 1 and float(rows[0]["training.weight_decay"]) in (0.2, 0.3)
    assert sorted(p.name for p in (tmp_path / "run" / "tuning").glob("trial-*")) == ["trial-0"]


def test_default_space_and_direction(tmp_path, capsys, monkeypatch):
    fake_trials(monkeypatch)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run"), **FAST, "training": {"learning_rate": 6e-3}}))
    code, out, err = run_cli(capsys, "tune", path, "tuning.n_trials=1", "tuning.metric=loss")
    assert code == 0, err
    # centred on the configured rate; no LoRA keys for full fine-tuning; loss is minimized
    assert "minimize loss over the default space: training.learning_rate float [0.0006, 0.06] log" in out
    assert load_config(None, ["tuning.metric=f1_score"]).tuning.resolved_direction() == "maximize"
    lora = load_config(None, ["finetune.method=lora"])
    from text2sql.config.search import default_space

    assert set(default_space(lora)) == {"training.learning_rate", "finetune.r", "finetune.dropout"}


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        (
            "tuning.search_space.training.learnin_rate={type: float, low: 1.0e-5, high: 1.0e-3}",
            ["tuning.search_space.training.learnin_rate", "did you mean 'training.learning_rate'"],
        ),
        ("tuning.search_space.lora.rr=[8, 16]", ["did you mean 'finetune.r'"]),
        (
            "tuning.search_space.training.learning_rate={type: float, low: 1.0e-3, high: 1.0e-5}",
            ["low (0.001) must be below high"],
        ),
        (
            "tuning.search_space.training.learning_rate={type: float, low: 0, high: 1.0e-3, log: true}",
            ["log: true needs low > 0"],
        ),
        (
            "tuning.search_space.training.learning_rate={low: 1.0e-5, high: 1.0e-3}",
            ["give type: float, int or categorical"],
        ),
        ("tuning.search_space.training.learning_rate={type: float, lo: 1.0e-5, high: 1.0e-3}", ["did you mean 'low'"]),
        (
            "tuning.search_space.training.per_device_train_batch_size={type: int, low: 0, high: 8}",
            ["low 0 is not a valid training.per_device_train_batch_size"],
        ),
        ("tuning.search_space.training.seed={type: int, low: 1, high: 10, step: 4}", ["whole number of steps"]),
        (
            "tuning.search_space.finetune.dropout={type: float, low: 0.0, high: 1.0}",
            ["high 1.0 is not a valid finetune.dropout"],
        ),
        ("tuning.search_space.data.max_length=[128, 256]", ["changes data preparation"]),
        ("tuning.search_space.evaluation.split=[validation, test]", ["validation split"]),
        ("tuning.search_space.finetune.r=[8, 16]", ["no effect with finetune.method=full"]),
        ("tuning.search_space.training.weight_decay=0.1", ["set it in the config instead"]),
        ("tuning.search_space.finetune.method=[]", ["choices must be a non-empty list"]),
        ("tuning.metric=execution_acc", ["did you mean 'execution_accuracy'"]),
        ("tuning.pruner=median", ["training.eval_strategy"]),
    ],
)
def test_bad_tuning_config_is_one_line(tmp_path, capsys, override, needles):
    code, _, err = run_cli(capsys, "tune", f"output_dir={tmp_path / 'run'}", "finetune.method=full", override)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "run").exists()


def test_tune_needs_a_config(capsys):
    code, _, err = run_cli(capsys, "tune")
    assert_one_line_error(code, err, "needs a config")


def test_missing_optuna_names_the_extra(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    code, _, err = run_cli(capsys, "tune", f"output_dir={tmp_path / 'run'}")
    assert_one_line_error(code, err, "pip install 'text2sql[tune]'")


def test_a_worker_elsewhere_keeps_its_trial_until_its_heartbeat_stops(tmp_path, capsys, monkeypatch):
    import time

    import optuna

    cfg = write_config(tmp_path, n_trials=2)
    fake_trials(monkeypatch)
    assert run_cli(capsys, "tune", cfg)[0] == 0
    storage = f"sqlite:///{tmp_path / 'run' / 'tuning' / 'study.db'}"
    study = optuna.load_study(study_name="run", storage=storage)
    alive, dead = study.ask(), study.ask()
    for trial, beat in ((alive, time.time()), (dead, time.time() - 3600)):
        trial.set_user_attr("worker", "another-machine:12345")
        trial.set_user_attr("heartbeat", beat)
    code, out, err = run_cli(capsys, "tune", cfg, "tuning.n_trials=4")
    assert code == 0, err
    assert f"trial #{dead.number} was cut off (its worker stopped)" in out
    states = {t.number: t.state.name for t in optuna.load_study(study_name="run", storage=storage).trials}
    assert states[alive.number] == "RUNNING" and states[dead.number] == "FAIL"
    # 2 done before + the live worker's running trial + 1 run now = 4: the dead one's slot was refilled.
    assert sum(s == "COMPLETE" for s in states.values()) == 3
