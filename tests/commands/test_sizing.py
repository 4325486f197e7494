"""A run sized before it starts: budgets, estimates from a probe (synthetic and real), CPU settings, what
a budget cuts and in which order, and `init`, `validate` and `run` printing and comparing estimates."""

import csv
import math
import mmap
import sqlite3
import time

import pytest
import torch

from cli_support import assert_one_line_error, run_cli
from text2sql.config import load_config
from text2sql.errors import ConfigError
from text2sql.inference.decoding import decoding_steps
from text2sql.sizing import load_estimate, parse_budget
from text2sql.sizing.estimate import estimate_generation, estimate_run, training_steps
from text2sql.sizing.fit import cpu_settings, fit_budget
from text2sql.sizing.probe import GenerationProbe, Lengths, Probe, ProbeError, TrainProbe, run_probe

# ------------------------------------------------------------------------------------------ budgets


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("2h", 7200)])
def test_budgets_read_as_people_write_them(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["30", "abc", "0m", "30x", "m30", ""])
def test_a_budget_without_a_unit_is_refused(text):
    with pytest.raises(ConfigError, match="30m"):
        parse_budget(text)


# ------------------------------------------------------------------------------ a synthetic probe


def lengths(prompt, target):
    return Lengths(prompt=[prompt] * 50, target=[target] * 50, total=[prompt + target] * 50)


def synthetic(**generation):
    """A probe with round numbers: 0.01 s per training token, 100-token prompts (50 compact), 20-token SQL."""
    sql, compact = lengths(100, 20), lengths(50, 20)
    gen = dict(
        load_seconds=2.0,
        prefill_seconds_per_token=0.001,
        decode=[(1, 0.05), (8, 0.1)],
        loss_seconds_per_token=0.001,
        audit_seconds_per_row=0.001,
        score_seconds_per_row=0.002,
        model_bytes=500 * 2**20,
        batch_tokens=8 * 130,
        rss_before_mb=1000.0,
        peak_mb=1200.0,
    )
    gen.update(generation)
    return Probe(
        created=time.time(),
        machine={"threads": 1, "cores": 2, "load": 1.0, "gpu": None},
        open_seconds=1.0,
        prepare_seconds=2.0,
        prepare_scale=1.0,
        prepare_peak_mb=500.0,
        rows={"train": 800, "validation": 100, "test": 400},
        lengths={
            "sql": dict.fromkeys(("train", "validation", "test"), sql),
            "compact": dict.fromkeys(("train", "validation", "test"), compact),
        },
        train=TrainProbe(
            build_seconds=5.0,
            start_seconds=0.0,
            step_seconds=[1.2],
            step_tokens=[120],
            micro_tokens=120,
            eval_seconds_per_token=0.001,
            save_seconds=0.5,
            parameters=135_000_000,
            trainable=5_000_000,
            rss_before_mb=1000.0,
            peak_mb=1500.0,
        ),
        generation=GenerationProbe(**gen),
    )


def config(*overrides):
    return load_config(
        None,
        [
            "model.name_or_path=smollm2-135m-instruct",
            "finetune.method=lora",
            "data.schema_format=sql",
            "training.per_device_train_batch_size=8",
            "training.num_train_epochs=1",
            "evaluation.baseline=true",
            "evaluation.max_new_tokens=256",
            *overrides,
        ],
    )


def seconds(estimate, name):
    return estimate.stage(name).seconds


def test_the_estimate_has_every_stage_of_the_run_in_order():
    est = estimate_run(config(), synthetic())
    assert [s.name for s in est.stages] == [
        "prepare",
        "train",
        "merge",
        "evaluate finetuned",
        "evaluate baseline",
        "compare",
    ]
    assert est.seconds == pytest.approx(sum(s.seconds for s in est.stages))
    assert all(s.peak_mb for s in est.stages if s.name != "compare")


