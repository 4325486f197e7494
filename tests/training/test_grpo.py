"""RL from execution (GRPO) on a tiny model: rewards come from executing the SQL read-only, the model
learns and its log holds the reward and the execution shares, the stage is recorded and then skipped;
the reward function cannot write to a database; bad input fails in one line."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch
from transformers import TrainerCallback

from text2sql.config import load_config
from text2sql.data.bundled import db_path
from text2sql.errors import ConfigError, DataError
from text2sql.training.grpo import train_grpo
from text2sql.training.rewards import ExecutionReward, format_reward
from training_support import run_config, weights

GOLD = "SELECT name FROM airports WHERE country = 'Germany'"


def rl_overrides(init) -> list[str]:
    return [
        f"rl.init_from={init}",
        "rl.max_steps=2",
        "rl.num_generations=2",
        "rl.per_device_train_batch_size=4",
        "rl.max_completion_length=8",
        "rl.logging_steps=1",
        "rl.learning_rate=1e-2",
        "model.threads=1",
        "callbacks.progress=lines",
    ]


def small_bundled_config(model, tmp_path, *extra):
    """RL on four bundled training rows (two validation, two test), from `model`."""
    return load_config(
        None,
        [f"output_dir={tmp_path / 'run'}", f"model.name_or_path={model}", "data.train=bundled",
         "data.max_samples.train=4", "data.max_samples.validation=2", "data.max_samples.test=2",
         "data.schema_format=tables", *extra, *rl_overrides(model)],
    )  # fmt: skip


class Snapshot(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.begin = weights(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.end = weights(model)


def by_length(completions, **kwargs):
    """Different rewards within each group, so that a random model's all-failing groups still have an
    advantage to learn from."""
    return [-len(c) / 100 for c in completions]


def test_grpo_run_end_to_end(tiny_llama_path, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            f"model.name_or_path={tiny_llama_path}",
            "finetune.method=full",
            "data.train=bundled",
            "data.max_samples.train=8",
            "data.max_samples.validation=4",
            "data.max_samples.test=4",
            "data.max_length=256",
            "data.schema_format=tables",
            "rl.enabled=true",
            "rl.eval_steps=2",
            "rl.eval_samples=2",
            "evaluation.max_new_tokens=8",
            *rl_overrides(tiny_llama_path),
        ],
    )
    snap = Snapshot()
    result = train_grpo(cfg, callbacks=[snap], extra_rewards=[by_length])
    from datasets import load_from_disk

    prepared = load_from_disk(str(tmp_path / "run" / "data"))["train"]
    assert not result.skipped and result.global_step == 2
    assert result.rows == len(prepared) > 0 and result.rows_without_database == 0

    # every completion was executed and scored: 2 steps x 4 completions
    counts = result.counts
    assert counts["total"] == 8
    assert counts["correct"] + counts["wrong"] + counts["failing"] + counts["forbidden"] + counts["unscored"] == 8
    logged = [e for e in result.history if "reward" in e]
    assert [e["step"] for e in logged] == [1, 2]
    for entry in logged:
        for key in ("rewards/execution/mean", "execution/correct", "execution/failing", "execution/forbidden"):
            assert key in entry, key
        assert "completions/mean_length" in entry
    assert any("eval_execution_accuracy" in e for e in result.history)
    # the starting model's accuracy is an entry of its own, at step 0
    assert [e["step"] for e in result.history if "eval_execution_accuracy" in e][0] == 0

    changed = [k for k in snap.begin if not torch.equal(snap.begin[k], snap.end[k])]
    assert changed, "no weight changed"

    # rl.keep_best: the starting model (step 0) and step 2 were measured; the better one was saved,
    # the earlier one on a tie
    assert [step for step, _ in result.accuracy_by_step] == [0, 2]
    start, end = (value for _, value in result.accuracy_by_step)
    saved, initial = saved_weights(result.path), saved_weights(tiny_llama_path)
    same = all(torch.equal(saved[k], initial[k]) for k in saved)
    if end > start:
        assert result.saved_step == 2 and not same
    else:
        assert result.saved_step == 0 and same, "the worse step's weights were saved"

    out = result.path
    assert out == tmp_path / "run" / "rl"
    for name in ("model.safetensors", "config.json", "tokenizer_config.json", "config.yaml", "stage.json"):
        assert (out / name).is_file(), name
    from text2sql.rundir import StageFolder

    record = StageFolder(out).record()
    assert record["stage"] == "rl" and record["global_step"] == 2 and record["counts"] == counts
    assert record["saved_step"] == result.saved_step
    from text2sql.inference.loading import find_run_config

    assert find_run_config(out).rl.enabled  # evaluate finds the run's prompt settings beside the model

    again = train_grpo(cfg)
    assert again.skipped and again.global_step == 2


def saved_weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_lora_rl_saves_a_merged_model(tiny_llama_path, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config(
        None,
        [f"output_dir={tmp_path / 'run'}", f"model.name_or_path={tiny_llama_path}", "finetune.method=lora",
         "finetune.r=4", "data.train=bundled", "data.max_samples.train=8", "data.max_samples.validation=4",
         "data.max_samples.test=4", "data.max_length=256", "data.schema_format=tables",
         *rl_overrides(tiny_llama_path)],
    )  # fmt: skip
    snap = Snapshot()
    result = train_grpo(cfg, callbacks=[snap], extra_rewards=[by_length])
    trained = [k for k in snap.begin if "lora_" in k]
    assert trained and any(not torch.equal(snap.begin[k], snap.end[k]) for k in trained), "no LoRA weight changed"
    assert not [k for k in snap.begin if "lora_" not in k and not torch.equal(snap.begin[k], snap.end[k])]

    out = result.path
    assert not (out / "adapter_config.json").exists()  # merged into a plain model folder
    saved, initial = saved_weights(out), saved_weights(tiny_llama_path)
    assert saved.keys() == initial.keys() and all(saved[k].shape == initial[k].shape for k in saved)
    assert any(not torch.equal(saved[k], initial[k]) for k in saved), "the LoRA update was not merged"
    from text2sql.rundir import StageFolder

    assert StageFolder(out).record()["method"] == "lora"


def test_completions_stop_and_pad_by_the_evaluation_rule(tiny_llama_path, tmp_path):
    """TRL generates, masks and pads each completion with the ids HFGenerator stops and pads with,
    a generation-config EOS included."""
    import json

    from datasets import load_from_disk

    from text2sql.data.prepare import prepare
    from text2sql.inference.generate import HFGenerator
    from text2sql.models.loading import open_model
    from text2sql.rundir import RunDir
    from text2sql.training import grpo
    from text2sql.training.rl_data import grpo_dataset

    init = tmp_path / "init"
    shutil.copytree(tiny_llama_path, init)
    generation = json.loads((init / "generation_config.json").read_text())
    tokenizer_eos = open_model(str(init)).tokenizer.eos_token_id
    generation["eos_token_id"] = [tokenizer_eos, 7]
    (init / "generation_config.json").write_text(json.dumps(generation))
    cfg = small_bundled_config(init, tmp_path)
    start = open_model(str(init))
    prepare(cfg, start)
    datasets = load_from_disk(str(tmp_path / "run" / "data"))
    rows, _ = grpo_dataset(datasets["train"], start.tokenizer)
    build = grpo._build(cfg, RunDir(cfg.output_dir), init, start, datasets, rows, (), ())
    trainer, policy = build.trainer, build.model
    expected = HFGenerator(policy, start.tokenizer, "decoder")
    assert sorted(expected.stop_ids) == sorted({tokenizer_eos, 7})
    assert sorted(trainer.generation_config.eos_token_id) == sorted(expected.stop_ids)
    assert sorted(trainer.eos_token_ids) == sorted(expected.stop_ids)
    assert trainer.generation_config.pad_token_id == expected.pad_id


def test_vllm_needs_a_gpu(tiny_llama_path, tmp_path):
    cfg = small_bundled_config(tiny_llama_path, tmp_path, "rl.use_vllm=true")
    with pytest.raises(ConfigError) as err:
        train_grpo(cfg)
    message = str(err.value)
    assert "\n" not in message and "rl.use_vllm" in message and "GPU" in message
    assert not (tmp_path / "run" / "rl").exists()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reward_cannot_modify_the_database(tmp_path):
    db = tmp_path / "airline.sqlite"
    shutil.copy(db_path("airline"), db)
    before = sha256(db)
    attacks = [
        "DELETE FROM flights",
        "DROP TABLE flights",
        "UPDATE flights SET duration_minutes = 0",
        "INSERT INTO airports (airport_code, name, city, country) VALUES ('XXX', 'x', 'x', 'x')",
        f"ATTACH DATABASE '{tmp_path / 'other.db'}' AS other",
        "CREATE TABLE stolen (a)",
        "PRAGMA writable_schema = 1",
        "SELECT 1; DELETE FROM flights",
        "```sql\nDELETE FROM flights;\n```",
    ]
    reward = ExecutionReward(forbidden_penalty=-0.5)
    rewards = reward(completions=attacks, sql=[GOLD] * len(attacks), db_path=[str(db)] * len(attacks))
    assert sha256(db) == before
    assert not (tmp_path / "other.db").exists()
    # "SELECT 1; DELETE ..." is cut at its first statement: it runs, returns the wrong result
    assert rewards == [-0.5] * 7 + [0.0, -0.5]
    assert reward.counts.forbidden == 8


def test_rewards_by_outcome(tmp_path):
    db = str(db_path("airline"))
    reward = ExecutionReward(partial_credit=0.25)
    logged: dict[str, float] = {}
    completions = [
        GOLD,
        f"{GOLD};",
        "SELECT name FROM airports",
        "SELEC name FRM airports",
        "SELECT nope FROM airports",
        "",
    ]
    rewards = reward(
        completions=completions,
        sql=[GOLD] * len(completions),
        db_path=[db] * len(completions),
        log_metric=logged.__setitem__,
    )
    assert rewards == [1.0, 1.0, 0.25, 0.0, 0.0, 0.0]
    assert logged["execution/correct"] == pytest.approx(2 / 6) and logged["execution/failing"] == pytest.approx(3 / 6)

    rewards = reward(completions=[GOLD, GOLD], sql=["SELECT nope FROM nowhere", GOLD], db_path=[db, None])
    assert rewards == [None, None]  # the gold fails / no database: left out, not scored
    assert reward.last.unscored == 2 and reward.counts.unscored == 2 and reward.counts.total == 8

    fmt = format_reward(0.1)
    assert fmt(completions=[GOLD, f"{GOLD};", f"Here: {GOLD}", f"```sql\n{GOLD}\n```", f"{GOLD}; SELECT 1", ""]) == [
        0.1,
        0.1,
        0.0,
        0.0,
        0.0,
        0.0,
    ]


def test_batch_must_hold_whole_groups():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["rl.num_generations=3", "rl.per_device_train_batch_size=8"])
    message = str(err.value)
    assert "\n" not in message and "rl.num_generations" in message and "multiple" in message


def test_no_rows_with_databases(tiny_llama_path, tmp_path):
    # the small CSV of the training tests has no databases
    cfg = run_config("tiny:llama", tmp_path / "run", *rl_overrides(tiny_llama_path))
    with pytest.raises(DataError) as err:
        train_grpo(cfg)
    message = str(err.value)
    assert "\n" not in message and "database" in message and "data.db" in message
    assert not (tmp_path / "run" / "rl").exists()


def test_gold_that_runs_nowhere(tiny_llama_path, tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("input_text,sql\n" + "".join(f"question {i}?,SELECT nope FROM nowhere_{i}\n" for i in range(20)))
    db = tmp_path / "airline.sqlite"
    shutil.copy(db_path("airline"), db)
    cfg = load_config(
        None,
        [f"output_dir={tmp_path / 'run'}", f"model.name_or_path={tiny_llama_path}", f"data.train={data}",
         f"data.db={db}", *rl_overrides(tiny_llama_path)],
    )  # fmt: skip
    with pytest.raises(DataError) as err:
        train_grpo(cfg)
    message = str(err.value)
    assert "\n" not in message and "gold SQL" in message and "runs on its database" in message
    assert not (tmp_path / "run" / "rl").exists()


def test_rl_logs_to_a_vertex_experiment_run_of_its_own(tiny_llama_path, tmp_path):
    """tracking.backend=vertex (dry run): RL's curves go to `<run>-rl` in the experiment, with resource use."""
    import json

    from text2sql.tracking.vertex import DRY_RUN_FILE

    cfg = small_bundled_config(
        tiny_llama_path, tmp_path, "tracking.backend=vertex", "tracking.dry_run=true", "finetune.method=full"
    )
    train_grpo(cfg, extra_rewards=[by_length])
    calls = [json.loads(line) for line in (tmp_path / "run" / DRY_RUN_FILE).read_text().splitlines()]
    assert calls[1] == {"call": "aiplatform.start_run", "kwargs": {"run": "run-rl", "resume": False}}
    series = [c["kwargs"] for c in calls if c["call"] == "aiplatform.log_time_series_metrics"]
    assert [s["step"] for s in series if "reward" in s["metrics"]] == [1, 2]
    assert all("resources/cpu_percent" in s["metrics"] for s in series if "reward" in s["metrics"])
    assert calls[-1]["call"] == "aiplatform.end_run"
