"""Backends that run the model for the engine: transformers `generate`, or vLLM's offline engine.

A backend gets one batch of token-id prompts that share a sampling setting and returns the new
token ids of each; the engine (`engine.py`) does the queueing, tokenizing and decoding.
"""

from __future__ import annotations

from typing import Any, Sequence

from text2sql.errors import ConfigError
from text2sql.serving.engine import Backend, Engine, RawOutput, Sampling

class HFBackend:
    """transformers `generate` on an already loaded model (decoder or seq2seq)."""

    def __init__(self, model: Any, tokenizer: Any, kind: str):
        self.model = model
        self.kind = kind
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ConfigError("the tokenizer has neither a pad nor an eos token; batched generation needs one")
        self.eos_ids = _eos_ids(model, tokenizer)

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, sampling: Sampling) -> list[RawOutput]:
        import torch

        from text2sql.evaluation.generate import pad_batch

        ids, mask = pad_batch(prompts, self.pad_id, side="left" if self.kind == "decoder" else "right")
        device = next(self.model.parameters()).device
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "num_beams": 1,
            "use_cache": True,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids) or None,
        }
        if sampling.greedy:
            # Unset a generation_config's sampling settings so transformers does not warn per batch.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            # top_k 0 disables a generation_config's top-k: OpenAI's API has temperature and top_p only.
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        # Decoder output repeats the (padded) prompt; seq2seq output starts with the decoder start token.
        out = out[:, ids.shape[1]:] if self.kind == "decoder" else out[:, 1:]
        return [self._row(row) for row in out.tolist()]

    def _row(self, row: list[int]) -> RawOutput:
        for position, token in enumerate(row):
            if token in self.eos_ids:
                return RawOutput(row[: position + 1], hit_eos=True)
        # No EOS: generation ran to max_new_tokens (rows that finished early end in EOS, then padding).
        return RawOutput(row, hit_eos=False)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


class VllmBackend:
    """vLLM's offline engine, built once; it batches the prompts it is given itself.

    Only decoder models; an adapter folder is served as its base with LoRA enabled.
    """

    def __init__(self, model_path: str, *, adapter_path: str | None = None, trust_remote_code: bool = False):
        from text2sql.evaluation.generate import require_vllm

        require_vllm()
        from vllm import LLM  # type: ignore[import-not-found]

        self.llm = LLM(model=model_path, enable_lora=adapter_path is not None, trust_remote_code=trust_remote_code)
        self.lora = None
        if adapter_path is not None:
            from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

            self.lora = LoRARequest("adapter", 1, adapter_path)

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, sampling: Sampling) -> list[RawOutput]:
        from vllm import SamplingParams  # type: ignore[import-not-found]

        params = SamplingParams(
            temperature=max(sampling.temperature, 0.0), top_p=sampling.top_p, max_tokens=max_new_tokens
        )
        results = self.llm.generate(
            [{"prompt_token_ids": list(p)} for p in prompts], params, lora_request=self.lora, use_tqdm=False
        )
        outputs = []
        for result in results:
            best = result.outputs[0] if result.outputs else None
            tokens = list(best.token_ids) if best is not None else []
            outputs.append(RawOutput(tokens, hit_eos=best is not None and best.finish_reason == "stop"))
        return outputs


# ---------------------------------------------------------------------------------------- building


def context_length(config: Any) -> int | None:
    """The longest input (prompt + answer) the model's positions allow, when its config says so."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None  # T5 (relative positions) has no hard limit


def build_engine(im: Any, *, backend: str = "hf", batch_size: int = 16, batch_wait_ms: float = 10.0,
                 max_queue: int = 1024) -> Engine:
    """An engine over an `InferenceModel` from `load_for_inference` (weights loaded for "hf"; for
    "vllm" load it with `load_weights=False`: vLLM loads the weights itself)."""
    if backend == "hf":
        if im.model is None:
            raise ConfigError("the hf backend needs the model's weights; load it with load_weights=True")
        impl: Backend = HFBackend(im.model, im.tokenizer, im.kind)
        config = im.model.config
    elif backend == "vllm":
        if im.kind != "decoder":
            raise ConfigError("--backend vllm serves decoder models only; use --backend hf for T5")
        from text2sql.models.loading import load_config, resolve_model

        trust = bool(im.config.model.trust_remote_code) if im.config is not None else False
        if im.source == "adapter":
            base = resolve_model(im.base)
            impl = VllmBackend(base, adapter_path=im.path, trust_remote_code=trust)
        else:
            base = im.path
            impl = VllmBackend(im.path, trust_remote_code=trust)
        config = load_config(base, trust_remote_code=trust)
    else:
        raise ConfigError(f"unknown backend {backend!r}; use hf or vllm")
    return Engine(impl, im.builder, context_length=context_length(config), batch_size=batch_size,
                  batch_wait_ms=batch_wait_ms, max_queue=max_queue)
