"""Tiny models built locally: every architecture builds, reloads offline with the Auto classes,
trains (finite loss) and generates; tokenizers round-trip any text; the cache and the model-name
resolution behave."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

from text2sql.errors import ConfigError, OutputExistsError, Text2SQLError
from text2sql.models import tiny
from text2sql.models.loading import load_model, load_tokenizer, model_kind, resolve_model
from text2sql.models.tiny import ARCHS, build_tiny_model, parse_tiny_spec, tiny_model_path

DECODERS = [a for a in ARCHS if a != "t5"]
TEXTS = ["Zoë's café", 'SELECT "naïve col" FROM t', "SELECT name FROM singer WHERE age > 30 -- 日本語 ✓"]


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("text2sql-cache")


@pytest.fixture(scope="session")
def tiny_dirs(tiny_cache) -> dict[str, Path]:
    """All five tiny models, built once per session into a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXT2SQL_CACHE", str(tiny_cache))
        return {arch: tiny_model_path(f"tiny:{arch}") for arch in ARCHS}


@pytest.fixture
def use_tiny_cache(tiny_cache, monkeypatch) -> Path:
    monkeypatch.setenv("TEXT2SQL_CACHE", str(tiny_cache))
    return tiny_cache


@pytest.mark.parametrize("arch", ARCHS)
def test_reloads_trains_and_generates(arch, tiny_dirs):
    import torch

    path = str(tiny_dirs[arch])
    kind = "seq2seq" if arch == "t5" else "decoder"
    tokenizer = load_tokenizer(path, padding_side="left" if kind == "decoder" else None)
    model = load_model(path)
    assert model.config.model_type == arch
    assert model.dtype == torch.float32
    assert model.config.is_encoder_decoder == (kind == "seq2seq")

    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    if kind == "seq2seq":
        targets = tokenizer(["SELECT 1", "SELECT count(*) FROM t", "SELECT 2"], return_tensors="pt", padding=True)
        labels = targets.input_ids.masked_fill(targets.attention_mask == 0, -100)
    else:
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    loss = model(**batch, labels=labels).loss
    assert math.isfinite(loss.item())
    loss.backward()

    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    new_tokens = out if kind == "seq2seq" else out[:, batch.input_ids.shape[1] :]
    assert 1 <= new_tokens.shape[1] <= 5
    assert out.max().item() < len(tokenizer)


@pytest.mark.parametrize("arch", ARCHS)
def test_ids_in_configs_match_the_tokenizer(arch, tiny_dirs):
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    path = tiny_dirs[arch]
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    generation = GenerationConfig.from_pretrained(path)
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == ("<pad>", "</s>", "<unk>")
    assert tokenizer.pad_token_id == 0
    assert config.vocab_size == len(tokenizer)
    for where in (config, generation):
        assert where.pad_token_id == tokenizer.pad_token_id
        assert where.eos_token_id == tokenizer.eos_token_id
    if arch == "t5":
        assert tokenizer.bos_token is None
        assert config.decoder_start_token_id == generation.decoder_start_token_id == 0
    else:
        assert tokenizer.bos_token == "<s>"
        assert config.bos_token_id == generation.bos_token_id == tokenizer.bos_token_id
        assert config.tie_word_embeddings
    assert tokenizer.model_max_length == 1024
    with safe_open(path / "model.safetensors", "pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"F32"}


@pytest.mark.parametrize("arch", ARCHS)
def test_tokenizer_round_trips_any_text(arch, tiny_dirs):
    tokenizer = load_tokenizer(str(tiny_dirs[arch]))
    for text in TEXTS:
        ids = tokenizer(text).input_ids
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # Spaces before punctuation survive decoding (no clean-up of " 's" or " ,").
    assert tokenizer.decode(tokenizer("a , b 's").input_ids, skip_special_tokens=True) == "a , b 's"


def test_t5_tokenizer_appends_eos_and_decoders_add_nothing(tiny_dirs):
    t5 = load_tokenizer(str(tiny_dirs["t5"]))
    ids = t5("SELECT 1").input_ids
    assert ids[-1] == t5.eos_token_id and ids.count(t5.eos_token_id) == 1
    for arch in DECODERS:
        tokenizer = load_tokenizer(str(tiny_dirs[arch]))
        ids = tokenizer("SELECT 1").input_ids
        assert tokenizer.bos_token_id not in ids and tokenizer.eos_token_id not in ids


@pytest.mark.parametrize("arch", DECODERS)
def test_decoder_chat_template_renders(arch, tiny_dirs):
    from text2sql.data.templates import TEMPLATE_SPECIAL_TOKENS

    tokenizer = load_tokenizer(str(tiny_dirs[arch]))
    assert tokenizer.chat_template
    messages = [{"role": "system", "content": "Answer with SQL."}, {"role": "user", "content": "How many?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": "SELECT 1"}], tokenize=False)
    assert "How many?" in prompt and "How many?" in full and full.endswith("SELECT 1</s>")
    # Template markers are single special tokens, never split into bytes.
    for marker in TEMPLATE_SPECIAL_TOKENS:
        assert len(tokenizer(marker).input_ids) == 1


