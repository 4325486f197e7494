"""The seed presets (configs/seed*.yaml): each is headed by its command and validates, and each runs
end to end on CPU with its model swapped for the tiny model of the same architecture and its
remote data for a small local file from tests/fixtures/ (written by make_fixtures.py) whose SQL
runs on the bundled databases. Each preset runs once per module; the tests read its outputs."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from repo import CONFIGS, FIXTURES
from text2sql.cli import main
from text2sql.config import load_config
from text2sql.data.bundled import database_dir
from text2sql.pipeline import run_pipeline

DB_DIR = str(database_dir())

# Short and CPU-safe: 2 optimizer steps, 6 test rows, 8 new tokens; float32 (bf16 autocast on a CPU
# is slow and not what the presets ask of a GPU).
FAST = [
    "training.max_steps=2",
    "training.logging_steps=1",
    "data.max_samples.test=6",
    "evaluation.max_new_tokens=8",
    "callbacks.progress=lines",
    "training.bf16=false",
]
# The presets' remote data, replaced by fixtures; validation and test are cut from them (10% each).
NO_SPLIT_FILES = ["data.validation=null", "data.test=null"]


@dataclass
class Preset:
    file: str
    tiny: str
    data: list[str]  # overrides pointing the preset at local data
    cpu: list[str] = field(default_factory=list)  # replacing what needs a GPU, a network or an account
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: set[str] = field(default_factory=set)

    @property
    def path(self) -> Path:
        return CONFIGS / self.file

    def overrides(self, out: Path) -> list[str]:
        cpu = [o.replace("{sync}", str(out.parent / f"{out.name}-synced")) for o in self.cpu]
        return [f"output_dir={out}", f"model.name_or_path={self.tiny}", *self.data, *cpu, *FAST]


ALL_LINEAR_DECODER = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

PRESETS = {
    "seed000": Preset(
        "seed000_t5_lora_vertex.yaml",
        "tiny:t5",
        data=[f"data.train={FIXTURES / 'seed000_train.csv'}", *NO_SPLIT_FILES, f"data.db_dir={DB_DIR}"],
        # 4 loader processes only cost start-up time on a 60-row file
        cpu=["training.dataloader_num_workers=0"],
        dropout=0.1,
        targets={"q", "v"},
    ),
    "seed001": Preset(
        "seed001_reasoning_lora_zero2.yaml",
        "tiny:qwen2",
        data=[f"data.train={FIXTURES / 'seed001_reasoning.jsonl'}", *NO_SPLIT_FILES, f"data.db_dir={DB_DIR}"],
        # W&B needs its package and an account; checkpoints go to a local folder instead of S3
        cpu=["tracking.backend=none", "callbacks.checkpoint_sync={sync}"],
        r=64,
        alpha=128,
        targets=ALL_LINEAR_DECODER,
    ),
    "seed002": Preset(
        "seed002_tinyllama_qlora.yaml",
        "tiny:llama",
        data=[
            f"data.train={FIXTURES / 'seed002_create_context.json'}",
            "data.format=auto",
            "data.hf_split=null",
            f"data.db_dir={DB_DIR}",
        ],
        # qlora needs a CUDA GPU and bitsandbytes: on CPU it is a one-line error, so plain LoRA here
        cpu=["finetune.method=lora"],
        r=8,
        alpha=16,
        targets=ALL_LINEAR_DECODER,
    ),
    "seed003": Preset(
        "seed003_mistral_4bit_jsonl.yaml",
        "tiny:mistral",
        data=[f"data.train={FIXTURES / 'seed003_messages.jsonl'}", *NO_SPLIT_FILES, f"data.db_dir={DB_DIR}"],
        # 4-bit needs a CUDA GPU (plain LoRA here); the run folder and checkpoint copies stay local;
        # evaluate and save every step so that early stopping, best-model loading and the checkpoint
        # sync all act within 2 steps. TensorBoard works offline and stays on.
        cpu=[
            "finetune.method=lora",
            "callbacks.checkpoint_sync={sync}",
            "training.eval_steps=1",
            "training.save_steps=1",
        ],
        targets={"q_proj", "k_proj", "v_proj", "o_proj"},
    ),
    "seed004": Preset(
        "seed004_gpt2_lora.yaml",
        "tiny:gpt2",
        # the preset's own bundled data, capped
        data=["data.max_samples.train=48", "data.max_samples.validation=8"],
        dropout=0.1,
        targets={"c_attn", "c_proj"},
    ),
}
SEEDS = sorted(PRESETS)


class Runs:
    """Each preset's run, made on first use and shared by the tests of this module."""

    def __init__(self, root: Path):
        self.root = root
        self.results: dict[str, tuple[Path, object]] = {}

    def __call__(self, name: str) -> tuple[Path, object]:
        if name not in self.results:
            preset = PRESETS[name]
            out = self.root / name
            result = run_pipeline(load_config(preset.path, preset.overrides(out)))
            self.results[name] = (out, result)
        return self.results[name]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("presets"))


