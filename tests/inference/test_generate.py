"""Loading models for inference (merged, adapter, run folder, checkpoint, base) with their saved
prompt settings; batched generation equal to one-at-a-time generation."""

import shutil

import pytest
import torch

from text2sql.config import DEFAULT_SYSTEM_PROMPT, load_config, save_config
from text2sql.data import bundled
from text2sql.errors import ConfigError
from text2sql.inference.generate import HFGenerator, RawOutput, cut_at_stop, length_sorted_batches, pad_batch, stop_ids
from text2sql.inference.loading import load_for_inference, resolve_model_folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_llama_path):
    """A run folder as `text2sql train` leaves it: config.yaml, adapter/ (with config.yaml) and a
    checkpoint under checkpoints/."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path_factory.mktemp("run")
    cfg = load_config(
        None,
        [
            "prompt.system=Answer in SQL, nothing else.",
            "data.schema_format=compact",
            f"model.name_or_path={tiny_llama_path}",
        ],
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    torch.manual_seed(0)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(run / "adapter")
    save_config(cfg, run / "adapter")
    save_config(cfg, run)
    shutil.copytree(run / "adapter", run / "checkpoints" / "checkpoint-2")
    (run / "checkpoints" / "checkpoint-2" / "config.yaml").unlink()
    return run


def test_adapter_folder_loads_with_its_prompt_settings(run_dir):
    im = load_for_inference(str(run_dir / "adapter"), merge_adapter=False)
    assert im.source == "adapter" and im.kind == "decoder" and im.model_type == "llama"
    assert im.builder.system == "Answer in SQL, nothing else."
    assert im.schema_format == "compact" and im.read_options(db_dir="x").schema_format == "compact"
    assert not im.model.training
    merged = load_for_inference(str(run_dir / "adapter"))
    assert merged.merged_adapter and not hasattr(merged.model, "peft_config")
    ids = torch.tensor([[1, 5, 9, 14, 20]])
    with torch.no_grad():
        assert torch.allclose(im.model(ids).logits, merged.model(ids).logits, atol=1e-5)


def test_run_folder_and_checkpoint_resolution(run_dir):
    assert resolve_model_folder(str(run_dir)) == str(run_dir / "adapter")
    path = resolve_model_folder(str(run_dir / "adapter"), "checkpoint-2")
    assert path == str(run_dir / "checkpoints" / "checkpoint-2")
    im = load_for_inference(str(run_dir / "adapter"), checkpoint="checkpoint-2", load_weights=False)
    assert im.source == "adapter" and im.builder.system == "Answer in SQL, nothing else."  # run's config.yaml
    with pytest.raises(ConfigError, match="checkpoint-9"):
        resolve_model_folder(str(run_dir / "adapter"), "checkpoint-9")
    with pytest.raises(ConfigError, match="holds no model"):
        resolve_model_folder(str(run_dir / "checkpoints"))


def test_base_model_gets_default_prompt(tiny_llama_path):
    im = load_for_inference(str(tiny_llama_path), load_weights=False)
    assert im.source == "base" and im.model is None
    assert im.builder.system == DEFAULT_SYSTEM_PROMPT.replace("{dialect}", "SQLite") and im.schema_format == "sql"
    assert "Question: How many?" in im.builder.prompt_text("How many?", "CREATE TABLE t (a INT)")


def test_length_sorted_batches_and_padding():
    batches = length_sorted_batches([3, 9, 1, 7, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]
    ids, mask = pad_batch([[5, 6], [7]], 0, side="left")
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    ids, mask = pad_batch([[5, 6], [7]], 0, side="right")
    assert ids.tolist() == [[5, 6], [7, 0]] and mask.tolist() == [[1, 1], [1, 0]]


@pytest.mark.parametrize("spec", ["tiny:llama", "tiny:gpt2", "tiny:t5"])
def test_batched_generation_equals_one_at_a_time(spec):
    from text2sql.data.schema import schema_text

    im = load_for_inference(spec)
    # Random tiny models answer every prompt with the same filler; larger weights make the answer
    # depend on the prompt, so a padding or prefix-sharing mistake would show.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in im.model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    rows = list(bundled.iter_rows("test"))[::23][:12]
    # two thirds with their database's schema (shared prefixes), the rest without (pooled)
    prompts = [
        im.builder.prompt_text(r["question"], schema_text(bundled.db_path(r["db_id"]), "compact") if i % 3 else "")
        for i, r in enumerate(rows)
    ]
    ids = im.builder.encode_prompts(prompts)
    assert len({len(i) for i in ids}) > 3  # lengths differ, so batches need padding
    one = HFGenerator(im.model, im.tokenizer, im.kind).generate_texts(ids, 6, batch_size=1)
    im.tokenizer.padding_side = "right"  # as training leaves it: generation must pad on its own
    for share in (False, True):
        batched = HFGenerator(im.model, im.tokenizer, im.kind, share_prefix=share).generate_texts(ids, 6, batch_size=4)
        assert batched == one, share
    # The serving engine hands over one batch as it formed it (no batch_size): the same answers.
    assert HFGenerator(im.model, im.tokenizer, im.kind).generate_texts(ids, 6) == one
    assert len(set(one)) == len(one)


def test_plan_batches_groups_prompts_by_shared_prefix():
    from text2sql.inference.prefix import MIN_SHARED_TOKENS, layout, plan_batches

    system = list(range(100, 120))
    schema_a, schema_b = list(range(200, 260)), list(range(300, 340))
    prompts = (
        [system + schema_a + [i] * (1 + i % 3) for i in range(7)]
        + [system + schema_b + [50 + i] for i in range(5)]
        + [system + [70 + i] * 3 for i in range(2)]
    )
    plan = plan_batches(prompts, 4)
    assert sorted(i for batch, _ in plan for i in batch) == list(range(len(prompts)))
    for batch, prefix in plan:
        assert len(batch) <= 4
        assert prefix == 0 or prefix >= MIN_SHARED_TOKENS
        assert all(prompts[i][:prefix] == prompts[batch[0]][:prefix] and len(prompts[i]) > prefix for i in batch)
    by_first = {batch[0]: prefix for batch, prefix in plan}
    schema_a_batches = [p for b, p in plan if all(i < 7 for i in b)]
    assert len(schema_a_batches) == 2 and all(p == 80 for p in schema_a_batches)  # system + schema A
    assert any(p == 20 for p in by_first.values())  # small groups pooled: only the system prompt shared
    ids, mask = layout([[1, 2, 3, 4], [1, 2, 5]], 2, 0)
    assert ids.tolist() == [[1, 2, 3, 4], [1, 2, 0, 5]] and mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1]]


def test_answers_stop_at_the_tokenizer_or_the_generation_config_eos():
    class Tok:
        eos_token_id = 2

    class Model:
        class generation_config:  # noqa: N801 - shaped like transformers' GenerationConfig
            eos_token_id = [2, 7]

    stops = stop_ids(Model(), Tok())
    assert stops == {2, 7}
    assert cut_at_stop([5, 6, 7, 2, 0], stops) == RawOutput([5, 6, 7], hit_eos=True)
    assert cut_at_stop([5, 6], stops) == RawOutput([5, 6], hit_eos=False)


def test_generation_stops_at_a_generation_config_eos(tiny_llama_path):
    """A chat model that ends its turn with another token than the tokenizer's EOS (Llama 3's
    <|eot_id|>) stops there, in evaluation as in serving."""
    im = load_for_inference(str(tiny_llama_path))
    ids = im.builder.encode_prompts([im.builder.prompt_text("How many flights?", "")])
    free = HFGenerator(im.model, im.tokenizer, im.kind).generate(ids, 8)[0]
    assert not free.hit_eos and len(free.token_ids) == 8, free  # the random model runs on to the limit
    end_of_turn = free.token_ids[-1]
    im.model.generation_config.eos_token_id = [im.tokenizer.eos_token_id, end_of_turn]
    cut = HFGenerator(im.model, im.tokenizer, im.kind).generate(ids, 8)[0]
    assert cut == RawOutput(free.token_ids[: free.token_ids.index(end_of_turn) + 1], hit_eos=True)
