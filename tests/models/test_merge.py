"""`text2sql merge`: a merged tiny model computes what its adapter model computes, loads without
PEFT, and bad input gets one error line.

Adapters are made here with peft on the tiny models, their LoRA B matrices (zero at init) set to
small random values so that each adapter changes the model about as much as a trained one does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cli_support import assert_one_line_error, run_cli
from text2sql.errors import ConfigError, OutputExistsError
from text2sql.models import merge_checks
from text2sql.models.merge import default_dtype, merge_adapter
from text2sql.models.merge_checks import MergeMismatchError, verification_examples

pytestmark = [
    # peft 0.21 on transformers 5: a deprecated call inside peft, and GPT-2's Conv1D layout note.
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
    pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning"),
]

ARCH_TARGETS = {"t5": ["q", "v"]}  # decoders: every linear layer, as `text2sql train` does


def make_adapter(
    arch: str,
    folder: Path,
    *,
    dora: bool = False,
    recorded_base: str | None = None,
    base_spec: str | None = None,
    seed: int = 0,
) -> Path:
    """A non-trivial LoRA (or DoRA) adapter on tiny:<arch>, saved with the base spec recorded."""
    from peft import LoraConfig, get_peft_model

    from text2sql.models.loading import load_model, resolve_model

    spec = base_spec or f"tiny:{arch}"
    model = load_model(resolve_model(spec), dtype=torch.float32)
    torch.manual_seed(seed)  # LoRA A is initialised at random
    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=ARCH_TARGETS.get(arch, "all-linear"), use_dora=dora
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            elif "lora_magnitude" in name:
                param.mul_(1 + 0.1 * torch.randn(param.shape, generator=generator))
    peft_model.peft_config["default"].base_model_name_or_path = recorded_base or spec
    with warnings.catch_warnings():
        # peft looks for the base's config to see whether the vocabulary changed; a spec is no folder.
        warnings.simplefilter("ignore")
        peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """merged(arch, method="lora", dtype="fp32") -> (adapter folder, MergeResult), made once."""
    root = tmp_path_factory.mktemp("merge")
    cache: dict[tuple[str, str, str], tuple[Path, object]] = {}

    def get(arch: str, method: str = "lora", dtype: str = "fp32"):
        key = (arch, method, dtype)
        if key not in cache:
            adapter = root / f"adapter-{arch}-{method}"
            if not adapter.exists():
                make_adapter(arch, adapter, dora=method == "dora")
            result = merge_adapter(adapter, root / f"merged-{arch}-{method}-{dtype}", dtype=dtype)
            cache[key] = (adapter, result)
        return cache[key]

    return get


def teacher_forced(arch: str, tokenizer, seq2seq: bool):
    """A check input unlike the merge's own: the last bundled test question, compact schema."""
    from text2sql.data import bundled
    from text2sql.data.example import Example
    from text2sql.data.prompt import PromptBuilder
    from text2sql.data.schema import schema_text

    row = list(bundled.iter_rows("test"))[-1]
    example = Example(row["question"], row["sql"], schema_text(bundled.db_path(row["db_id"]), "compact"))
    builder = PromptBuilder(tokenizer, "seq2seq" if seq2seq else "decoder", model_type=arch)
    encoded = builder.encode(example)
    prompt = builder.encode_prompts([builder.example_prompt(example)])[0]
    return encoded, torch.tensor([prompt])


def logits_of(model, encoded, seq2seq: bool):
    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        if seq2seq:
            return model(input_ids=ids, labels=torch.tensor([encoded.labels]), use_cache=False).logits[0]
        return model(input_ids=ids, use_cache=False).logits[0]


def greedy(model, prompt, tokenizer):
    with torch.no_grad():
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return out[0].tolist()


# ------------------------------------------------------------------------------------------ equivalence


@pytest.mark.parametrize(("arch", "method"), [("llama", "lora"), ("qwen2", "dora"), ("gpt2", "lora"), ("t5", "lora")])
def test_merged_model_computes_what_the_adapter_model_computes(merged, arch, method):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from text2sql.models.adapters import is_adapter_dir, load_adapter_model
    from text2sql.models.loading import load_model

    adapter, result = merged(arch, method)
    seq2seq = arch == "t5"
    assert result.max_abs_diff <= result.tolerance
    assert result.saved_max_abs_diff <= result.saved_tolerance
    # The adapter had an effect far beyond merge rounding.
    assert result.adapter_effect > 1000 * result.tolerance

    auto_class = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    plain = auto_class.from_pretrained(result.path).eval()
    assert type(plain).__module__.startswith("transformers.")
    assert not is_adapter_dir(result.path)
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    adapter_model = load_adapter_model(adapter, dtype=torch.float32).eval()
    base = load_model(f"tiny:{arch}", dtype=torch.float32).eval()

    encoded, prompt = teacher_forced(arch, tokenizer, seq2seq)
    want = logits_of(adapter_model, encoded, seq2seq)
    got = logits_of(plain, encoded, seq2seq)
    assert (got - want).abs().max() <= result.tolerance
    assert (logits_of(base, encoded, seq2seq) - want).abs().max() > 100 * result.tolerance
    assert greedy(plain, prompt, tokenizer) == greedy(adapter_model, prompt, tokenizer)