def test_training_time_is_steps_times_the_padded_tokens_of_a_step():
    probe = synthetic()
    assert training_steps(config(), 800) == 100  # one epoch of 800 rows, 8 a step
    one = seconds(estimate_run(config(), probe), "train")
    two = seconds(estimate_run(config("training.max_steps=200"), probe), "train")
    # Each step: 8 rows × 120 tokens × 0.01 s; everything else stays the same.
    assert two - one == pytest.approx(100 * 8 * 120 * 0.01)
    shorter = seconds(estimate_run(config("data.schema_format=compact"), probe), "train")
    assert shorter < one  # compact prompts: fewer tokens a step


def test_an_untuned_model_generates_to_the_limit_and_a_tuned_one_to_the_sql():
    est = estimate_run(config(), synthetic())
    tuned, untuned = seconds(est, "evaluate finetuned"), seconds(est, "evaluate baseline")
    assert untuned > 5 * tuned
    fewer = estimate_run(config("evaluation.max_samples=100"), synthetic())
    assert seconds(fewer, "evaluate finetuned") < tuned


def test_decode_cost_follows_the_batch_size():
    probe = synthetic()
    gen = probe.generation
    assert gen.decode_seconds(1) == pytest.approx(0.05)
    assert gen.decode_seconds(8) == pytest.approx(0.1)
    assert gen.decode_seconds(15) == pytest.approx(0.1 + 7 * 0.05 / 7)


def test_greedy_answers_over_a_shared_schema_pay_for_it_once_and_keep_their_batch_full():
    """Evaluation's default for decoders: each database's prefix prefilled once, rows decoding several
    batches' worth at a time and joining as others finish (`inference.decoding`)."""
    shared = Lengths(prompt=[100] * 50, target=[20] * 50, total=[120] * 50, shared=[80] * 50, prefixes=[80])
    probe = synthetic(split_greedy=True)
    probe.lengths["sql"] = dict.fromkeys(("train", "validation", "test"), shared)
    cfg = config("evaluation.batch_size=8")
    gen, rows = probe.generation, 400
    fast, largest = estimate_generation(cfg, probe, shared, rows, untuned=False)
    slots = 8 * (100 + 256) // (20 + 256)  # the rows that fit where 8 whole prompts would
    steps = decoding_steps([20] * rows, slots)
    assert fast == pytest.approx(0.001 * (rows * 20 + 80) + sum(gen.decode_seconds(n) for n in steps))
    assert len(steps) == math.ceil(rows / slots) * 19 and largest == slots * (20 + 256) + 80
    probe.generation.split_greedy = False  # the same prompts through batches of 8 whole prompts
    slow, _ = estimate_generation(cfg, probe, shared, rows, untuned=False)
    assert slow == pytest.approx(rows // 8 * (0.001 * 8 * 100 + 19 * gen.decode_seconds(8)))
    assert fast < slow


def test_peak_memory_grows_with_the_largest_batch():
    small = estimate_run(config("training.per_device_train_batch_size=1"), synthetic()).stage("train").peak_mb
    large = estimate_run(config("training.per_device_train_batch_size=16"), synthetic()).stage("train").peak_mb
    assert 1500 <= small < large


def test_cpu_settings_shorten_prompts_answers_and_the_test_sample():
    cfg, changes = cpu_settings(config(), synthetic())
    keys = [c.key for c in changes]
    assert keys == [
        "data.schema_format",
        "evaluation.max_new_tokens",
        "evaluation.loss_samples",
        "evaluation.max_samples",
    ]
    assert (
        cfg.data.schema_format == "compact" and cfg.evaluation.max_new_tokens == 32
    )  # 20 tokens × 1.25, rounded to 16
    assert cfg.evaluation.max_samples == 200 and all(c.reason for c in changes)


def test_a_budget_gives_up_what_costs_the_model_least_first():
    probe = synthetic()
    full = estimate_run(config(), probe).seconds
    sized = fit_budget(config(), probe, full * 0.3)
    keys = [c.key for c in sized.changes]
    assert keys[:4] == ["data.schema_format", "evaluation.loss_samples", "evaluation.max_samples", "training.max_steps"]
    assert sized.fits and sized.estimate.seconds <= full * 0.3
    assert sized.cfg.evaluation.baseline  # still scored: the steps were enough
    assert f"training.max_steps={sized.cfg.training['max_steps']}" in sized.overrides()
    # A budget the full run fits changes nothing.
    assert fit_budget(config(), probe, full * 2).changes == []


def test_the_baseline_goes_before_training_falls_under_its_floor():
    probe = synthetic()
    smallest = fit_budget(config(), probe, 1.0)  # one second: nothing fits
    keys = [c.key for c in smallest.changes]
    assert "evaluation.baseline" in keys and smallest.cfg.training["max_steps"] == 5
    assert not smallest.fits and any("does NOT fit" in line for line in smallest.summary())


# --------------------------------------------------------------------------------- the real probe


@pytest.fixture
def orders(tmp_path):
    """A user's data: 90 distinct questions with their SQL on one SQLite database."""
    db = tmp_path / "orders.sqlite"
    cities = ["Paris", "Rome", "Oslo", "Lima", "Kyiv", "Bern", "Riga", "Nice", "Bonn", "Pisa"]
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, city TEXT, total REAL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(i, cities[i % 10], i * 3.5) for i in range(1, 41)])
    rows = [(f"How many orders come from {c}?", f"SELECT COUNT(*) FROM orders WHERE city = '{c}'") for c in cities]
    rows += [(f"What is the total of order {i}?", f"SELECT total FROM orders WHERE id = {i}") for i in range(1, 41)]
    rows += [(f"Which orders have a total above {n}?", f"SELECT id FROM orders WHERE total > {n}") for n in range(40)]
    data = tmp_path / "orders.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("input_text", "sql"), *rows])
    return data, db


