"""Peak memory of real training steps, each run in a fresh process: the answer-only head keeps a
large vocabulary's logits out of memory, the probe turns activation checkpointing on for a model
whose activations would dominate, and huge pages keep the heap from growing by each layer's freed
temporaries. Bounds sit between the two paths' measured peaks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from text2sql.config import load_config
from text2sql.huge_pages import kernel_mode

MB = 2**20


def _prepared(tmp_path: Path) -> Path:
    """Bundled rows with CREATE TABLE schemas (~320-token prompts, ~25-token answers), tiny tokenizer."""
    from stage_support import prepare_with_model

    cfg = load_config(
        None,
        [f"output_dir={tmp_path / 'prep'}", "model.name_or_path=tiny:llama", "data.train=bundled",
         "data.schema_format=sql", "data.max_samples.train=16", "data.max_samples.validation=4",
         "data.max_samples.test=4"],
    )  # fmt: skip
    return prepare_with_model(cfg).path


def _model(tmp_path: Path, **shape) -> Path:
    """A random Llama with tiny:llama's tokenizer and the given shape (vocab may exceed the tokenizer's)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from text2sql.models.tiny import tiny_model_path

    tokenizer_dir = tiny_model_path("tiny:llama")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(
        num_attention_heads=4,
        num_key_value_heads=4,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    folder = tmp_path / "model"
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def _train_in_child(model: Path, data: Path, out: Path, *overrides: str, huge_pages: bool = False) -> dict:
    script = [sys.executable, __file__, str(model), str(data), str(out), *overrides]
    # Only what the child needs from the environment: the other tests' variables stay out of the measurement.
    keep = ("PATH", "HOME", "TMPDIR", "TEXT2SQL_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ} | {"TEXT2SQL_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env["THP_MEM_ALLOC_ENABLE"] = "1" if huge_pages else "0"
    done = subprocess.run(script, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "memory.json").read_text())


def test_a_large_vocabulary_stays_out_of_memory(tmp_path):
    # 131,072-token vocabulary, 64 wide: batches of 8 x ~350 tokens. Measured here: ~3.0 GB of peak
    # growth over the start of training with the head over every position, ~0.44 GB answer-only.
    model = _model(tmp_path, vocab_size=131072, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    data = _prepared(tmp_path)
    answer = _train_in_child(model, data, tmp_path / "answer")
    full = _train_in_child(model, data, tmp_path / "full", "--full-logits")
    assert answer["plan"]["answer_only_logits"] and not answer["plan"]["activation_checkpointing"]
    assert not full["plan"]["answer_only_logits"]
    assert answer["growth_mb"] < full["growth_mb"] / 3, (answer, full)


def test_checkpointing_keeps_deep_activations_out_of_memory(tmp_path):
    # 32 layers, 128 wide, small vocabulary: a batch keeps ~1.2 GiB of activations without
    # checkpointing, so the probe turns it on (every layer, under the smallest budget). Measured here: ~2.35 GB of peak growth off, ~0.92 GB on.
    model = _model(tmp_path, vocab_size=4096, hidden_size=128, intermediate_size=256, num_hidden_layers=32)
    data = _prepared(tmp_path)
    # A budget of a byte: the probe's projection is over it whatever this machine's memory.
    probed = _train_in_child(model, data, tmp_path / "probed", "--budget-bytes=1")
    off = _train_in_child(model, data, tmp_path / "off", "training.activation_checkpointing=false")
    assert probed["plan"]["activation_checkpointing"], probed["plan"]
    assert "(probed)" in probed["plan"]["checkpointing_reason"]
    assert not off["plan"]["activation_checkpointing"]
    assert probed["growth_mb"] < off["growth_mb"] / 1.8, (probed, off)


@pytest.mark.skipif(
    sys.platform != "linux" or kernel_mode() in (None, "never"), reason="the kernel gives no transparent huge pages"
)
def test_huge_pages_stop_the_heap_growing_layer_by_layer(tmp_path):
    # 16 layers, 256 wide, MLP 1024: each layer's temporaries are several MB, and with every layer
    # checkpointed only each layer's input survives it. Measured here: ~1.33 GB of peak growth with
    # torch's allocator as it comes, ~0.42 GB with THP_MEM_ALLOC_ENABLE=1 (text2sql.huge_pages).
    model = _model(tmp_path, vocab_size=4096, hidden_size=256, intermediate_size=1024, num_hidden_layers=16)
    data = _prepared(tmp_path)
    plain = _train_in_child(model, data, tmp_path / "plain", "--budget-bytes=1")
    huge = _train_in_child(model, data, tmp_path / "huge", "--budget-bytes=1", huge_pages=True)
    assert huge["plan"]["huge_pages"] and not plain["plan"]["huge_pages"]
    assert huge["plan"]["activation_checkpointing"] and not huge["plan"]["unchecked_layers"]
    assert huge["growth_mb"] < plain["growth_mb"] / 2, (huge, plain)


def _child(model: str, data: str, out: str, *overrides: str) -> None:
    """Two training steps of LoRA at batch 8, then the peak RSS growth over the start of training."""

    import psutil
    import torch
    from transformers import TrainerCallback

    from text2sql.models.loading import open_model
    from text2sql.training.trainer import build_trainer

    torch.set_num_threads(1)
    run = Path(out)
    shutil.copytree(Path(data).parent, run)
    cfg = load_config(
        None,
        [f"output_dir={run}", f"model.name_or_path={model}", "data.train=bundled", "data.schema_format=sql",
         "finetune.method=lora", "training.max_steps=2", "training.per_device_train_batch_size=8",
         "training.save_strategy=no", "training.logging_steps=1", "callbacks.progress=lines", *overrides],
    )  # fmt: skip
    setup = build_trainer(cfg, open_model(model), run / "data")

    class Start(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.rss = psutil.Process().memory_info().rss

    start = Start()
    setup.trainer.add_callback(start)
    setup.trainer.train()
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a large pytest process would
    # report its parent's size; VmHWM belongs to this process's own address space.
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    peak = int(status["VmHWM"].split()[0]) * 1024  # kB
    record = {"growth_mb": (peak - start.rss) / MB, "peak_mb": peak / MB, "plan": setup.memory_plan.record()}
    (run / "memory.json").write_text(json.dumps(record))


if __name__ == "__main__":
    if "--full-logits" in sys.argv:  # the old path, to measure what the bounds above stand against
        import text2sql.training.answer_loss as answer_loss

        sys.argv.remove("--full-logits")
        answer_loss.head_is_linear = lambda model: False  # type: ignore[assignment]
    budget = next((a for a in sys.argv if a.startswith("--budget-bytes=")), None)
    if budget:  # the activations' budget fixed, whatever this machine's memory
        import text2sql.training.memory_plan as memory_plan

        sys.argv.remove(budget)
        memory_plan.activation_budget = lambda: int(budget.split("=", 1)[1])  # type: ignore[assignment]
    _child(*sys.argv[1:])
else:
    pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
