"""Batched generation: many prompts, few `generate` calls.

Prompts are sorted by token length so each batch pads to nearly the same length (less wasted
compute), decoder prompts are padded on the left so every row's answer starts right after its
prompt, and prompts over the same schema are batched together so their shared prefix is computed
once per batch (`prefix`). Decoding is greedy by default, and a tqdm bar shows progress and ETA. Results come back in
the caller's order. Padding is built here rather than by the tokenizer, so a tokenizer left in
training's right-padding mode (the training callback's case) still generates correctly.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, Sequence

from text2sql.errors import ConfigError, MissingExtraError

log = logging.getLogger(__name__)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (so a batch that does not fit
    in memory fails at the start, and the ETA only improves)."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, *, side: str) -> tuple[Any, Any]:
    """(input_ids, attention_mask) tensors, padded on `side` ("left" or "right")."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if not seq:
            continue
        values = torch.as_tensor(list(seq), dtype=torch.long)
        if side == "left":
            ids[row, width - len(seq) :] = values
            mask[row, width - len(seq) :] = 1
        else:
            ids[row, : len(seq)] = values
            mask[row, : len(seq)] = 1
    return ids, mask


def generate_texts(
    model: Any,
    tokenizer: Any,
    kind: str,
    prompt_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    num_beams: int = 1,
    share_prefix: bool = True,
    progress: bool = True,
    desc: str = "generating",
) -> list[str]:
    """The decoded answer (new tokens only, special tokens removed) for every prompt, in order.

    `kind` is "decoder" or "seq2seq". Greedy unless `num_beams` > 1. With `share_prefix`, greedy
    decoder batches compute the prompt prefix their rows share once (see `prefix`); outputs are the
    same either way. The model is used as given (the caller puts it in eval mode).
    """
    import torch
    from tqdm.auto import tqdm

    from text2sql.evaluation import prefix as shared

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ConfigError("the tokenizer has neither a pad nor an eos token; batched generation needs one")
    device = next(model.parameters()).device
    outputs: list[str] = [""] * len(prompt_ids)
    gen_kwargs = {
        "max_new_tokens": max_new_tokens,
        "num_beams": num_beams,
        "do_sample": False,
        "use_cache": True,  # a model mid-training may have use_cache=False in its config
        "pad_token_id": pad_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    # Greedy decoding ignores sampling settings a generation_config may carry; unset them so
    # transformers does not warn once per batch.
    gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    sharing = share_prefix and kind == "decoder" and num_beams == 1 and shared.supports_prefix_sharing(model)
    if sharing:
        plan = shared.plan_batches(prompt_ids, batch_size)
    else:
        plan = [(batch, 0) for batch in length_sorted_batches([len(p) for p in prompt_ids], batch_size)]
    bar = tqdm(total=len(prompt_ids), desc=desc, unit="ex", disable=not progress, leave=False)
    try:
        with torch.inference_mode():
            for batch, prefix in plan:
                prompts = [prompt_ids[i] for i in batch]
                if kind == "decoder":
                    ids, mask = shared.layout(prompts, prefix, pad_id)
                else:
                    ids, mask = pad_batch(prompts, pad_id, side="right")
                ids, mask = ids.to(device), mask.to(device)
                extra = {"past_key_values": shared.prefix_cache(model, ids, prefix, len(batch))} if prefix else {}
                out = model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs, **extra)
                if kind == "decoder":
                    out = out[:, ids.shape[1] :]
                texts = tokenizer.batch_decode(out, skip_special_tokens=True)
                for i, text in zip(batch, texts):
                    outputs[i] = text
                bar.update(len(batch))
    finally:
        bar.close()
    return outputs


def generate_with_vllm(
    model_path: str,
    prompt_ids: Sequence[Sequence[int]],
    *,
    adapter_path: str | None = None,
    max_new_tokens: int = 256,
    num_beams: int = 1,
    trust_remote_code: bool = False,
) -> list[str]:
    """Greedy generation with vLLM (decoder models only); an adapter is served with LoRA enabled.

    Prompts go in as token ids from the PromptBuilder, so vLLM adds no second BOS. Raises
    MissingExtraError when vLLM is not installed.
    """
    require_vllm()
    from vllm import LLM, SamplingParams  # type: ignore[import-not-found]

    if num_beams > 1:
        raise ConfigError("--backend vllm decodes greedily; use --backend hf for beam search")
    llm = LLM(model=model_path, enable_lora=adapter_path is not None, trust_remote_code=trust_remote_code)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    lora = None
    if adapter_path is not None:
        from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

        lora = LoRARequest("adapter", 1, adapter_path)
    prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
    results = llm.generate(prompts, params, lora_request=lora)
    return [r.outputs[0].text if r.outputs else "" for r in results]


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtraError("--backend vllm", "vllm", "vllm")