def test_the_probe_measures_the_real_model_on_the_real_data(orders, tmp_path, monkeypatch):
    import text2sql.sizing.probe as probe_module

    data, db = orders
    cfg = load_config(
        None,
        [
            f"data.train={data}",
            f"data.db={db}",
            "data.schema_format=compact",
            "finetune.method=full",
            "model.threads=1",
            f"output_dir={tmp_path / 'run'}",
        ],
    )
    # The training steps are timed at the run's thread count, not torch's default of every core.
    threads, train_probe = [], probe_module._probe_training
    monkeypatch.setattr(
        probe_module, "_probe_training", lambda *a: threads.append(torch.get_num_threads()) or train_probe(*a)
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        probe = run_probe(cfg)
    finally:
        torch.set_num_threads(before)
    assert threads == [1]
    assert probe.rows["train"] + probe.rows["validation"] + probe.rows["test"] == 90
    assert probe.train.step_seconds and probe.train.seconds_per_token > 0 and probe.train.trainable > 0
    assert all(s > 0 for _, s in probe.generation.decode) and probe.generation.prefill_seconds_per_token > 0
    assert probe.lengths["compact"]["test"].prompt and probe.generation.model_bytes > 0
    # One database: every test prompt shares its system prompt and schema with the others.
    test = probe.lengths["compact"]["test"]
    assert len(test.prefixes) == 1 and test.shared == [test.prefixes[0]] * len(test.prompt)
    assert probe.generation.split_greedy  # tiny Llama answers greedily through shared prefixes
    assert not (tmp_path / "run").exists()  # the probe works in a folder of its own
    est = estimate_run(cfg, probe)
    assert [s.name for s in est.stages] == ["prepare", "train", "evaluate finetuned"]
    assert all(s.seconds and s.seconds > 0 for s in est.stages)


@pytest.mark.skipif("torch.cuda.is_available()", reason="sizes for a CPU: the probe runs only for this machine")
def test_init_sizes_the_run_and_keeps_the_estimate_for_run(capsys, orders, tmp_path):
    data, db = orders
    out = tmp_path / "orders.yaml"
    code, stdout, err = run_cli(
        capsys, "init", "--data", data, "--db", db, "--model", "tiny:llama", "--output", out, "--device", "cpu"
    )
    assert code == 0, err
    assert "estimate for this machine" in stdout and "train" in stdout and "total" in stdout
    text = out.read_text()
    assert "# Sized for this machine" in text and "No GPU here" in text
    cfg = load_config(out)
    assert cfg.evaluation.loss_samples == 32 and cfg.evaluation.max_new_tokens < 128  # sized from the data
    kept = load_estimate(cfg)
    assert kept is not None and kept[1] == "text2sql init"

    # A budget nothing fits: every cut is made, each named in the output and in the config.
    tight = tmp_path / "tight.yaml"
    code, stdout, err = run_cli(
        capsys, "init", "--data", data, "--db", db, "--model", "tiny:llama", "--output", tight, "--budget", "0.1s"
    )
    assert code == 0, err
    assert "training.max_steps: 1500 -> 5" in stdout and "does NOT fit" in stdout, stdout
    assert load_config(tight).training["max_steps"] == 5
    assert "do not fit the budget" in tight.read_text()


def test_init_for_a_gpu_elsewhere_writes_full_size_settings_without_a_probe(capsys, orders, tmp_path):
    data, db = orders
    out = tmp_path / "gpu.yaml"
    code, stdout, err = run_cli(
        capsys, "init", "--data", data, "--db", db, "--model", "tiny:llama", "--output", out, "--device", "gpu"
    )
    assert code == 0, err
    assert "estimate" not in stdout and "Sized for this machine" not in out.read_text()


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--budget", "30"], ("--budget 30", "30m")),
        (["--budget", "30m", "--no-estimate"], ("--budget", "--no-estimate")),
    ],
)
def test_init_refuses_a_budget_it_cannot_meet_in_one_line(capsys, orders, tmp_path, extra, needles):
    data, db = orders
    out = tmp_path / "x.yaml"
    code, _, err = run_cli(capsys, "init", "--data", data, "--db", db, "--model", "tiny:llama", "--output", out, *extra)
    assert_one_line_error(code, err, *needles)
    assert not out.exists()