def _prepared(out: Path, split: str = "train"):
    from datasets import load_from_disk

    return load_from_disk(str(out / "data"))[split]


def _texts(out: Path, tiny: str, split: str = "train") -> list[tuple[str, str]]:
    """(prompt, target) text of every prepared row, decoded with the model's tokenizer."""
    from text2sql.models.loading import load_tokenizer

    tokenizer = load_tokenizer(tiny)
    pairs = []
    for row in _prepared(out, split):
        n = row["prompt_length"]
        target = [t for t in row["labels"] if t != -100]
        pairs.append((tokenizer.decode(row["input_ids"][:n]), tokenizer.decode(target)))
    return pairs


# ------------------------------------------------------------------------------ every preset


def test_one_preset_per_seed_headed_by_its_command():
    # seed 001 trains under DeepSpeed ZeRO-2, so its command is an `accelerate launch` of `run`
    files = sorted(p.name for p in CONFIGS.glob("seed*.yaml"))
    assert files == sorted(p.file for p in PRESETS.values())
    for name, preset in PRESETS.items():
        lines = preset.path.read_text(encoding="utf-8").splitlines()
        assert (
            lines[0].endswith(f"-m text2sql run configs/{preset.file}")
            if name == "seed001"
            else (lines[0] == f"# text2sql run configs/{preset.file}")
        )
        assert f"Seed {name[4:]}:" in "\n".join(lines[:4]), "the header says which seed it reproduces"
        assert any("differs from the seed" in line for line in lines), "the header says what differs"


OPTIONAL_PACKAGES = {"gcsfs", "s3fs", "bitsandbytes", "deepspeed", "wandb", "mlflow", "tensorboard", "vllm"}