def test_merged_folder_is_complete_and_readable(merged):
    _, result = merged("llama")
    names = {p.name for p in result.path.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "README.md",
        "merge_report.json",
    } <= names
    assert "adapter_config.json" not in names and "adapter_model.safetensors" not in names
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in result.path.iterdir())
    assert result.path.stat().st_mode & 0o777 == 0o755
    assert not [p for p in result.path.parent.iterdir() if p.name.startswith(".")]  # no staging left

    report = json.loads((result.path / "merge_report.json").read_text())
    assert report["dtype"] == "fp32" and report["base"] == "tiny:llama"
    assert report["max_abs_diff"] == result.max_abs_diff and report["tolerance"] == result.tolerance
    assert len(report["prompts"]) == 4 and report["tokens_checked"] > 400
    card = (result.path / "README.md").read_text()
    assert "tiny:llama" in card and "AutoModelForCausalLM" in card and f"{result.max_abs_diff:.3g}" in card

    generation = json.loads((result.path / "generation_config.json").read_text())
    tokenizer_config = json.loads((result.path / "tokenizer_config.json").read_text())
    assert generation["eos_token_id"] == 2 and generation["pad_token_id"] == 0
    assert tokenizer_config["eos_token"] == "</s>"


def test_bf16_merge_saves_bf16_weights_within_bf16_tolerance(merged):
    from safetensors import safe_open

    _, result = merged("llama", dtype="bf16")
    with safe_open(str(result.path / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(name).dtype for name in f.keys()}
    assert dtypes == {torch.bfloat16}
    assert json.loads((result.path / "config.json").read_text())["dtype"] == "bfloat16"
    # The merge itself is float32: as exact as the fp32 one; the cast costs bf16 rounding only.
    assert result.tolerance == pytest.approx(1e-4 * result.logit_scale)
    assert result.max_abs_diff <= result.tolerance
    assert 0 < result.saved_max_abs_diff <= result.saved_tolerance
    assert result.saved_max_abs_diff > merged("llama")[1].saved_max_abs_diff


def test_fp16_overflow_is_a_mismatch_and_bf16_holds_it(tmp_path):
    """A delta beyond fp16's range (65504) turns fp16 logits to inf/nan: an error naming the fix,
    where bf16 (fp32's range) saves fine. One check example keeps it quick."""
    from peft import LoraConfig, get_peft_model

    from text2sql.models.loading import load_model

    model = load_model("tiny:llama", dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["o_proj"]))
    with torch.no_grad():
        # One huge column of the delta (A picks input 0, B spreads it): activations overflow fp16,
        # while the other columns keep their fp32 precision so the fp32 merge still matches.
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:
                param.zero_()
                param[0, 0] = 1.0
            elif "lora_B" in name:
                param.fill_(1e6)
    peft_model.peft_config["default"].base_model_name_or_path = "tiny:llama"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model.save_pretrained(tmp_path / "adapter")
    one = verification_examples(count=1)
    with pytest.raises(MergeMismatchError, match=r"inf/nan .* merge with --dtype bf16 or fp32"):
        merge_adapter(tmp_path / "adapter", tmp_path / "fp16", dtype="fp16", verify_prompts=one)
    assert not (tmp_path / "fp16").exists()
    result = merge_adapter(tmp_path / "adapter", tmp_path / "bf16", dtype="bf16", verify_prompts=one)
    assert len(result.prompts) == 1 and result.saved_max_abs_diff <= result.saved_tolerance