def test_cached_spec_is_reused(tiny_dirs, use_tiny_cache, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("a cached tiny model was built again")

    monkeypatch.setattr(tiny, "_build_in_temp_dir", no_build)
    again = tiny_model_path("tiny:llama")
    assert again == tiny_dirs["llama"]
    assert again.parent == use_tiny_cache / "tiny"
    assert resolve_model("tiny:llama") == str(again)
    # Explicit defaults name the same model; other options another one.
    assert tiny_model_path("tiny:llama?hidden_size=128&seed=0") == again
    assert parse_tiny_spec("tiny:t5?hidden_size=64&num_heads=2")[1]["hidden_size"] == 64


def test_same_arguments_give_identical_models(tmp_path):
    first = build_tiny_model("qwen2", tmp_path / "a", hidden_size=32, num_heads=2, seed=7)
    second = build_tiny_model("qwen2", tmp_path / "b", hidden_size=32, num_heads=2, seed=7)
    other = build_tiny_model("qwen2", tmp_path / "c", hidden_size=32, num_heads=2, seed=8)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()
    # Nothing but the three models is left beside them, and they are readable by all.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in [first, *first.iterdir()])


def test_build_refuses_to_overwrite_unless_asked(tmp_path):
    out = build_tiny_model("gpt2", tmp_path / "m", hidden_size=32, num_heads=2)
    with pytest.raises(OutputExistsError, match="already exists"):
        build_tiny_model("gpt2", out, hidden_size=32, num_heads=2)
    build_tiny_model("gpt2", out, hidden_size=32, num_heads=2, seed=1, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny, "_build", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_tiny_model("llama", tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_build_keeps_the_first_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXT2SQL_CACHE", str(tmp_path))
    real = tiny._build_in_temp_dir

    def another_process_wins(arch, options, corpus, target):
        os.replace(real(arch, options, corpus, target), target)
        return real(arch, options, corpus, target)

    monkeypatch.setattr(tiny, "_build_in_temp_dir", another_process_wins)
    path = tiny_model_path("tiny:mistral?hidden_size=32&num_heads=2")
    assert (path / "model.safetensors").is_file()
    assert [p.name for p in (tmp_path / "tiny").iterdir()] == [path.name]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tiny:bert", "use one of llama, mistral, qwen2, gpt2, t5"),
        ("tiny:", "use one of llama"),
        ("tiny:llama?hidden=64", "use hidden_size, num_layers"),
        ("tiny:llama?hidden_size=big", "must be an integer"),
        ("tiny:llama?hidden_size=130", "multiple of num_heads"),
        ("tiny:llama?hidden_size=12&num_heads=4", "even head size"),
        ("tiny:llama?vocab_size=100", "at least"),
        ("tiny:llama?num_layers=0", "at least 1"),
        ("tiny:llama?seed=1&seed=2", "twice"),
    ],
)
def test_bad_spec_is_a_config_error(spec, message, use_tiny_cache):
    with pytest.raises(ConfigError, match=message) as info:
        tiny_model_path(spec)
    assert "\n" not in str(info.value)


def test_bad_arch_in_build_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="use one of llama, mistral, qwen2, gpt2, t5"):
        build_tiny_model("bert", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_model_kind(tiny_dirs):
    assert model_kind(str(tiny_dirs["t5"])) == ("seq2seq", "t5")
    assert model_kind(str(tiny_dirs["llama"])) == ("decoder", "llama")


def test_resolve_model(tmp_path, tiny_dirs, monkeypatch):
    assert resolve_model(str(tiny_dirs["gpt2"])) == str(tiny_dirs["gpt2"])
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    # Remote folders are fetched by text2sql.storage (tested against S3 in test_storage.py); without
    # the backend package the error names the extra, before any network access.
    for url, package, extra in (("gs://bucket/model", "gcsfs", "gcs"), ("s3://bucket/model", "s3fs", "s3")):
        monkeypatch.setitem(sys.modules, package, None)
        with pytest.raises(Text2SQLError, match=rf"pip install 'text2sql\[{extra}\]'"):
            resolve_model(url)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(tmp_path / "no" / "such" / "model"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        resolve_model(str(tmp_path / "file.txt"))


def test_missing_models_offline_are_config_errors(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE at import time, so set the constant as well as the env.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    missing_dir = str(tmp_path / "models" / "merged")
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(missing_dir)
    for load in (load_model, load_tokenizer, model_kind):
        with pytest.raises(ConfigError, match="'text2sql-tests/no-such-model'.*check the name or the network") as info:
            load("text2sql-tests/no-such-model")
        assert "\n" not in str(info.value)
    # A local directory without a model is named as such, not sent to the hub.
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load model"):
        model_kind(str(tmp_path / "empty"))


def test_tokenizer_without_pad_gets_eos_as_pad(tiny_dirs, tmp_path):
    import json
    import shutil

    path = tmp_path / "no-pad"
    shutil.copytree(tiny_dirs["gpt2"], path)
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    del config["pad_token"]
    config_file.write_text(json.dumps(config))

    tokenizer = load_tokenizer(str(path), padding_side="left")
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    batch = tokenizer(["SELECT 1", "SELECT count(*) FROM t"], padding=True)
    assert batch.input_ids[0][0] == tokenizer.eos_token_id  # padded on the left
    with pytest.raises(ConfigError, match="padding_side"):
        load_tokenizer(str(path), padding_side="middle")


def test_load_model_passes_dtype_and_kind(tiny_dirs):
    import torch

    model = load_model(str(tiny_dirs["llama"]), kind="decoder", dtype=torch.bfloat16, attn_implementation="eager")
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"
    with pytest.raises(ConfigError, match="use one of decoder, seq2seq"):
        load_model(str(tiny_dirs["llama"]), kind="causal")