@pytest.fixture
def extras_installed(monkeypatch):
    """Every optional package looks installed: what validate then says is about the config itself."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return real("json") if name in OPTIONAL_PACKAGES else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.fixture(autouse=True)
def _forget_cached_package_checks(monkeypatch):
    """peft and transformers cache "is this package installed" for the whole process: what a test here
    made them believe must not outlive it (a cached "bitsandbytes is installed" breaks every LoRA)."""
    yield
    monkeypatch.undo()
    _clear_package_caches()


def _clear_package_caches() -> None:
    import peft.import_utils
    import transformers.utils.import_utils

    for module in (peft.import_utils, transformers.utils.import_utils):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


@pytest.mark.parametrize("name", SEEDS)
def test_preset_validates_offline(name, capsys, extras_installed):
    # --no-estimate: the presets name hub models, which a probe cannot load offline (tests/commands/test_sizing.py)
    code = main(["validate", str(PRESETS[name].path), "--no-estimate"])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("name", SEEDS)
def test_preset_validates_on_the_fixture_data(name, capsys, extras_installed):
    preset = PRESETS[name]
    assert main(["validate", str(preset.path), f"model.name_or_path={preset.tiny}", *preset.data]) == 0
    assert "config, data and databases are valid" in capsys.readouterr().out


def test_validate_names_every_missing_package_with_its_pip_command(capsys, monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name in OPTIONAL_PACKAGES else real(name, *a, **k)
    )
    code = main(["validate", str(PRESETS["seed001"].path)])  # DeepSpeed launch, W&B, S3
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    for package, extra in (("deepspeed", "deepspeed"), ("wandb", "wandb"), ("s3fs", "s3")):
        assert f"needs the '{package}' package: pip install 'text2sql[{extra}]'" in err
    code = main(["validate", str(PRESETS["seed003"].path)])  # 4-bit, GCS, TensorBoard
    err = capsys.readouterr().err
    for package, extra in (("bitsandbytes", "qlora"), ("gcsfs", "gcs"), ("tensorboard", "tensorboard")):
        assert f"needs the '{package}' package: pip install 'text2sql[{extra}]'" in err


@pytest.mark.parametrize("name", SEEDS)
def test_preset_runs_end_to_end(name, runs):
    out, result = runs(name)
    stages = [s.name for s in result.stages]
    assert stages[:4] == ["prepare", "train", "merge", "evaluate finetuned"]
    assert (out / "merged" / "config.json").is_file() and (out / "merged" / "model.safetensors").is_file()
    metrics = json.loads((out / "eval" / "finetuned" / "metrics.json").read_text())
    assert metrics["num_examples"] == 6
    assert (out / "eval" / "finetuned" / "results.csv").is_file()
    assert (out / "eval" / "finetuned" / "report.html").is_file()


@pytest.mark.parametrize("name", SEEDS)
def test_adapter_has_the_preset_lora_settings(name, runs):
    out, _ = runs(name)
    preset = PRESETS[name]
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (preset.r, preset.alpha, preset.dropout)
    # all-linear is saved as the full names of the layers it matched; compare leaf names
    assert {t.rsplit(".", 1)[-1] for t in adapter["target_modules"]} == preset.targets
    assert adapter["base_model_name_or_path"] == preset.tiny


@pytest.mark.parametrize("name", SEEDS)
def test_execution_accuracy_is_measured(name, runs):
    out, _ = runs(name)
    metrics = json.loads((out / "eval" / "finetuned" / "metrics.json").read_text())
    assert metrics["num_execution_scored"] == 6
    assert metrics["execution_accuracy"] is not None


# ------------------------------------------------------------------------- what each seed adds


def test_seed000_keeps_the_csv_complexity_labels_and_builds_the_vertex_job(runs, capsys):
    out, _ = runs("seed000")
    metrics = json.loads((out / "eval" / "finetuned" / "metrics.json").read_text())
    assert set(metrics["by_complexity"]) <= {"basic SQL", "aggregation", "ordering", "joins", "subqueries"}
    capsys.readouterr()
    assert main(["launch", "vertex", str(PRESETS["seed000"].path), "--dry-run", "launch.image_uri=img:1"]) == 0
    machine = json.loads(capsys.readouterr().out)["job_spec"]["worker_pool_specs"][0]["machine_spec"]
    assert machine == {"machine_type": "g2-standard-4", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1}


def test_seed001_trains_on_reasoning_then_a_sql_block(runs):
    out, _ = runs("seed001")
    report = json.loads((out / "data" / "prepare_report.json").read_text())
    assert report["dropped"]["train"]["no reasoning"] == 6  # the fixture's rows without a chain of thought
    system = load_config(PRESETS["seed001"].path).prompt.system
    assert "```sql" in system  # the prompt asks for what the targets hold
    for prompt, target in _texts(out, "tiny:qwen2"):
        assert prompt.startswith(f"<|im_start|>system\n{system}") and prompt.endswith("<|im_start|>assistant\n")
        assert "```sql\n" in target and target.index("```sql") > 0  # reasoning first, then the block
    assert (out.parent / "seed001-synced" / "checkpoint-2").is_dir()  # the seed's S3 upload, to a folder


def test_seed002_uses_zephyr_and_compares_with_the_base_model(runs):
    out, result = runs("seed002")
    prompt, target = _texts(out, "tiny:llama")[0]
    assert prompt.startswith("<|system|>\nYou can only reply in SQL query language.")
    assert prompt.endswith("<|assistant|>\n") and target.startswith("SELECT")
    assert "baseline" in result.metrics and (out / "eval" / "compare.html").is_file()


def test_seed003_uses_the_inst_format_with_early_stopping_and_tensorboard(runs):
    out, _ = runs("seed003")
    system = load_config(PRESETS["seed003"].path).prompt.system
    for prompt, target in _texts(out, "tiny:mistral"):
        assert prompt.startswith(f"<s>[INST] {system}\n") and prompt.endswith(" [/INST] ")
        assert target.removesuffix("</s>").endswith(";")  # the seed's assistant SQL, as written
    history = json.loads((out / "adapter" / "training_log.json").read_text())
    assert [h["step"] for h in history if "eval_loss" in h][:2] == [1, 2]  # evaluated every step
    synced = out.parent / "seed003-synced"
    assert (synced / "checkpoint-1").is_dir() and (synced / "checkpoint-2").is_dir()
    assert list((out / "logs").rglob("events.out.tfevents.*"))


def test_seed004_scores_bleu_rouge_and_the_baseline(runs, capsys):
    out, result = runs("seed004")
    metrics = result.metrics["finetuned"]
    assert metrics["bleu"] is not None and metrics["rouge_l"] is not None
    assert "baseline" in result.metrics and (out / "eval" / "compare.html").is_file()
    capsys.readouterr()
    args = ["output_dir=gs://b/runs/seed004", "launch.image_uri=img:1", "launch.staging_bucket=gs://b/staging"]
    assert main(["launch", "vertex", str(PRESETS["seed004"].path), "--dry-run", *args]) == 0
    machine = json.loads(capsys.readouterr().out)["job_spec"]["worker_pool_specs"][0]["machine_spec"]
    assert machine == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}


# ------------------------------------------------------------------------------------ fixtures


def test_fixtures_are_reproducible():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.fixtures().items():
        assert (FIXTURES / name).read_text(encoding="utf-8") == text, f"rerun tests/fixtures/make_fixtures.py ({name})"
