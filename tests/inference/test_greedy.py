"""Greedy decoding with shared prefixes (`inference.greedy`) answers exactly what transformers'
`generate` answers for each prompt alone, on several architectures, while computing each prefix
once, dropping finished rows and answering near-ties the per-example way."""

from collections import Counter

import pytest
import torch

from text2sql.data import bundled
from text2sql.data.schema import schema_text
from text2sql.inference import decoding, greedy
from text2sql.inference.generate import GREEDY, HFGenerator, Sampling, cut_at_stop
from text2sql.inference.loading import load_for_inference
from text2sql.inference.prefix import group_prompts


def per_example(model, prompts, max_new_tokens, stops, pad_id):
    """The per-example loop: one `generate` call per prompt, no padding, no batching."""
    answers = []
    with torch.no_grad():
        for prompt in prompts:
            out = model.generate(
                input_ids=torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=sorted(stops),
                pad_token_id=pad_id,
            )
            answers.append(cut_at_stop(out[0, len(prompt) :].tolist(), stops).token_ids)
    return answers


def prompt_dependent(model, seed=0):
    """Larger random weights, so that answers depend on the prompt (a padding or prefix mix-up shows)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model


def bundled_prompts(builder, count=16, every=11):
    """Questions over the four bundled databases with whole CREATE TABLE schemas; every fifth without one."""
    rows = list(bundled.iter_rows("test"))[::every][:count]
    texts = [
        builder.prompt_text(r["question"], schema_text(bundled.db_path(r["db_id"]), "sql") if i % 5 else "")
        for i, r in enumerate(rows)
    ]
    return builder.encode_prompts(texts)


def stop_on_a_frequent_token(im, prompts):
    """Make a token the model often emits an end of answer, so rows finish at different steps."""
    free = HFGenerator(im.model, im.tokenizer, im.kind).generate(prompts[:6], 12)
    frequent = Counter(t for o in free for t in o.token_ids).most_common(2)[1][0]
    im.model.generation_config.eos_token_id = [im.tokenizer.eos_token_id, frequent]


@pytest.mark.parametrize("spec", ["tiny:llama", "tiny:qwen2", "tiny:mistral"])
def test_answers_equal_the_per_example_loop(spec):
    im = load_for_inference(spec)
    prompt_dependent(im.model)
    prompts = bundled_prompts(im.builder)
    stop_on_a_frequent_token(im, prompts)
    generator = HFGenerator(im.model, im.tokenizer, im.kind)
    assert generator._split_greedy(prompts, 20, GREEDY, 1)  # the shared-prefix path is the one tested
    expected = per_example(im.model, prompts, 20, generator.stop_ids, generator.pad_id)
    assert len({len(e) for e in expected}) >= 3  # rows stop at different steps
    assert len({tuple(e) for e in expected}) > len(prompts) // 2  # and answer differently
    for batch_size in (4, 7, None):
        got = [o.token_ids for o in generator.generate(prompts, 20, batch_size=batch_size)]
        assert got == expected, batch_size
    assert im.model.config._attn_implementation == "sdpa"  # the model attends as before afterwards


def test_grouped_query_attention_and_an_unmerged_adapter(tiny_llama_path):
    """Key/value heads shared by several query heads (as SmolLM2's 9 heads read 3), and a LoRA adapter
    still wrapped by PEFT (as the execution-accuracy callback generates during training)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = prompt_dependent(LlamaForCausalLM(config).eval())
    im = load_for_inference(str(tiny_llama_path), load_weights=False)
    prompts = bundled_prompts(im.builder, count=10, every=19)
    for candidate in (
        model,
        get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval(),
    ):
        generator = HFGenerator(candidate, tokenizer, "decoder")
        assert generator._split_greedy(prompts, 16, GREEDY, 1)
        expected = per_example(candidate, prompts, 16, generator.stop_ids, generator.pad_id)
        assert [o.token_ids for o in generator.generate(prompts, 16, batch_size=4)] == expected


def test_each_prefix_runs_once_and_waiting_rows_take_the_places_of_finished_ones(monkeypatch):
    im = load_for_inference("tiny:llama")
    prompt_dependent(im.model)
    prompts = bundled_prompts(im.builder, count=24, every=7)
    generator = HFGenerator(im.model, im.tokenizer, im.kind)
    # An end of answer that rows meet at many different steps, so rows finish at different times.
    free = [o.token_ids for o in generator.generate(prompts, 20)]
    firsts = {t: {answer.index(t) for answer in free if t in answer} for answer in free for t in answer}
    im.model.generation_config.eos_token_id = [im.tokenizer.eos_token_id, max(firsts, key=lambda t: len(firsts[t]))]
    generator = HFGenerator(im.model, im.tokenizer, im.kind)
    assert greedy.supports_split_attention(im.model)  # probed before the forwards are counted
    groups = group_prompts(prompts)
    assert any(len(group.rows) > 5 and group.prefix for group in groups)  # a group outlasts one batch
    computed = []
    real = decoding.prefix_kv
    monkeypatch.setattr(
        decoding, "prefix_kv", lambda model, tokens: computed.append(len(tokens)) or real(model, tokens)
    )
    shapes = []
    hook = im.model.get_input_embeddings().register_forward_hook(
        lambda m, args, out: shapes.append(tuple(out.shape[:2]))
    )
    try:
        outputs = generator.generate(prompts, 20, batch_size=5)
    finally:
        hook.remove()
    assert Counter(computed) == Counter(group.prefix for group in groups if group.prefix)  # once per group
    slots = decoding.decoding_rows(prompts, groups, 5, 20)
    steps = [rows for rows, q in shapes if q == 1]
    lengths = [len(o.token_ids) for o in outputs]
    answering = sum(lengths) - len(prompts)  # row-steps of rows still answering: the prefill yields each first token
    assert max(steps) <= slots
    # Finished rows wait to be dropped only while fewer than a quarter of the rows have finished.
    assert answering <= sum(steps) <= answering * 4 / 3 + slots
    # While prompts wait, every step decodes a full batch: a prompt is prefilled into the place of
    # each row that finishes (the last forward of more than one token is the last such prefill).
    last_prefill = max(n for n, (rows, q) in enumerate(shapes) if q > 1)
    waiting = [rows for rows, q in shapes[:last_prefill] if q == 1]
    assert len(waiting) > 20 and set(waiting) == {slots}
    # The steps an estimate expects from the answers' lengths are the steps taken.
    admitted = [i for group in groups for i in group.rows]
    assert steps == decoding.decoding_steps([lengths[i] for i in admitted], slots)
    assert sum(steps) < len(prompts) * 19  # rows stopped early


def test_rows_decoding_at_once_fill_the_memory_of_the_batch():
    """A row keeps only its own tokens' keys and values: more rows decode together where prompts share
    a long prefix, as many as fit where `batch_size` whole prompts would, at most four times as many."""
    shared_prefix = [list(range(300)) + [1000 + i] * 60 for i in range(8)]
    assert decoding.decoding_rows(shared_prefix, group_prompts(shared_prefix), 8, 64) == 8 * (360 + 64) // (60 + 64)
    long_prefix = [list(range(3000)) + [5000 + i] * 5 for i in range(8)]
    assert decoding.decoding_rows(long_prefix, group_prompts(long_prefix), 8, 64) == 32
    alone = [[7, 8, 9] * 20, list(range(400))]  # nothing shared: as many rows as the batch
    assert decoding.decoding_rows(alone, group_prompts(alone), 8, 64) == 8


def test_near_ties_are_answered_the_per_example_way():
    """Where the two best tokens are within rounding of each other, the order in which attention adds
    up its terms decides; such rows are answered by `generate` on the prompt alone."""
    im = load_for_inference("tiny:llama")
    model = prompt_dependent(im.model)
    with torch.no_grad():  # every odd token a hair above its even neighbour: near-ties everywhere
        weight = model.get_output_embeddings().weight
        weight[1::2] = weight[0:-1:2][: weight[1::2].shape[0]] * (1 + 1e-6)
    prompts = bundled_prompts(im.builder, count=8)
    generator = HFGenerator(im.model, im.tokenizer, im.kind)
    with torch.inference_mode():
        split = greedy.greedy_decode(
            model, prompts, 12, batch_size=4, stops=generator.stop_ids, pad_id=generator.pad_id
        )
    assert any(answer is None for answer in split)  # the guard caught near-ties
    expected = per_example(model, prompts, 12, generator.stop_ids, generator.pad_id)
    assert [o.token_ids for o in generator.generate(prompts, 12, batch_size=4)] == expected


def test_greedy_logprobs_match_transformers_scores():
    im = load_for_inference("tiny:llama")
    prompt_dependent(im.model)
    prompts = bundled_prompts(im.builder, count=6)
    fast = HFGenerator(im.model, im.tokenizer, im.kind).generate(prompts, 10, batch_size=3, with_logprobs=True)
    plain = HFGenerator(im.model, im.tokenizer, im.kind, share_prefix=False).generate(
        prompts, 10, batch_size=3, with_logprobs=True
    )
    for a, b in zip(fast, plain):
        assert a.token_ids == b.token_ids
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3)


def test_other_generation_keeps_transformers_generate(tiny_llama_path):
    """Sampling, beams, seq2seq and a generation config that changes greedy picks use `generate`."""
    im = load_for_inference("tiny:llama")
    prompts = bundled_prompts(im.builder, count=4)
    generator = HFGenerator(im.model, im.tokenizer, im.kind)
    assert not generator._split_greedy(prompts, 8, Sampling(0.8, 0.95), 1)
    assert not generator._split_greedy(prompts, 8, GREEDY, 2)
    im.model.generation_config.repetition_penalty = 1.3
    assert not greedy.plain_greedy(im.model) and not generator._split_greedy(prompts, 8, GREEDY, 1)
    t5 = load_for_inference("tiny:t5")
    assert not HFGenerator(t5.model, t5.tokenizer, t5.kind)._split_greedy(prompts, 8, GREEDY, 1)
    torch.manual_seed(0)
    sampled = generator.generate(prompts, 8, Sampling(0.8, 0.95), batch_size=2)  # shared prefix, repeated cache
    assert all(len(o.token_ids) == 8 or o.hit_eos for o in sampled)