def test_merged_model_loads_and_generates_without_peft(merged):
    folders = {kind: merged(arch)[1].path for kind, arch in (("causal", "llama"), ("seq2seq", "t5"))}
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class NoPeft(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "peft" or name.startswith("peft."):
                    raise ModuleNotFoundError("peft is not installed here", name=name)

        sys.meta_path.insert(0, NoPeft())
        sys.modules["peft"] = None  # importlib.util.find_spec("peft") -> None: transformers sees no peft
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
        from transformers.utils import is_peft_available

        assert not is_peft_available()
        for auto, folder in ((AutoModelForCausalLM, {str(folders["causal"])!r}),
                             (AutoModelForSeq2SeqLM, {str(folders["seq2seq"])!r})):
            tok = AutoTokenizer.from_pretrained(folder)
            model = auto.from_pretrained(folder)
            ids = tok(["Question: how many rows?"], return_tensors="pt")
            out = model.generate(**ids, max_new_tokens=5, do_sample=False)
            assert model.generation_config.eos_token_id == tok.eos_token_id
            assert model.generation_config.pad_token_id == tok.pad_token_id
            print(type(model).__name__, out.shape[-1])
        assert sys.modules["peft"] is None
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "LlamaForCausalLM" in proc.stdout and "T5ForConditionalGeneration" in proc.stdout


# ------------------------------------------------------------------------------------------ settings


def test_run_config_tokenizer_and_generation_ids_come_along(tmp_path, tiny_llama_path):
    """The adapter's config.yaml and tokenizer are used and saved; a base without pad/eos in its
    generation config gets them from the tokenizer, so generation stops at EOS."""
    import shutil

    from transformers import AutoTokenizer

    from text2sql.config import load_config, save_config
    from text2sql.models.adapters import run_config

    base = tmp_path / "base"
    shutil.copytree(tiny_llama_path, base)
    (base / "generation_config.json").write_text(json.dumps({"bos_token_id": 1}))
    adapter = make_adapter("llama", tmp_path / "adapter", base_spec=str(base))
    cfg = load_config(
        None,
        [f"model.name_or_path={base}", "model.dtype=bfloat16", "prompt.system=Only SQL.", "data.schema_format=compact"],
    )
    save_config(cfg, adapter)
    tokenizer = AutoTokenizer.from_pretrained(base, model_max_length=77)
    tokenizer.save_pretrained(adapter)

    result = merge_adapter(adapter, tmp_path / "out")  # dtype from the run config
    assert result.dtype == "bf16"
    saved = run_config(result.path)
    assert saved.prompt.system == "Only SQL." and saved.model.name_or_path == str(base)
    assert (result.path / "config.yaml").read_text().startswith("# text2sql merge: adapter")
    assert AutoTokenizer.from_pretrained(result.path).model_max_length == 77
    generation = json.loads((result.path / "generation_config.json").read_text())
    assert (generation["pad_token_id"], generation["eos_token_id"]) == (0, 2)
    # The check prompts followed the run's prompt settings: compact schemas are shorter.
    assert result.tokens_checked < _default_check_tokens(tokenizer)


def _default_check_tokens(tokenizer) -> int:
    from text2sql.data.prompt import PromptBuilder

    builder = PromptBuilder(tokenizer, "decoder", model_type="llama")
    return sum(len(e.input_ids) for e in builder.encode_batch(verification_examples()))


def test_default_dtype():
    cfg = lambda dtype: SimpleNamespace(model=SimpleNamespace(dtype=dtype))  # noqa: E731
    assert default_dtype(cfg("float16"), SimpleNamespace(dtype="float32")) == "fp16"
    assert default_dtype(cfg("auto"), SimpleNamespace(dtype=torch.bfloat16)) == "bf16"
    assert default_dtype(None, SimpleNamespace(dtype="float32")) == "fp32"
    assert default_dtype(None, SimpleNamespace(dtype=None)) == "fp32"
    assert default_dtype(None, SimpleNamespace(dtype="float8_e4m3fn")) == "fp32"


def test_model_card_names_a_hub_base_only():
    from text2sql.models.merge_card import model_card

    result = SimpleNamespace(
        kind="seq2seq",
        base="google/flan-t5-small",
        adapter="/runs/x/adapter",
        dtype="bf16",
        prompts=[{}],
        tokens_checked=10,
        logit_scale=30.0,
        max_abs_diff=1e-6,
        tolerance=3e-3,
        saved_max_abs_diff=0.2,
        saved_tolerance=3.0,
        adapter_effect=2.0,
        path="/runs/x/merged",
    )
    card = model_card(result, has_config=True)
    assert card.startswith("---\nbase_model: google/flan-t5-small\n") and "AutoModelForSeq2SeqLM" in card
    result.base = "tiny:t5"
    assert "base_model" not in model_card(result, has_config=False)


def test_mismatch_is_an_error_and_leaves_the_old_output(merged, tmp_path, monkeypatch):
    adapter, _ = merged("gpt2")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old model")
    monkeypatch.setattr(merge_checks, "FP32_RTOL", 0.0)
    monkeypatch.setattr(merge_checks, "max_abs_diff", lambda a, b: 0.5)
    with pytest.raises(MergeMismatchError, match="largest logit difference 0.5 exceeds 0"):
        merge_adapter(adapter, out, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ------------------------------------------------------------------------------------------ command line


def test_cli_merges_with_base_override(capsys, tmp_path, tiny_llama_path):
    # The adapter names a base that is not on this machine; --base points at where it is.
    adapter = make_adapter("llama", tmp_path / "adapter", recorded_base="/cluster/models/llama", base_spec="tiny:llama")
    code, _, err = run_cli(capsys, "merge", "--adapter", str(adapter), "--output", str(tmp_path / "a"))
    assert_one_line_error(code, err, "/cluster/models/llama")

    code, out, err = run_cli(
        capsys,
        "merge",
        "--adapter",
        str(adapter),
        "--output",
        str(tmp_path / "b"),
        "--base",
        str(tiny_llama_path),
        "--dtype",
        "fp16",
    )
    assert code == 0, err
    assert f"written to {tmp_path / 'b'}" in out and "largest logit difference" in out
    report = json.loads((tmp_path / "b" / "merge_report.json").read_text())
    assert report["base"] == str(tiny_llama_path) and report["dtype"] == "fp16"
    assert f"{report['max_abs_diff']:.3g}" in out


def test_cli_refuses_a_folder_without_adapter_config(capsys, tmp_path):
    folder = tmp_path / "not-an-adapter"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    code, _, err = run_cli(capsys, "merge", "--adapter", str(folder), "--output", str(tmp_path / "out"))
    assert_one_line_error(code, err, "adapter_config.json", str(folder))
    code, _, err = run_cli(capsys, "merge", "--adapter", str(tmp_path / "missing"), "--output", str(tmp_path / "out"))
    assert_one_line_error(code, err, "does not exist")
    assert not (tmp_path / "out").exists()


def test_cli_refuses_existing_output_without_force_and_replaces_it_with(capsys, merged, tmp_path):
    adapter, _ = merged("gpt2")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("an older merge")
    code, _, err = run_cli(capsys, "merge", "--adapter", str(adapter), "--output", str(out))
    assert_one_line_error(code, err, str(out), "--force")
    assert (out / "old.txt").is_file()

    code, out_text, err = run_cli(capsys, "merge", "--adapter", str(adapter), "--output", str(out), "--force")
    assert code == 0, err
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_same_merge_again_is_up_to_date_and_other_settings_need_force(capsys, merged, tmp_path):
    adapter, _ = merged("gpt2")
    out = tmp_path / "out"
    args = ["merge", "--adapter", str(adapter), "--output", str(out)]
    assert run_cli(capsys, *args)[0] == 0
    record = json.loads((out / "stage.json").read_text())
    assert record["stage"] == "merged" and record["dtype"] == "fp32"
    written = (out / "model.safetensors").stat().st_mtime_ns

    code, text, _ = run_cli(capsys, *args)
    assert code == 0 and "merged model up to date, skipped" in text
    assert (out / "model.safetensors").stat().st_mtime_ns == written
    code, _, err = run_cli(capsys, *args, "--dtype", "bf16")  # another merge of the same adapter
    assert_one_line_error(code, err, "different run", "dtype", "--force")
    code, text, _ = run_cli(capsys, *args, "--force")
    assert code == 0 and "written to" in text and (out / "model.safetensors").stat().st_mtime_ns != written


@pytest.mark.parametrize("where", ["inside", "itself", "parent"])
def test_cli_refuses_output_inside_or_around_the_adapter(capsys, merged, where):
    adapter, _ = merged("gpt2")
    out = {"inside": adapter / "merged", "itself": adapter, "parent": adapter.parent}[where]
    code, _, err = run_cli(capsys, "merge", "--adapter", str(adapter), "--output", str(out), "--force")
    assert_one_line_error(code, err, "adapter folder")
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "merged").exists()


def test_wrong_base_and_bad_dtype_are_one_line_errors(capsys, merged, tmp_path):
    adapter, _ = merged("gpt2")
    code, _, err = run_cli(
        capsys, "merge", "--adapter", str(adapter), "--output", str(tmp_path / "o"), "--base", "tiny:t5"
    )
    assert_one_line_error(code, err, "cannot apply adapter", "--base")
    with pytest.raises(ConfigError, match="unknown merge dtype 'int8'"):
        merge_adapter(adapter, tmp_path / "o", dtype="int8")
    with pytest.raises(OutputExistsError, match="is a file"):
        (tmp_path / "file").write_text("")
        merge_adapter(adapter, tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