def test_validate_estimates_and_suggests_settings_for_this_machine(capsys, orders, tmp_path):
    data, db = orders
    out = tmp_path / "mine.yaml"
    out.write_text(
        f"output_dir: {tmp_path / 'run'}\nmodel:\n  name_or_path: tiny:llama\n"
        f"data:\n  train: {data}\n  db: {db}\n  schema_format: sql\nfinetune:\n  method: full\n"
        "training:\n  max_steps: 400\n  per_device_train_batch_size: 8\n"
    )
    code, stdout, err = run_cli(capsys, "validate", out, "--budget", "1s")
    assert code == 0, err
    assert "config, data and databases are valid" in stdout and "estimate for this machine" in stdout
    assert "suggested to fit 1.0 s" in stdout
    assert f"text2sql run {out} data.schema_format=compact" in stdout
    kept = load_estimate(load_config(out))
    assert kept is not None and kept[1] == "text2sql validate"


def test_questions_for_a_teacher_alone_are_estimated_with_sampled_pairs_in_their_place(capsys, orders, tmp_path):
    """A data.label-only config: nothing to train on exists before the teacher answers, so the probe
    times pairs sampled from the questions' database, one training row per question; no teacher is asked."""
    data, db = orders
    questions = tmp_path / "questions.csv"
    with data.open(newline="") as f, questions.open("w", newline="") as g:
        csv.writer(g).writerows([("question",), *((row[0],) for row in list(csv.reader(f))[1:])])
    out = tmp_path / "label.yaml"
    out.write_text(
        f"output_dir: {tmp_path / 'run'}\nmodel:\n  name_or_path: tiny:llama\n  threads: 1\n"
        f"data:\n  train: null\n  db: {db}\n  label:\n    file: {questions}\n    teacher: openai:nobody\n"
        "finetune:\n  method: full\ntraining:\n  max_steps: 20\n"
    )
    code, stdout, err = run_cli(capsys, "validate", out)
    assert code == 0, err
    assert "estimate for this machine" in stdout and "no estimate" not in stdout, stdout
    assert "one per question of data.label" in stdout and "labelling is not estimated" in stdout
    assert "only synthesized pairs" not in err
    train = next(line for line in stdout.splitlines() if line.strip().startswith("train "))
    assert "20 steps" in train, train


def test_run_prints_its_estimate_and_compares_it_with_each_stage(capsys, orders, tmp_path):
    from text2sql.pipeline import run_pipeline, summary

    data, db = orders
    cfg = load_config(
        None,
        [
            f"data.train={data}",
            f"data.db={db}",
            "data.schema_format=compact",
            "finetune.method=full",
            f"output_dir={tmp_path / 'run'}",
            "training.max_steps=4",
            "training.per_device_train_batch_size=4",
            "evaluation.max_new_tokens=16",
            "model.threads=1",  # the same threads for both runs, however busy the machine is
        ],
    )
    said = []
    result = run_pipeline(cfg, estimate=True, say=said.append)
    assert said[0].startswith("estimating the run") and "estimate (probe:" in said[1]
    assert result.estimate is not None and result.peaks["train"]
    text = summary(result)
    assert "time and memory, estimated and actual:" in text
    table = text.split("estimated and actual:")[1]
    assert all(name in table for name in ("prepare", "train", "evaluate finetuned", "total"))
    # A second run of the same config reuses the estimate: no probe, every stage skipped.
    said.clear()
    again = run_pipeline(cfg, estimate=True, say=said.append)
    assert said[0].startswith("estimate made by text2sql run") and all(s.skipped for s in again.stages)
    assert "skipped" in summary(again)


def test_an_estimate_kept_at_other_threads_is_measured_again(monkeypatch, orders, tmp_path):
    """A probe timed while a core was busy says little of a run that starts with both free."""
    from text2sql import pipeline
    from text2sql.sizing import save_estimate
    from text2sql.sizing.estimate import Estimate, StageEstimate

    data, db = orders
    cfg = load_config(None, [f"data.train={data}", f"data.db={db}", f"output_dir={tmp_path / 'run'}"])
    kept = Estimate([StageEstimate("train", 60.0, 900.0)], {"threads": 1, "cores": 2, "load": 1.7, "gpu": None})
    kept.created = time.time()
    save_estimate(cfg, kept, "text2sql validate")
    probes = []

    def probe(work):
        probes.append(work)
        raise ProbeError("not needed here")

    monkeypatch.setattr(pipeline, "run_probe", probe)
    for threads, reused in ((1, True), (2, False)):
        said = []
        work = cfg.model_copy(update={"model": cfg.model.model_copy(update={"threads": threads})})
        got = pipeline.estimate_for_run(work, work, said.append)
        assert (got is not None) == reused and len(probes) == (0 if reused else 1)
    assert said[0] == "the estimate text2sql validate kept was measured at 1 CPU thread(s), this run starts at 2"


def test_peak_memory_of_a_block_sees_what_it_held():
    from text2sql.sizing.memory import PeakRss

    with PeakRss(interval=0.01) as peak:
        # 200 MiB of fresh pages, touched so that they are resident: mapped here rather than taken
        # from the allocator, which may hand back memory earlier tests freed and that is still resident.
        block = mmap.mmap(-1, 200 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(0.05)
        block.close()
    assert peak.start_mb is not None and peak.mb is not None
    assert peak.mb - peak.start_mb > 150


def test_the_comparison_sets_actual_beside_estimated_and_leaves_skipped_stages_out():
    from text2sql.sizing import comparison_table

    est = estimate_run(config(), synthetic())
    train = est.stage("train").seconds
    table = comparison_table(est, [("prepare", 0.0, True, None), ("train", train * 1.2, False, 2048.0)])
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "skipped" in rows["prepare"] and "1.20" in rows["train"] and "2.0 GB" in rows["train"]
    assert rows["total"].split()[-1] == "1.20"  # the skipped stage counts in neither total
